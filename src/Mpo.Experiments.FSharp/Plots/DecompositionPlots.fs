/// Figures of one decomposition: what the bonds carry (Schmidt spectra, MPOP Fig. 2a style) and what truncation
/// costs (relative error and its bound against the compression ratio, with the low-rank SVD baseline).
module Mpo.Experiments.Plots.DecompositionPlots

open Plotly.NET
open Plotly.NET.LayoutObjects
open Mpo.Decomposition
open Mpo.Experiments.Decomposition.TruncationSweep

/// Normalized Schmidt values λ_b,i / λ_b,0 of every bond on a log scale: the faster they fall, the more a bond can
/// be squeezed.
let spectra (title: string) (mpo: MatrixProductOperator) =
    [ for b in 1 .. mpo.Spectra.Count do
        let s = mpo.Spectra.[b - 1]
        let top = if s.Length > 0 && s.[0] > 0.0 then s.[0] else 1.0
        let central = if b = mpo.CentralIndex || b = mpo.CentralIndex + 1 then " (central)" else ""
        Chart.Line(x = [ 1 .. s.Length ], y = (s |> Array.map (fun l -> max (l / top) 1e-16)), Name = $"bond {b}, d = {s.Length}{central}") ]
    |> Chart.combine
    |> Chart.withXAxisStyle ("index i", AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle ("λ_b,i / λ_b,1", AxisType = StyleParam.AxisType.Log)
    |> Chart.withTitle title

/// Relative error (measured), the bound √Σε²/‖W‖ and the truncated-SVD error at equal parameters, against ρ.
let tradeOff (title: string) (points: Point list) =
    let points = points |> List.sortBy (fun p -> p.Report.CompressionRatio)
    let rho = points |> List.map (fun p -> p.Report.CompressionRatio)
    [ Chart.Line(x = rho, y = (points |> List.map (fun p -> p.Report.RelativeError.GetValueOrDefault())), Name = "MPO, measured", ShowMarkers = true)
      Chart.Line(x = rho, y = (points |> List.map (fun p -> p.Report.RelativeBound)), Name = "MPO, bound √Σε²", ShowMarkers = true,
                 LineDash = StyleParam.DrawingStyle.Dash)
      Chart.Line(x = rho, y = (points |> List.map (fun p -> p.LowRankRelativeError)), Name = "truncated SVD, same #params", ShowMarkers = true,
                 LineDash = StyleParam.DrawingStyle.Dot) ]
    |> Chart.combine
    |> Chart.withXAxisStyle ("compression ratio ρ = MPO params / dense params", AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle ("‖W − W′‖_F / ‖W‖_F")
    |> Chart.withTitle title
