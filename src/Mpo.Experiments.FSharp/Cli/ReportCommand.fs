/// `mpo report STORE`: the store's finished trials grouped by configuration fields, metrics as mean ± std over seeds
/// (Markdown or CSV), and with --out the tables and every figure the records have data for.
module Mpo.Experiments.Cli.ReportCommand

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Plots
open Mpo.Experiments.Reports
open Mpo.Experiments.Store.ResultStore

let private list (s: string) = s.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray

/// Writes every figure the records have data for; returns the files.
let figures (folder: string) (by: string list) (metrics: string list) (records: Record list) =
    let finished = records |> List.filter (fun r -> r.Status = Finished)
    let save name (chart: Plotly.NET.GenericChart option) =
        match chart with
        | Some c -> Export.save (Path.Combine(folder, name + ".html")) 1000 600 c
        | None -> []
    let lead = metrics |> List.tryFind (fun m -> m.StartsWith "test.") |> Option.defaultValue "test.accuracy"
    [ yield! save "accuracy-vs-parameters" (RecordPlots.accuracyVsParameters lead by finished)
      yield! save "error-vs-compression" (RecordPlots.errorVsCompression by finished)
      yield! save "entropy" (RecordPlots.entropy finished)
      yield! save "squeezing" (RecordPlots.squeezing (lead.Replace("test.", "dev.")) finished)
      // an ablation grouped by one numeric field: the metric along that axis
      match by with
      | [ field ] -> yield! save (sprintf "%s-vs-%s" (lead.Replace("test.", "")) (field.Replace("method.", ""))) (RecordPlots.metricVsField lead field finished)
      | _ -> ()
      // per-trial figures for the first trial of each group (a figure per trial of a large grid helps nobody)
      for _, members in Report.groups by finished do
          let r = List.head members
          for matrix in RecordPlots.spectrumMatrices r do
              yield! save (sprintf "spectra-%s-%s" r.TrialId (matrix.Replace('/', '_'))) (RecordPlots.spectra r matrix)
          yield! save ("expert-load-" + r.TrialId) (RecordPlots.expertLoad r) ]

let run (args: ParseResults<ReportArgs>) =
    let folder =
        match args.TryGetResult ReportArgs.Store with
        | Some f -> f
        | None -> invalidArg "store" "give the result store folder: mpo report STORE (see mpo report --help)"
    let store = Store folder
    if not (Directory.Exists store.TrialsFolder) then
        raise (DirectoryNotFoundException(sprintf "%s is not a result store: %s does not exist" folder store.TrialsFolder))
    let records = store.LoadStrict() |> Map.toList |> List.map snd |> List.sortBy (fun r -> r.StartedAt)
    let finished = records |> List.filter (fun r -> r.Status = Finished)
    if finished.IsEmpty then invalidArg "store" (sprintf "%s has no finished trial (%d failed)" folder records.Length)
    let by = args.TryGetResult ReportArgs.By |> Option.map list |> Option.defaultWith (fun () -> Report.varying finished)
    let metrics = args.TryGetResult ReportArgs.Metrics |> Option.map list |> Option.defaultWith (fun () -> Report.defaultMetrics finished)
    for m in metrics do
        if not (finished |> List.exists (fun r -> r.Metrics.ContainsKey m)) then
            let known = finished |> List.collect (fun r -> r.Metrics |> Map.toList |> List.map fst) |> List.distinct
            invalidArg "metrics" (sprintf "no finished trial has metric '%s' (they have: %s)" m (String.Join(", ", known)))
    for f in by do
        if not (finished |> List.exists (fun r -> (configValue r f).IsSome)) then
            let known = finished |> List.collect (Report.configFields >> List.map fst) |> List.distinct
            invalidArg "by" (sprintf "no trial has configuration field '%s' (they have: %s)" f (String.Join(", ", known)))
    let markdown = Report.markdown by metrics records
    let failures = Report.failures records
    match args.GetResult(ReportArgs.Format, defaultValue = "md") with
    | "md" ->
        printfn "%s: %d finished trials%s\n\n%s" store.Folder finished.Length (if failures.IsEmpty then "" else sprintf ", %d failed" failures.Length) markdown
        if not failures.IsEmpty then printfn "\nfailed:\n%s" (String.Join("\n", failures))
    | "csv" -> printf "%s" (Report.csv by metrics records)
    | other -> invalidArg "format" (sprintf "--format is md or csv, not '%s'" other)
    match args.TryGetResult ReportArgs.Out with
    | Some out ->
        Directory.CreateDirectory out |> ignore
        AtomicFile.WriteAllText(Path.Combine(out, "table.md"), markdown + "\n" + (if failures.IsEmpty then "" else "\nfailed:\n" + String.Join("\n", failures) + "\n"))
        AtomicFile.WriteAllText(Path.Combine(out, "table.csv"), Report.csv by metrics records)
        let files = figures out by metrics records
        if not (files |> List.exists (fun f -> f.EndsWith ".png")) && not files.IsEmpty then
            eprintfn "mpo: note: no headless Chromium found (apt-get install chromium): figures written as HTML only"
        eprintfn "wrote %s" (String.Join(", ", Path.Combine(out, "table.md") :: Path.Combine(out, "table.csv") :: files))
    | None -> ()
    0
