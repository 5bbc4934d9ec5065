module Mpo.Experiments.Tests.TruncationSweepTests

open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Data

[<Tests>]
let tests =
    testList "Decomposition.TruncationSweep" [
        test "low-rank baseline error comes from the tail of the spectrum" {
            let s = [| 3.0; 2.0; 1.0 |]
            Expect.floatClose Accuracy.veryHigh (TruncationSweep.lowRankError s 1) (sqrt (5.0 / 14.0)) "rank 1"
            Expect.equal (TruncationSweep.lowRankError s 3) 0.0 "full rank"
            Expect.equal (TruncationSweep.lowRankError s 0) 1.0 "rank 0" }

        test "sweep points: measured error ≤ bound, and the low-rank baseline fits the same budget" {
            let w = SyntheticWeights.ffnLike 3 96 64
            let f = FactorizationChooser.Choose(96, 64)
            use mpo = MpoDecomposer.Decompose(w, f, torch.float64)
            let points = TruncationSweep.run w mpo [ "cap 8", TruncationSpec.MaxBond 8; "tol", TruncationSpec.Tolerance 0.2 ]
            for p in points do
                Expect.isLessThanOrEqual p.Report.ActualError.Value (p.Report.ErrorBound * (1.0 + 1e-6)) p.Label
                Expect.isLessThanOrEqual (int64 p.LowRankRank * int64 (96 + 64)) p.Report.Parameters "baseline within budget" }

        test "the synthetic FFN weight is compressible at the bonds, unlike Gaussian noise" {
            // What makes it a fair stand-in for a trained matrix: the central bonds' Schmidt values decay.
            let spread (w: torch.Tensor) =
                let f = FactorizationChooser.Choose(int w.shape.[0], int w.shape.[1])
                use mpo = MpoDecomposer.Decompose(w, f, torch.float64)
                let s = mpo.Spectra.[f.CentralIndex]
                s.[0] / s.[s.Length / 2]
            let synthetic = spread (SyntheticWeights.ffnLike 1 384 96)
            use g = new torch.Generator(1UL)
            let noise = spread (torch.randn([| 384L; 96L |], generator = g))
            Expect.isGreaterThan synthetic (5.0 * noise) $"decay: synthetic {synthetic:F1} vs noise {noise:F1}"
            let w = SyntheticWeights.ffnLike 1 384 96
            Expect.floatClose Accuracy.medium (w.std().item<float32>() |> float) 0.04 "BERT-scale entries" }
    ]
