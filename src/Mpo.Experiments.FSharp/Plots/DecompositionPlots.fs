/// Figures of one decomposition: what the bonds carry (Schmidt spectra, MPOP Fig. 2a style) and what truncation
/// costs (relative error and its bound against the compression ratio, with the low-rank SVD baseline). Drawn by the
/// shared figure functions (Plots/Figures).
module Mpo.Experiments.Plots.DecompositionPlots

open Plotly.NET
open Mpo.Decomposition
open Mpo.Experiments.Decomposition.TruncationSweep

/// Each bond's Schmidt values, named by bond and size, the central tensor's bonds marked.
let bonds (mpo: MatrixProductOperator) =
    [ for b in 1 .. mpo.Spectra.Count ->
        let s = mpo.Spectra.[b - 1]
        let central = if b = mpo.CentralIndex || b = mpo.CentralIndex + 1 then " (central)" else ""
        $"bond {b}, d = {s.Length}{central}", s ]

/// Normalized Schmidt values λ_b,i / λ_b,0 of every bond on a log scale: the faster they fall, the more a bond can
/// be squeezed.
let spectra (title: string) (mpo: MatrixProductOperator) = Figures.spectra title (bonds mpo)

/// Relative error (measured), the bound √Σε²/‖W‖ and the truncated-SVD error at equal parameters, against ρ.
let tradeOff (title: string) (points: Point list) =
    let at (value: Point -> float) = [ for p in points -> p.Report.CompressionRatio, value p ]
    Figures.tradeOff title ("compression ratio ρ = MPO params / dense params", true) ("‖W − W′‖_F / ‖W‖_F", false)
        [ Figures.series "MPO, measured" (at (fun p -> p.Report.RelativeError.GetValueOrDefault()))
          { Figures.series "MPO, bound √Σε²" (at (fun p -> p.Report.RelativeBound)) with Dash = Some StyleParam.DrawingStyle.Dash }
          { Figures.series "truncated SVD, same #params" (at (fun p -> p.LowRankRelativeError)) with Dash = Some StyleParam.DrawingStyle.Dot } ]
