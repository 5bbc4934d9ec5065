/// Executes a Polyglot notebook's F# cells in order in one F# Interactive session (FSharp.Compiler.Service's
/// FsiEvaluationSession, hosted here: the .NET Interactive kernel is deprecated and not obtainable) and captures each
/// cell's outputs separately — its stdout and stderr, and the value of its last expression: a Plotly chart as a PNG
/// (headless Chromium), a Markdown table as text/markdown, anything else as F# Interactive prints it — so the
/// notebook can be written back with its outputs and read on a code host without a kernel. Execution stops at the
/// first failing cell, as "run all" does; its error is the cell's output.
module Mpo.Experiments.Notebooks.Executor

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open FSharp.Compiler.Diagnostics
open FSharp.Compiler.Interactive.Shell
open Plotly.NET
open Mpo.Experiments.Notebooks.Ipynb

/// What one code cell did.
type CellRun =
    { /// Position among all cells (0-based).
      Index: int
      ExecutionCount: int
      Outputs: Output list
      Failed: bool
      Seconds: float }

/// A text that is a Markdown table (what Reports.Tables.markdown returns).
let private isMarkdownTable (s: string) =
    let lines = s.Trim().Split('\n')
    lines.Length >= 2 && lines |> Array.forall (fun l -> l.TrimStart().StartsWith "|") && lines.[1].Contains "---"

/// How a cell's value is shown: None for unit.
let render (format: obj -> Type -> string) (value: obj) (valueType: Type) : (string * string) list option =
    match value with
    | null -> None
    | :? GenericChart as chart ->
        let folder = Directory.CreateTempSubdirectory("mpo-notebook-chart-")
        try
            let files = Mpo.Experiments.Plots.Export.save (Path.Combine(folder.FullName, "chart.html")) 900 500 chart
            match files |> List.tryFind (fun f -> f.EndsWith ".png") with
            | Some png -> Some [ "image/png", Convert.ToBase64String(File.ReadAllBytes png); "text/plain", "Plotly chart (PNG rendered by headless Chromium)" ]
            | None ->
                // no browser to render it: the chart's own HTML (plotly.js from its CDN, as a code host would load it)
                Some [ "text/html", GenericChart.toChartHTML chart; "text/plain", "Plotly chart (no headless Chromium for a PNG)" ]
        finally
            try folder.Delete true with _ -> ()
    | :? string as s when isMarkdownTable s -> Some [ "text/markdown", s; "text/plain", s ]
    | v -> Some [ "text/plain", format v valueType ]

/// Runs every F# code cell of <c>notebook</c> (read from <c>file</c>) in order; returns each run code cell's outputs.
/// Cells after a failing one are not run. Non-F# cells cannot run here and are reported as failures.
let execute (file: string) (notebook: JsonObject) (onCell: CellRun -> unit) =
    let kernel = defaultKernel notebook
    let cells = notebook.["cells"].AsArray() |> Seq.map (fun c -> c :?> JsonObject) |> Array.ofSeq
    // relative #load and #r paths resolve against the notebook's folder, as in a kernel started there
    let script = Path.GetFullPath file
    let cwd = Directory.GetCurrentDirectory()
    Directory.SetCurrentDirectory(Path.GetDirectoryName script)
    use _restore = { new IDisposable with member _.Dispose() = Directory.SetCurrentDirectory cwd }
    let config = FsiEvaluationSession.GetDefaultConfiguration()
    let fsiOut, fsiErr = new StringWriter(), new StringWriter()
    use session =
        FsiEvaluationSession.Create(config, [| "fsi"; "--noninteractive"; "--nologo"; "--gui-"; "--quiet" |], new StringReader(""), fsiOut, fsiErr, collectible = false)
    let format (v: obj) (t: Type) = session.FormatValue(v, t)
    let stdout0, stderr0 = Console.Out, Console.Error
    let mutable failed = false
    let mutable count = 0
    let runs = ResizeArray<CellRun>()
    for index in 0 .. cells.Length - 1 do
        let cell = cells.[index]
        if not failed && cell.["cell_type"].GetValue<string>() = "code" then
            let cellKernel, code = kernelOf kernel cell
            count <- count + 1
            let clock = Stopwatch.StartNew()
            let outputs, cellFailed =
                if not (isFSharp cellKernel) then
                    [ Error("UnsupportedKernel", sprintf "cell %d is %s; Mpo executes F# cells only" (index + 1) cellKernel, []) ], true
                else
                    let out, err = new StringWriter(), new StringWriter()
                    Console.SetOut out
                    Console.SetError err
                    let result, diagnostics =
                        try session.EvalInteractionNonThrowing(code, script)
                        finally
                            Console.Out.Flush()
                            Console.SetOut stdout0
                            Console.SetError stderr0
                    let warnings = [ for d in diagnostics do if d.Severity = FSharpDiagnosticSeverity.Warning then yield d.ToString() ]
                    let errors = [ for d in diagnostics do if d.Severity = FSharpDiagnosticSeverity.Error then yield d.ToString() ]
                    let streams =
                        [ if out.ToString() <> "" then Stream("stdout", out.ToString())
                          let e = String.Join("\n", (err.ToString().TrimEnd() :: warnings) |> List.filter ((<>) ""))
                          if e <> "" then Stream("stderr", e + "\n") ]
                    match result with
                    | Choice1Of2 (Some value) ->
                        streams @ (render format value.ReflectionValue value.ReflectionType |> Option.map Result |> Option.toList), false
                    | Choice1Of2 None -> streams, false
                    | Choice2Of2 e ->
                        let inner = match e with :? Reflection.TargetInvocationException as t when not (isNull t.InnerException) -> t.InnerException | e -> e
                        let message = if errors.IsEmpty then inner.Message else String.Join("\n", errors)
                        streams @ [ Error(inner.GetType().Name, message, message.Split('\n') |> List.ofArray) ], true
            let run = { Index = index; ExecutionCount = count; Outputs = outputs; Failed = cellFailed; Seconds = clock.Elapsed.TotalSeconds }
            runs.Add run
            onCell run
            failed <- cellFailed
    List.ofSeq runs

/// The notebook with each run cell's outputs and execution count written in; cells that did not run lose stale
/// outputs (a committed notebook shows only what this execution produced).
let withOutputs (notebook: JsonObject) (runs: CellRun list) =
    let result = notebook.DeepClone().AsObject()
    let cells = result.["cells"].AsArray()
    let byIndex = runs |> List.map (fun r -> r.Index, r) |> Map.ofList
    for i in 0 .. cells.Count - 1 do
        let cell = cells.[i].AsObject()
        if cell.["cell_type"].GetValue<string>() = "code" then
            match Map.tryFind i byIndex with
            | Some r ->
                cell.["execution_count"] <- r.ExecutionCount
                cell.["outputs"] <- JsonArray([| for o in r.Outputs -> toJson r.ExecutionCount o |])
            | None ->
                cell.["execution_count"] <- null
                cell.["outputs"] <- JsonArray()
    result
