// MPOP Table 2 (inference time complexity per method) as counts: for BERT-base's word embedding, the imported
// encoders' and the bundled tiny models', every format in its largest configuration within a parameter budget
// (truncated SVD = the MPO with n = 2, MPO with n = 3, 5, 7, CP and Tucker on the MPO's modes), with the
// multiply-accumulates the cost model counts for a lookup and for y = x·Wᵀ. Pure arithmetic on shapes: instant.
// The same rows with measured time: `mpo-bench table2` (bench/README.md, README "MPOP Figure 2 and Table 2").
//   ./scripts/fsi scripts/mpop-table2.fsx
// Full mode: every shape above at both ratios. Quick mode (MPO_QUICK=1, as CI runs it): BERT-base's embedding only.
#load "references.fsx"

open Mpo.Contraction
open Mpo.Experiments.Reports

let shapes =
    [ "bert-base-uncased", 30522, 768
      "all-MiniLM-L6-v2 / arctic-embed-xs", 30522, 384
      "tiny-bert", 30522, 128
      "tiny-gpt2", 50257, 128
      "tiny-t5", 8100, 128 ]
    |> fun s -> if References.quick then List.take 1 s else s
let ratios = [ 0.1; 0.01 ]
let perToken (macs: float) (tokens: int64) = Tables.sci (2.0 * macs / float tokens)
let configuration (c: FormatCost) =
    match c.Method with
    | "dense" -> "W"
    | "svd" -> $"r = {c.Ranks.[1]}"
    | "cp" -> $"R = {c.Ranks.[0]}"
    | "mpo" -> "bonds " + Tables.factors c.Ranks
    | _ -> "ranks " + Tables.factors c.Ranks

for name, rows, cols in shapes do
    for ratio in ratios do
        let budget = int64 (ratio * float rows * float cols)
        let costs = FormatCosts.AtBudget(rows, cols, budget, [ 3; 5; 7 ], [ 3; 5 ], 1L, 1L)
        printfn "\n## %s %d×%d, parameters ≤ %g × dense\n" name rows cols ratio
        printfn "%s" (Tables.markdown
            [ "method"; "n"; "factors"; "configuration"; "params"; "ρ"; "lookup FLOPs/token"; "x·Wᵀ FLOPs/token" ]
            [ for c in costs ->
                [ c.Method; string c.Cores
                  (if c.Method = "dense" || c.Method = "svd" then "–" else Tables.factors c.Factorization.RowFactors + "×" + Tables.factors c.Factorization.ColFactors)
                  configuration c; Tables.int64s c.Parameters; Tables.ratio c.CompressionRatio
                  perToken c.Lookup.Macs 1L; perToken c.Linear.Macs 1L ] ])
printfn "\nFLOPs = 2 × the multiply-accumulates of Contraction/CostModel for one token; measured times: mpo-bench table2."
