/// `mpo notebook NOTEBOOK…`: executes each notebook's F# cells in one session and reports each cell; `--write` puts
/// the outputs back into the .ipynb (what is committed), `--out` writes the executed copy elsewhere. Without either,
/// nothing is written (CI checks that every cell runs). Exit code 1 when a cell fails.
module Mpo.Experiments.Cli.NotebookCommand

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Notebooks

let private summary (o: Ipynb.Output) =
    match o with
    | Ipynb.Stream (name, text) -> sprintf "%s (%d lines)" name (text.TrimEnd().Split('\n').Length)
    | Ipynb.Display data | Ipynb.Result data -> String.Join("+", data |> List.map fst)
    | Ipynb.Error (name, value, _) -> sprintf "error %s: %s" name value

let run (args: ParseResults<NotebookArgs>) =
    let notebooks = args.GetResult(NotebookArgs.Notebooks, defaultValue = [])
    if notebooks.IsEmpty then invalidArg "notebooks" "give the notebooks to execute: mpo notebook NOTEBOOK.ipynb… (see mpo notebook --help)"
    let out = args.TryGetResult NotebookArgs.Out
    if out.IsSome && notebooks.Length > 1 then invalidArg "out" "--out names one executed copy: give one notebook"
    let mutable failures = 0
    for file in notebooks do
        let notebook = Ipynb.read file
        printfn "%s:" file
        let runs =
            Executor.execute file notebook (fun r ->
                let shown = if r.Outputs.IsEmpty then "no output" else String.Join(", ", r.Outputs |> List.map summary)
                printfn "  [%d] cell %d %s in %.1f s: %s" r.ExecutionCount (r.Index + 1) (if r.Failed then "FAILED" else "ran") r.Seconds shown)
        let failed = runs |> List.filter (fun r -> r.Failed)
        failures <- failures + failed.Length
        let target = if args.Contains NotebookArgs.Write then Some file else out
        match target with
        | Some path ->
            AtomicFile.WriteAllText(path, Ipynb.write (Executor.withOutputs notebook runs))
            printfn "  wrote %s with the outputs of %d cells" path runs.Length
        | None -> ()
        for r in failed do
            for o in r.Outputs do
                match o with
                | Ipynb.Error (_, value, _) -> eprintfn "mpo: %s cell %d failed:\n%s" file (r.Index + 1) value
                | _ -> ()
    if failures = 0 then 0 else 1
