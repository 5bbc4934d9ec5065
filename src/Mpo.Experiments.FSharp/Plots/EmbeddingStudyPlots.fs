/// MPOP Figure 2's two panels as plain functions over EmbeddingStudy's points: relative reconstruction error of a
/// word embedding against the compression ratio, (a) by method, (b) MPO by number of cores.
module Mpo.Experiments.Plots.EmbeddingStudyPlots

open Plotly.NET
open Mpo.Experiments.Decomposition.EmbeddingStudy

let private dash (p: Point) =
    match p.Method with
    | "svd" -> StyleParam.DrawingStyle.Dot
    | "cp" -> StyleParam.DrawingStyle.Dash
    | "tucker" -> StyleParam.DrawingStyle.DashDot
    | _ -> StyleParam.DrawingStyle.Solid

/// One line per method series, points sorted by ρ; the full-bond MPO (ρ > 1, error 0) is left out of a log plot.
let private lines (points: Point list) =
    points
    |> List.filter (fun p -> p.TargetRatio.IsSome)
    |> List.groupBy series
    |> List.map (fun (name, ps) ->
        let ps = ps |> List.sortBy (fun p -> p.CompressionRatio)
        Chart.Line(x = (ps |> List.map (fun p -> p.CompressionRatio)), y = (ps |> List.map (fun p -> p.RelativeError)),
                   Name = name, ShowMarkers = true, LineDash = dash ps.Head))

let private axes (title: string) chart =
    chart
    |> Chart.combine
    |> Chart.withXAxisStyle ("compression ratio ρ = parameters / (rows·cols)", AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle ("relative error ‖W − W′‖_F / ‖W‖_F")
    |> Chart.withTitle title

let private header (points: Point list) =
    match points with
    | p :: _ -> $"{p.Model} {p.Tensor} [{p.Rows}×{p.Cols}]"
    | [] -> "no points"

/// Panel (a): CP, Tucker, the truncated SVD, and the MPO with the numbers of cores CP was run with (the same n
/// local indices split three ways).
let methods (points: Point list) =
    let tensorCores = points |> List.filter (fun p -> p.Method = "cp" || p.Method = "tucker") |> List.map (fun p -> p.Cores) |> set
    lines (points |> List.filter (fun p -> p.Method <> "mpo" || tensorCores.IsEmpty || tensorCores.Contains p.Cores))
    |> axes $"(a) MPO vs CP, Tucker and SVD: {header points}"

/// Panel (b): the MPO with each number of cores, the truncated SVD for reference.
let cores (points: Point list) =
    lines (points |> List.filter (fun p -> p.Method = "mpo" || p.Method = "svd"))
    |> axes $"(b) MPO with n cores: {header points}"
