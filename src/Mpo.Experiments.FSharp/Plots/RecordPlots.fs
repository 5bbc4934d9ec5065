/// Figures over result-store records: what `mpo report` draws, reading the fields the methods log (ResultStore.Keys):
/// accuracy against trained parameters with its Pareto front, error against compression, spectra per bond and layer,
/// entropy per bond, squeezing trajectories, expert load.
module Mpo.Experiments.Plots.RecordPlots

open System
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Reports

let private name (by: string list) (members: Record list) (key: string list) =
    match by with
    | [] -> (List.head members).TrialId
    | _ -> String.Join(", ", key)

/// Series of one record whose names start with <c>prefix</c>, by the rest of the name.
let seriesUnder (prefix: string) (r: Record) =
    [ for KeyValue(k, v) in r.Series do
        if k.StartsWith prefix then yield k.Substring prefix.Length, Array.ofList v ]

/// Whether a larger value of a logged metric is the better one: not for perplexities, losses and Self-BLEU (which
/// measures how alike the samples are).
let higherIsBetter (metric: string) =
    not (metric.Contains "perplexity" || metric.EndsWith "loss" || metric.Contains "self_bleu")

/// <c>metric</c> (mean over seeds) against the mean trained parameters of each group, with the Pareto front: the
/// trade-off parameter-efficient methods are judged by. None when no record has both.
let accuracyVsParameters (metric: string) (by: string list) (records: Record list) =
    let points =
        [ for key, members, cells, _ in Report.rows by [ Keys.trainableParameters; metric ] records do
            match cells with
            | [ _, p; _, m ] when p.Count > 0 && m.Count > 0 -> yield name by members key, p.Mean, m.Mean
            | _ -> () ]
    if points.IsEmpty then None
    else Some(Figures.paretoBy (higherIsBetter metric) (sprintf "%s against trained parameters" metric) "trained parameters" metric points)

/// <c>metric</c> (mean ± std over seeds) against a configuration field whose every group value is a number (an
/// ablation's axis: method.gradient_mask, method.experts, method.cores). None when the field is not numeric or has
/// fewer than two values.
let metricVsField (metric: string) (field: string) (records: Record list) =
    let parse (s: string) =
        match Double.TryParse(s, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
        | true, x -> Some x
        | _ -> None
    let rows = Report.rows [ field ] [ metric ] records
    let points =
        [ for key, _, cells, _ in rows do
            match key, cells with
            | [ k ], [ _, a ] when a.Count > 0 -> yield parse k |> Option.map (fun x -> x, a.Mean, a.Std)
            | _ -> yield None ]
    if points.Length < 2 || points |> List.exists Option.isNone then None
    else
        let values = points |> List.choose id
        let logX = values |> List.forall (fun (x, _, _) -> x > 0.0) && (values |> List.map (fun (x, _, _) -> x) |> fun xs -> List.max xs / List.min xs >= 8.0)
        Some(Figures.sweep (sprintf "%s against %s (mean ± std over seeds)" metric field) (field, logX) metric values)

/// Relative reconstruction error against the compression ratio ρ, one line per group.
let errorVsCompression (by: string list) (records: Record list) =
    let lines =
        [ for key, members in Report.groups by (records |> List.filter (fun r -> r.Status = Finished)) do
            let points =
                [ for r in members do
                    match Map.tryFind Keys.compressionRatio r.Metrics, Map.tryFind Keys.relativeError r.Metrics with
                    | Some rho, Some e -> yield rho, e
                    | _ -> () ]
            if not points.IsEmpty then yield Figures.series (name by members key) points ]
    if lines.IsEmpty then None
    else Some(Figures.tradeOff "reconstruction error against compression" ("compression ratio ρ", true) ("‖W − W′‖_F / ‖W‖_F", false) lines)

/// The Schmidt spectra a record logged for one matrix, one line per bond (None when it logged none).
let spectra (r: Record) (matrix: string) =
    let bonds = seriesUnder (sprintf "spectrum/%s/" matrix) r |> List.sortBy (fun (b, _) -> b.Length, b)
    if bonds.IsEmpty then None
    else Some(Figures.spectra (sprintf "%s: Schmidt values per bond of %s" r.TrialId matrix) bonds)

/// The matrices a record logged spectra for (its layers).
let spectrumMatrices (r: Record) =
    seriesUnder "spectrum/" r |> List.map (fun (rest, _) -> rest.Substring(0, rest.LastIndexOf '/')) |> List.distinct

/// Entropy per bond of every matrix the records logged it for.
let entropy (records: Record list) =
    let lines =
        [ for r in records do
            for matrix, e in seriesUnder "entropy/" r -> (if records.Length > 1 then r.TrialId + ": " + matrix else matrix), e ]
    if lines.IsEmpty then None else Some(Figures.entropy "entanglement entropy per bond" lines)

/// Each record's squeezing trajectory: <c>metric</c> after each squeeze against the parameters left.
let squeezing (metric: string) (records: Record list) =
    let lines =
        [ for r in records do
            match Map.tryFind Keys.squeezeParameters r.Series, Map.tryFind (Keys.squeezeMetric metric) r.Series with
            | Some ps, Some ms when ps.Length = ms.Length && not ps.IsEmpty -> yield Figures.series r.TrialId (List.zip ps ms)
            | _ -> () ]
    if lines.IsEmpty then None
    else Some(Figures.trajectories (sprintf "dimension squeezing: %s as bonds shrink" metric) ("parameters", true) metric lines)

/// The share of tokens per expert of every MoE layer a record logged.
let expertLoad (r: Record) =
    let layers = seriesUnder "expert_load/" r
    if layers.IsEmpty then None else Some(Figures.expertLoad (sprintf "%s: tokens per expert" r.TrialId) layers)
