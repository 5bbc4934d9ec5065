/// The error/compression trade-off of one matrix: truncate its MPO at several settings and measure each, next to
/// the classic baseline of a truncated SVD with the same parameter count.
module Mpo.Experiments.Decomposition.TruncationSweep

open TorchSharp
open Mpo.Decomposition

/// One row of the trade-off: a named truncation, its report (actual error measured), and the error of the best
/// rank-r approximation W ≈ U_r Σ_r V_rᵀ whose r·(rows + cols) parameters fit in the same budget.
type Point =
    { Label: string
      Report: TruncationReport
      LowRankRank: int
      LowRankRelativeError: float }

/// Bond caps worth looking at for a matrix: full, then halving down to 4.
let defaultCaps (mpo: MatrixProductOperator) =
    let largest = Seq.max mpo.Bonds
    largest :: (Seq.unfold (fun c -> if c >= 4 then Some(c, c / 2) else None) 256 |> Seq.filter (fun c -> c < largest) |> List.ofSeq)

/// Relative error of the best rank-r approximation, from the singular values of W.
let lowRankError (singular: float[]) (rank: int) =
    let total = singular |> Array.sumBy (fun s -> s * s)
    let tail = singular |> Array.skip (min rank singular.Length) |> Array.sumBy (fun s -> s * s)
    if total = 0.0 then 0.0 else sqrt (tail / total)

/// What every point compares against: W in float64 and its singular values (computed once per matrix).
type Reference = { W: torch.Tensor; Singular: float[] }

let reference (w: torch.Tensor) =
    let w64 = w.``to``(torch.float64)
    { W = w64; Singular = (use s = torch.linalg.svdvals(w64) in s.data<float>().ToArray()) }

/// Truncates <c>mpo</c> (the decomposition of <c>reference.W</c>) as <c>spec</c> asks and measures the error.
let point (reference: Reference) (mpo: MatrixProductOperator) (label: string, spec: TruncationSpec) : Point =
    use scope = torch.NewDisposeScope()
    let f = mpo.Factorization
    use cut = mpo.TruncateMeasured(spec, reference.W)
    let report = cut.Report
    let rank = FormatBudget.SvdRank(f.Rows, f.Cols, report.Parameters)
    { Label = label; Report = report; LowRankRank = rank; LowRankRelativeError = lowRankError reference.Singular rank }

/// Every spec against one reference.
let run (w: torch.Tensor) (mpo: MatrixProductOperator) (specs: (string * TruncationSpec) list) : Point list =
    let r = reference w
    specs |> List.map (point r mpo)
