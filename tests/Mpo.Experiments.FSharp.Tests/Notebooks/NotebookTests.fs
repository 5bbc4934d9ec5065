/// The notebook executor: each cell's outputs captured separately (stdout, a Markdown table, a value, a Plotly chart
/// as PNG or HTML), execution stopping at a failing cell with its error, Polyglot metadata kept, and the committed
/// notebook stored executed.
module Mpo.Experiments.Tests.Notebooks.NotebookTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open Mpo.Experiments.Notebooks
open Mpo.Experiments.Tests.Support

let private cell (code: string) =
    let o = JsonObject()
    o.["cell_type"] <- "code"
    o.["execution_count"] <- null
    let meta = JsonObject()
    meta.["dotnet_interactive"] <- JsonObject([ Collections.Generic.KeyValuePair("language", JsonValue.Create "fsharp" :> JsonNode) ])
    meta.["polyglot_notebook"] <- JsonObject([ Collections.Generic.KeyValuePair("kernelName", JsonValue.Create "fsharp" :> JsonNode) ])
    o.["metadata"] <- meta
    o.["outputs"] <- JsonArray()
    o.["source"] <- code
    o

let private notebook (cells: JsonNode list) =
    JsonNode.Parse(
        """{ "cells": [], "metadata": { "kernelspec": { "display_name": ".NET (F#)", "language": "F#", "name": ".net-fsharp" },
             "polyglot_notebook": { "defaultKernelName": "fsharp", "items": [ { "name": "fsharp", "languageName": "F#" } ] } },
             "nbformat": 4, "nbformat_minor": 5 }""").AsObject()
    |> fun nb ->
        for c in cells do nb.["cells"].AsArray().Add c
        nb

[<Tests>]
let tests =
    testSequenced <| testList "Notebooks" [
        test "each cell's outputs are captured separately; a failing cell stops the run with its error" {
            inTempDir (fun dir ->
                let plotly = Path.Combine(AppContext.BaseDirectory, "Plotly.NET.dll").Replace("\\", "/")
                let nb =
                    notebook
                        [ cell "printfn \"hello from cell 1\"\nlet x = 20 + 1"
                          cell "x * 2"
                          cell "\"| a | b |\\n|---|--:|\\n| x | 1 |\""
                          cell ("#r \"" + plotly + "\"\nopen Plotly.NET\nChart.Line(x = [ 1.0; 2.0; 3.0 ], y = [ 1.0; 4.0; 9.0 ])")
                          cell "eprintfn \"to stderr\"\nlet y: int = \"not an int\""
                          cell "printfn \"never runs\"" ]
                let file = Path.Combine(dir, "n.ipynb")
                File.WriteAllText(file, Ipynb.write nb)
                let runs = Executor.execute file (Ipynb.read file) ignore
                Expect.equal (runs |> List.map (fun r -> r.Index)) [ 0; 1; 2; 3; 4 ] "runs up to the failing cell, not after"
                Expect.equal runs.[0].Outputs [ Ipynb.Stream("stdout", "hello from cell 1\n") ] "cell 1: its stdout only (a let binding shows nothing)"
                Expect.equal runs.[1].Outputs [ Ipynb.Result [ "text/plain", "42" ] ] "cell 2: the value of x * 2, from the session's x"
                match runs.[2].Outputs with
                | [ Ipynb.Result data ] -> Expect.equal (List.map fst data) [ "text/markdown"; "text/plain" ] "a Markdown table"
                | other -> failtestf "cell 3: %A" other
                match runs.[3].Outputs with
                | [ Ipynb.Result data ] ->
                    let mime = List.map fst data
                    if File.Exists "/usr/bin/chromium" then
                        Expect.equal mime [ "image/png"; "text/plain" ] "a chart becomes a PNG"
                        let png = Convert.FromBase64String(snd data.Head)
                        Expect.equal png.[1..3] "PNG"B "PNG bytes"
                    else Expect.equal mime [ "text/html"; "text/plain" ] "without chromium a chart becomes its HTML"
                | other -> failtestf "cell 4: %A" other
                Expect.isTrue runs.[4].Failed "cell 5 fails"
                match List.last runs.[4].Outputs with
                | Ipynb.Error (_, message, _) -> Expect.stringContains message "expected to have type" "the compiler's error"
                | other -> failtestf "cell 5: %A" other
                let written = Executor.withOutputs nb runs
                let cells = written.["cells"].AsArray()
                Expect.equal (cells.[1].["execution_count"].GetValue<int>()) 2 "execution counts"
                Expect.equal (cells.[1].["outputs"].[0].["output_type"].GetValue<string>()) "execute_result" "nbformat output type"
                Expect.equal (cells.[4].["outputs"].AsArray() |> Seq.last |> fun o -> o.["output_type"].GetValue<string>()) "error" "the error output"
                Expect.equal (cells.[5].["outputs"].AsArray().Count) 0 "the cell after the failure has no output"
                Expect.equal (cells.[0].["metadata"].["polyglot_notebook"].["kernelName"].GetValue<string>()) "fsharp" "Polyglot metadata kept"
                Expect.equal (written.["metadata"].["polyglot_notebook"].["defaultKernelName"].GetValue<string>()) "fsharp" "notebook metadata kept"
                // the command: exit 1 for the failing cell, and without --write the file is not touched
                let before = File.ReadAllText file
                let run = mpo dir [ "notebook"; file ]
                Expect.equal run.Code 1 run.Out
                Expect.stringContains run.Err "cell 5 failed" "names the cell"
                Expect.equal (File.ReadAllText file) before "not rewritten without --write")
        }

        test "the committed notebooks are stored executed: every code cell has outputs and none is an error" {
            let folder = repoFile "notebooks"
            for file in Directory.GetFiles(folder, "*.ipynb") do
                let nb = Ipynb.read file
                for c in nb.["cells"].AsArray() do
                    if c.["cell_type"].GetValue<string>() = "code" then
                        Expect.isNotNull c.["execution_count"] $"{file}: every code cell ran"
                        for o in c.["outputs"].AsArray() do
                            Expect.notEqual (o.["output_type"].GetValue<string>()) "error" $"{file}: no stored error"
                let images = [ for c in nb.["cells"].AsArray() do if not (isNull c.["outputs"]) then for o in c.["outputs"].AsArray() do if not (isNull o.["data"]) && not (isNull o.["data"].["image/png"]) then yield o ]
                Expect.isNonEmpty images $"{file}: its figure is stored as a PNG"
        }
    ]
