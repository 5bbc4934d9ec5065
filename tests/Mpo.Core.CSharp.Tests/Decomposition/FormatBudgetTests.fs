/// Matched parameters (MPOP Fig. 2a, Table 2): each format's configuration is the largest within the budget.
module Mpo.Core.Tests.FormatBudgetTests

open Expecto
open Mpo.Decomposition
open Mpo.Contraction

let f = MpoFactorization([| 6; 8; 10; 8; 8 |], [| 3; 4; 4; 4; 4 |], rows = 30522, cols = 768)   // BERT's embedding
let modes = Tensorization.Modes f

[<Tests>]
let tests =
    testList "Decomposition.FormatBudget" [
        test "each format fits the budget and one step more would not" {
            for budget in [ 5_000L; 230_000L; 2_344_089L ] do
                let r = FormatBudget.SvdRank(30522, 768, budget)
                Expect.isLessThanOrEqual (int64 r * 31290L) budget "SVD fits"
                Expect.isGreaterThan (int64 (r + 1) * 31290L) budget "SVD maximal"
                let R = FormatBudget.CpRank(f, budget)
                Expect.equal (CpDecomposition.ParameterCount(modes, 1)) 154L "Σ a_k = 18 + 32 + 40 + 32 + 32"
                Expect.isLessThanOrEqual (CpDecomposition.ParameterCount(modes, R)) budget "CP fits"
                Expect.isGreaterThan (CpDecomposition.ParameterCount(modes, R + 1)) budget "CP maximal"
                match FormatBudget.MpoBonds(f, budget) with
                | null -> failtest "an MPO fits"
                | bonds ->
                    Expect.isLessThanOrEqual (f.ParameterCount bonds) budget "MPO fits"
                    let cap = Array.max bonds
                    let next = f.Consistent(f.FullBonds() |> Array.map (fun d -> min d (cap + 1)))
                    Expect.isGreaterThan (f.ParameterCount next) budget "MPO: the next cap does not fit"
                match FormatBudget.TuckerRanks(f, budget) with
                | null -> failtest "a Tucker decomposition fits"
                | ranks ->
                    Expect.isLessThanOrEqual (TuckerDecomposition.ParameterCount(modes, ranks)) budget "Tucker fits"
                    let next = TuckerDecomposition.UniformRanks(modes, Array.max ranks + 1)
                    Expect.isGreaterThan (TuckerDecomposition.ParameterCount(modes, next)) budget "Tucker maximal" }

        test "too small a budget has no configuration" {
            Expect.equal (FormatBudget.SvdRank(30522, 768, 1000L)) 0 "SVD rank 0"
            Expect.isNull (FormatBudget.MpoBonds(f, 100L)) "no MPO"
            Expect.equal (FormatBudget.CpRank(f, 100L)) 0 "no CP"
            Expect.isNull (FormatBudget.TuckerRanks(f, 100L)) "no Tucker" }

        test "Table 2 rows: every format within the budget; the SVD is the MPO with factors [I]×[J]" {
            let costs = FormatCosts.AtBudget(30522, 768, 2_344_089L, [ 3; 5 ], [ 5 ], 1L, 1L) |> List.ofSeq
            Expect.equal [ for c in costs -> c.Method, c.Cores ] [ "dense", 1; "svd", 2; "mpo", 3; "mpo", 5; "cp", 5; "tucker", 5 ] "rows"
            for c in costs |> List.tail do
                Expect.isLessThanOrEqual c.Parameters 2_344_089L $"{c.Method} n = {c.Cores} within the budget"
            let svd = costs.[1]
            let r = svd.Ranks.[1]
            Expect.equal svd.Parameters (int64 r * 31290L) "r·(I + J)"
            // one row of U_r Σ_r V_rᵀ: r (the row of U) · then r·J
            Expect.equal svd.Lookup.Macs (float r + float r * 768.0) "SVD lookup MACs"
            Expect.equal costs.[0].Linear.Macs (30522.0 * 768.0) "dense x·Wᵀ: I·J per token" }
    ]
