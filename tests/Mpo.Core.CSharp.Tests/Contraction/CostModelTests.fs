module Mpo.Core.Tests.CostModelTests

open Expecto
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Core.Tests.Support

/// BERT-base FFN 768→3072 as in peers.md §3.1 (I = [3,4,4,4,4] inputs, J = [4,4,8,6,4] outputs): the layer's weight
/// is [3072, 768], so rows (out) are [4,4,8,6,4] and columns (in) [3,4,4,4,4].
let ffn = MpoFactorization([|4;4;8;6;4|], [|3;4;4;4;4|])

let capped (cap: int) = ffn.FullBonds() |> Array.map (fun d -> min d cap)

[<Tests>]
let tests =
    testList "Contraction.CostModel" [
        test "factorized MACs per token match the derived table (×dense: 292, 70, 21, 2.3, 0.67) in the cheaper direction" {
            let dense = 768.0 * 3072.0
            for cap, expected in [ 100_000, 292.0; 128, 70.0; 64, 21.0; 16, 2.3; 8, 0.67 ] do
                let bonds = capped cap
                let forward = CostModel.Sweep(ffn.RowFactors, ffn.ColFactors, bonds, 1L, false)
                let backward = CostModel.Sweep(Seq.rev ffn.RowFactors |> Array.ofSeq, Seq.rev ffn.ColFactors |> Array.ofSeq, Array.rev bonds, 1L, false)
                let ratio = min forward.Macs backward.Macs / dense
                expectClose 0.03 ratio expected $"D ≤ {cap}" }

        test "parameters of the same table: 2,544,016 / 598,416 / 168,336 / 17,808 / 4,832" {
            for cap, expected in [ 100_000, 2_544_016L; 128, 598_416L; 64, 168_336L; 16, 17_808L; 8, 4_832L ] do
                Expect.equal (ffn.ParameterCount(capped cap)) expected $"D ≤ {cap}" }

        test "the reconstruct path's GEMM dominates at many tokens; the rebuild is paid once" {
            let one = CostModel.Reconstruct(ffn, ffn.FullBonds(), 1L, false)
            let many = CostModel.Reconstruct(ffn, ffn.FullBonds(), 4096L, false)
            expectClose 1e-9 (many.Macs - one.Macs) (4095.0 * 768.0 * 3072.0) "GEMM grows with tokens" }

        test "D ≤ 16 by hand: forward 6,262,784 MACs, backward 5,468,160" {
            // forward: Σ_k (∏_{m<k} i_m)(∏_{m>k} j_m) d_{k-1} i_k j_k d_k over bonds [1,12,16,16,16,1]
            //   = 36,864 + 786,432 + 2,097,152 + 3,145,728 + 196,608
            // backward: the same with the cores in reverse order
            //   = 49,152 + 1,179,648 + 2,359,296 + 1,769,472 + 110,592
            let bonds = capped 16
            let forward = CostModel.Sweep(ffn.RowFactors, ffn.ColFactors, bonds, 1L, false)
            let backward = CostModel.Sweep(Seq.rev ffn.RowFactors |> Array.ofSeq, Seq.rev ffn.ColFactors |> Array.ofSeq, Array.rev bonds, 1L, false)
            Expect.equal forward.Macs 6_262_784.0 "forward MACs"
            Expect.equal backward.Macs 5_468_160.0 "backward MACs"
            Expect.isTrue (CostModel.Factorized(ffn, bonds, 4096L, false)).Reverse "at many tokens the model reads the chain backwards" }

        test "choice: factorized for tiny bonds and few tokens, reconstruct for full bonds and many tokens" {
            Expect.equal (CostModel.Choose(ffn, capped 4, 1L, false)) ContractionPath.Factorized "D ≤ 4, 1 token"
            Expect.equal (CostModel.Choose(ffn, ffn.FullBonds(), 4096L, true)) ContractionPath.Reconstruct "full bonds, 4096 tokens" }

        test "training saves the factorized intermediates: memory grows with tokens × bonds" {
            let small = CostModel.Factorized(ffn, capped 8, 128L, true)
            let large = CostModel.Factorized(ffn, capped 64, 128L, true)
            Expect.isGreaterThan large.SavedElements small.SavedElements "bigger bonds save more"
            Expect.equal (CostModel.Factorized(ffn, capped 8, 128L, false)).SavedElements 0.0 "inference saves nothing" }
    ]
