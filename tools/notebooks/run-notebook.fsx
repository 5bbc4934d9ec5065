// Executes the F# cells of a Polyglot (.NET Interactive) notebook with `dotnet fsi`: the .NET Interactive kernel is
// not obtainable here, so cells are extracted, in order, into <notebook>.ipynb.fsx beside the notebook (relative
// #r/#load paths keep working) and run as one script. Exit code non-zero on any compile or run error.
//   dotnet fsi --exec tools/notebooks/run-notebook.fsx notebooks/01-mpo-decomposition.ipynb
open System
open System.Diagnostics
open System.IO
open System.Text.Json

let notebook =
    match fsi.CommandLineArgs |> Array.skip 1 with
    | [| path |] -> Path.GetFullPath path
    | _ -> eprintfn "usage: dotnet fsi --exec tools/notebooks/run-notebook.fsx NOTEBOOK.ipynb"; exit 2

let root = JsonDocument.Parse(File.ReadAllText notebook).RootElement

let property (path: string list) (element: JsonElement) =
    let rec go (e: JsonElement) (path: string list) =
        match path with
        | [] -> Some e
        | p :: rest when e.ValueKind = JsonValueKind.Object ->
            let mutable v = Unchecked.defaultof<JsonElement>
            if e.TryGetProperty(p, &v) then go v rest else None
        | _ -> None
    go element path

/// The notebook's default kernel language (Polyglot writes it in metadata.polyglot_notebook or kernelspec).
let defaultLanguage =
    [ [ "metadata"; "polyglot_notebook"; "defaultKernelName" ]; [ "metadata"; "kernelspec"; "language" ] ]
    |> List.tryPick (fun p -> property p root |> Option.map (fun e -> e.GetString().ToLowerInvariant()))
    |> Option.defaultValue "fsharp"

let isFSharp (language: string) = language = "fsharp" || language = "f#"

let source (cell: JsonElement) =
    match cell.GetProperty("source") with
    | s when s.ValueKind = JsonValueKind.Array -> String.Join("", [ for l in s.EnumerateArray() -> l.GetString() ])
    | s -> s.GetString()

let cells =
    [ for cell in root.GetProperty("cells").EnumerateArray() do
        if cell.GetProperty("cell_type").GetString() = "code" then
            let text = source cell
            let magic = text.Split('\n').[0].Trim()
            let language =
                if magic.StartsWith "#!" then magic.Substring(2).ToLowerInvariant()
                else
                    property [ "metadata"; "dotnet_interactive"; "language" ] cell
                    |> Option.orElse (property [ "metadata"; "polyglot_notebook"; "kernelName" ] cell)
                    |> Option.map (fun e -> e.GetString().ToLowerInvariant())
                    |> Option.defaultValue defaultLanguage
            if isFSharp language then
                yield (if magic.StartsWith "#!" then String.Join("\n", text.Split('\n') |> Array.skip 1) else text) ]

let script = notebook + ".fsx"
File.WriteAllText(script, String.Join("\n\n", cells) + "\n")
printfn "%s: %d F# cells" (Path.GetFileName notebook) cells.Length
let run = Process.Start(ProcessStartInfo("dotnet", [ "fsi"; "--quiet"; "--exec"; script ]))
run.WaitForExit()
exit run.ExitCode
