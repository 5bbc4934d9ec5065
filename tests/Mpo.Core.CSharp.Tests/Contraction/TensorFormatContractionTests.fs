/// CP and Tucker used without forming W (MPOP Table 2's other rows): lookups and y = x Wᵀ equal the dense matrix
/// built by their reconstruction; their cost formulas against the MPO's and against counts by hand.
module Mpo.Core.Tests.TensorFormatContractionTests

open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Core.Tests.Support

let factorizations =
    [ MpoFactorization([| 2; 4; 4 |], [| 3; 2; 4 |], rows = 30, cols = 20)    // padded rows and columns
      MpoFactorization([| 3; 2; 2; 2 |], [| 2; 3; 1; 2 |])
      MpoFactorization([| 5; 1 |], [| 1; 6 |]) ]                              // a plain low-rank matrix

[<Tests>]
let tests =
    testList "Contraction.TensorFormats" [
        test "CP: rows and y = x Wᵀ equal the reconstructed matrix's" {
            for seed, f in List.indexed factorizations do
                let rank = 3 + seed
                let factors = [| for k in 0 .. f.CoreCount - 1 -> gaussian (10 * seed + k) [ int64 (f.Physical k); int64 rank ] torch.float64 |]
                use weights = gaussian (10 * seed + 9) [ int64 rank ] torch.float64
                use w = Tensorization.ToMatrix(CpDecomposition.Reconstruct(factors, weights), f)
                use ids = torch.tensor([| 0L; int64 f.Rows - 1L; 3L; 3L; 1L; 2L |]).reshape(2L, 3L)
                use rows = CpContraction.Rows(ids, factors, weights, f)
                Expect.equal (List.ofArray rows.shape) [ 2L; 3L; int64 f.Cols ] "lookup shape"
                Expect.isLessThan (relativeError rows (w.index_select(0L, ids.reshape(-1L)).reshape(2L, 3L, -1L))) 1e-12 $"{f}: rows"
                use x = gaussian (10 * seed + 8) [ 4L; 2L; int64 f.Cols ] torch.float64
                Expect.isLessThan (relativeError (CpContraction.Linear(x, factors, weights, f)) (x.matmul(w.t()))) 1e-12 $"{f}: linear" }

        test "Tucker: rows and y = x Wᵀ equal the reconstructed matrix's" {
            for seed, f in List.indexed factorizations do
                let ranks = [| for k in 0 .. f.CoreCount - 1 -> min (f.Physical k) (2 + (seed + k) % 3) |]
                use core = gaussian (20 * seed) (ranks |> Array.map int64 |> List.ofArray) torch.float64
                let factors = [| for k in 0 .. f.CoreCount - 1 -> gaussian (20 * seed + k + 1) [ int64 (f.Physical k); int64 ranks.[k] ] torch.float64 |]
                use w = Tensorization.ToMatrix(TuckerDecomposition.Reconstruct(core, factors), f)
                use ids = torch.tensor([| int64 f.Rows - 1L; 0L; 2L; 1L |])
                Expect.isLessThan (relativeError (TuckerContraction.Rows(ids, core, factors, f)) (w.index_select(0L, ids))) 1e-12 $"{f}: rows"
                use x = gaussian (20 * seed + 9) [ 3L; int64 f.Cols ] torch.float64
                Expect.isLessThan (relativeError (TuckerContraction.Linear(x, core, factors, f)) (x.matmul(w.t()))) 1e-12 $"{f}: linear" }

        test "CP's cost is the MPO sweep's with diagonal bonds: equal at the end cores, R instead of R² in between" {
            // A CP of rank R is an MPO with bonds [1, R, …, R, 1] whose inner cores are diagonal in (d, d').
            let f = MpoFactorization([| 4; 4; 8; 6; 4 |], [| 3; 4; 4; 4; 4 |])
            let rank, tokens = 24, 5L
            let bonds = Array.init (f.CoreCount + 1) (fun k -> if k = 0 || k = f.CoreCount then 1 else rank)
            let mpo = CostModel.Sweep(f.RowFactors, f.ColFactors, bonds, tokens, false)
            let cp = CostModel.CpLinear(f, rank, tokens)
            // per core k: (∏_{m<k} i_m)(∏_{m>k} j_m)·T·i_k j_k, the MPO's step cost without its bonds
            let step k =
                let before = Seq.take k f.RowFactors |> Seq.fold (fun a b -> a * float b) 1.0
                let after = Seq.skip (k + 1) f.ColFactors |> Seq.fold (fun a b -> a * float b) 1.0
                before * after * float tokens * float (f.RowFactors.[k] * f.ColFactors.[k])
            let inner = [ 1 .. f.CoreCount - 2 ] |> List.sumBy step
            let r = float rank
            expectClose 1e-12 (mpo.Macs - cp.Macs) (inner * (r * r - r) - r * float tokens * float f.PaddedRows) "Sweep − CpLinear" }

        test "row costs by hand: a low-rank matrix [I,1]×[1,J] as CP (2RJ) and as Tucker (d₁d₂ + J·d₂)" {
            let f = MpoFactorization([| 50; 1 |], [| 1; 30 |])
            Expect.equal (CostModel.CpRows(f, 7, 3L)).Macs (3.0 * 2.0 * 7.0 * 30.0) "CP: Kronecker step R·J, Σ_r λ_r R·J"
            Expect.equal (CostModel.TuckerRows(f, [| 4; 6 |], 3L)).Macs (3.0 * (4.0 * 6.0 + 30.0 * 6.0)) "Tucker: u·G, then ·U₂ᵀ" }
    ]
