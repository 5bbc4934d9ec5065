/// The figures Mpo draws, on plain data: spectra per bond, trade-offs against compression, entropy per bond, accuracy
/// against trained parameters with its Pareto front, trajectories (squeezing), expert load. The demo, the notebooks,
/// the baselines and `mpo report` (through RecordPlots, over store records) all draw with these.
module Mpo.Experiments.Plots.Figures

open Plotly.NET

/// A named line of (x, y) points.
type Series =
    { Name: string
      Points: (float * float) list
      Dash: StyleParam.DrawingStyle option }

let series (name: string) (points: (float * float) list) = { Name = name; Points = points; Dash = None }

let private line (s: Series) =
    let points = s.Points |> List.sortBy fst
    match s.Dash with
    | Some d -> Chart.Line(x = List.map fst points, y = List.map snd points, Name = s.Name, ShowMarkers = true, LineDash = d)
    | None -> Chart.Line(x = List.map fst points, y = List.map snd points, Name = s.Name, ShowMarkers = true)

let private logAxis (log: bool) = if log then StyleParam.AxisType.Log else StyleParam.AxisType.Linear

/// Normalized Schmidt values λ_b,i / λ_b,1 of each bond on log axes: the faster they fall, the more a bond can be
/// squeezed. <c>bonds</c>: a name per bond ("bond 2, d = 64 (central)") and its values.
let spectra (title: string) (bonds: (string * float[]) list) =
    [ for name, s in bonds ->
        let top = if s.Length > 0 && s.[0] > 0.0 then s.[0] else 1.0
        Chart.Line(x = [ 1 .. s.Length ], y = (s |> Array.map (fun l -> max (l / top) 1e-16)), Name = name) ]
    |> Chart.combine
    |> Chart.withXAxisStyle ("index i", AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle ("λ_b,i / λ_b,1", AxisType = StyleParam.AxisType.Log)
    |> Chart.withTitle title

/// Lines against compression (or any x): error vs ρ, perplexity vs ρ, measured vs bound vs SVD.
let tradeOff (title: string) (xTitle: string, logX: bool) (yTitle: string, logY: bool) (lines: Series list) =
    lines
    |> List.map line
    |> Chart.combine
    |> Chart.withXAxisStyle (xTitle, AxisType = logAxis logX)
    |> Chart.withYAxisStyle (yTitle, AxisType = logAxis logY)
    |> Chart.withTitle title

/// Entanglement entropy of each bond, one line per matrix (MPOP: where the information sits along the chain).
let entropy (title: string) (matrices: (string * float[]) list) =
    [ for name, e in matrices -> Chart.Line(x = [ 1 .. e.Length ], y = e, Name = name, ShowMarkers = true) ]
    |> Chart.combine
    |> Chart.withXAxisStyle ("bond b")
    |> Chart.withYAxisStyle ("entropy S_b (nats)")
    |> Chart.withTitle title

/// The points no other point beats: at most as many parameters and a metric at least as good (higher, or lower when
/// <c>higherIsBetter</c> is false: perplexity, loss), one strictly better (sorted by x).
let paretoFrontBy (higherIsBetter: bool) (points: (string * float * float) list) =
    let better a b = if higherIsBetter then a > b else a < b
    points
    |> List.filter (fun (_, x, y) -> not (points |> List.exists (fun (_, x2, y2) -> x2 <= x && not (better y y2) && (x2 < x || better y2 y))))
    |> List.sortBy (fun (_, x, _) -> x)

/// The Pareto front of a metric where higher is better (accuracy, F1, BLEU).
let paretoFront points = paretoFrontBy true points

/// A metric against trained parameters (log x), one marker per labelled point and the Pareto front as a line.
let paretoBy (higherIsBetter: bool) (title: string) (xTitle: string) (yTitle: string) (points: (string * float * float) list) =
    let front = paretoFrontBy higherIsBetter points
    let groups = points |> List.groupBy (fun (label, _, _) -> label)
    let markers = [ for label, ps in groups -> Chart.Point(x = [ for _, x, _ in ps -> x ], y = [ for _, _, y in ps -> y ], Name = label) ]
    let frontLine = Chart.Line(x = [ for _, x, _ in front -> x ], y = [ for _, _, y in front -> y ], Name = "Pareto front", LineDash = StyleParam.DrawingStyle.Dash)
    markers @ [ frontLine ]
    |> Chart.combine
    |> Chart.withXAxisStyle (xTitle, AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle (if higherIsBetter then yTitle else yTitle + " (lower is better)")
    |> Chart.withTitle title

/// <see cref="paretoBy"/> for a metric where higher is better.
let pareto title xTitle yTitle points = paretoBy true title xTitle yTitle points

/// Trajectories: one line per run (dimension squeezing: the metric as parameters fall).
let trajectories (title: string) (xTitle: string, logX: bool) (yTitle: string) (lines: Series list) =
    lines
    |> List.map (fun s -> Chart.Line(x = List.map fst s.Points, y = List.map snd s.Points, Name = s.Name, ShowMarkers = true))
    |> Chart.combine
    |> Chart.withXAxisStyle (xTitle, AxisType = logAxis logX)
    |> Chart.withYAxisStyle yTitle
    |> Chart.withTitle title

/// The share of tokens each expert received, per layer (rows) and expert (columns); balanced routing is flat 1/n.
let expertLoad (title: string) (layers: (string * float[]) list) =
    let experts = layers |> List.map (snd >> Array.length) |> List.fold max 0
    Chart.Heatmap(
        zData = [ for _, load in layers -> Array.toList load ],
        X = [ for e in 0 .. experts - 1 -> sprintf "expert %d" e ],
        Y = [ for name, _ in layers -> name ])
    |> Chart.withTitle title

/// A metric (mean ± std over seeds, as error bars) against a numeric hyper-parameter of an ablation: the gradient
/// mask's p_b, the number of experts or of cores. <c>points</c>: (value, mean, std).
let sweep (title: string) (xTitle: string, logX: bool) (yTitle: string) (points: (float * float * float) list) =
    let points = points |> List.sortBy (fun (x, _, _) -> x)
    Chart.Line(x = [ for x, _, _ in points -> x ], y = [ for _, m, _ in points -> m ], Name = yTitle, ShowMarkers = true)
    |> Chart.withYErrorStyle (Array = [ for _, _, s in points -> s ])
    |> Chart.withXAxisStyle (xTitle, AxisType = logAxis logX)
    |> Chart.withYAxisStyle yTitle
    |> Chart.withTitle title
