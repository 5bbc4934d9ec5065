/// Truncating every weight matrix of a pre-trained model at once, MPO against a truncated SVD with the same number
/// of parameters per matrix: what compression costs a real model before any fine-tuning, the starting point of
/// MPOP's dimension squeezing (which then fine-tunes to win the loss back).
module Mpo.Experiments.Decomposition.ModelTruncation

open System
open TorchSharp
open Mpo.Decomposition
open Mpo.Models

type Tensor = torch.Tensor

/// One decomposed matrix: the pre-trained weight (float64), its full-rank MPO, and its SVD for the baseline.
type Matrix =
    { Name: string
      Weight: Tensor
      Mpo: MatrixProductOperator
      U: Tensor
      S: Tensor
      Vh: Tensor
      /// The singular values, for the SVD baseline's error (Eckart–Young) without reconstructing.
      Singular: float[] }

    member m.Rows = int m.Weight.shape.[0]
    member m.Cols = int m.Weight.shape.[1]
    member m.Dense = int64 m.Rows * int64 m.Cols

/// Decomposes each weight into an MPO with the chooser's factors (5 cores, padded where a size factors badly).
let decompose (weights: (string * Tensor) list) =
    [ for name, w in weights ->
        let w64 = w.detach().``to``(torch.float64)
        let f = FactorizationChooser.Choose(int w64.shape.[0], int w64.shape.[1])
        let struct (u, s, vh) = torch.linalg.svd(w64, fullMatrices = false)
        { Name = name; Weight = w64; Mpo = MpoDecomposer.Decompose(w64, f, torch.float64); U = u; S = s; Vh = vh
          Singular = s.data<float>().ToArray() } ]

/// One matrix under one truncation: the MPO's report (error measured) and reconstruction, and the best rank-r
/// approximation whose r·(rows + cols) parameters fit in the MPO's count.
type Cut =
    { Name: string
      Report: TruncationReport
      MpoWeight: Tensor
      SvdRank: int
      SvdWeight: Tensor
      SvdRelativeError: float }

let cut (spec: TruncationSpec) (m: Matrix) =
    let truncated = m.Mpo.TruncateMeasured(spec, m.Weight)
    truncated.Mpo.Dispose()
    let mpoWeight, report = truncated.Matrix, truncated.Report
    let rank = FormatBudget.SvdRank(m.Rows, m.Cols, report.Parameters)
    let svdWeight = m.U.narrow(1, 0, int64 rank).mul(m.S.narrow(0, 0, int64 rank)).matmul(m.Vh.narrow(0, 0, int64 rank))
    { Name = m.Name; Report = report; MpoWeight = mpoWeight; SvdRank = rank; SvdWeight = svdWeight
      SvdRelativeError = TruncationSweep.lowRankError m.Singular rank }

/// Runs <c>evaluate</c> with the given matrices copied into the model's parameters, then puts the pre-trained
/// weights back (the model is left as it was found).
let evaluateWith (model: PretrainedModel) (matrices: Matrix list) (weights: (string * Tensor) list) (evaluate: unit -> 'r) =
    let parameters = dict [ for struct (n, p) in model.named_parameters () -> n, p ]
    let copy (pairs: (string * Tensor) list) =
        use _ = torch.no_grad ()
        for name, w in pairs do parameters.[name].copy_(w) |> ignore
    copy weights
    try evaluate ()
    finally copy [ for m in matrices -> m.Name, m.Weight ]

/// The weights of the matrices MPOP decomposes in <c>model</c> (every family of Mpo.Tuning.TargetPatterns: the word
/// embedding, the attention projections, the FFN matrices, the pooler), as its parameters name and store them
/// (GPT-2's Conv1D as [in, out]: the transpose has the same MPO spectra, and the weights are substituted in place).
let selectWeights (model: PretrainedModel) =
    let parameters = dict [ for struct (name, p) in model.named_parameters () -> name, p :> Tensor ]
    [ for target in Mpo.Tuning.TargetPatterns.Match model -> target.Path + ".weight", parameters.[target.Path + ".weight"] ]

/// Summary of one truncation over all matrices.
type Summary =
    { MpoParameters: int64
      CentralParameters: int64
      DenseParameters: int64
      /// ‖ΔW‖_F / ‖W‖_F averaged over the matrices.
      MeanRelativeError: float
      SvdMeanRelativeError: float }

let summarize (matrices: Matrix list) (cuts: Cut list) =
    { MpoParameters = cuts |> List.sumBy (fun c -> c.Report.Parameters)
      CentralParameters = cuts |> List.sumBy (fun c -> c.Report.CentralParameters)
      DenseParameters = matrices |> List.sumBy (fun m -> m.Dense)
      MeanRelativeError = cuts |> List.averageBy (fun c -> c.Report.RelativeError.GetValueOrDefault())
      SvdMeanRelativeError = cuts |> List.averageBy (fun c -> c.SvdRelativeError) }
