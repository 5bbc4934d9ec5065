/// MPOP Table 2 (inference cost per method), measured: for a word-embedding matrix and a parameter budget, every
/// format in its largest configuration within the budget (Contraction.FormatCosts), with the cost model's FLOPs per
/// token next to the measured time of a lookup (rows of W) and of y = x Wᵀ (W as a tied output head) computed from
/// the format's own tensors, never forming W.
/// <para>Values are seeded random tensors of the formats' exact shapes: these contractions cost what their shapes
/// make them cost (dense GEMMs and gathers, no data-dependent branches), and the real decompositions of a
/// 30522×768 embedding are not available offline.</para>
module Mpo.Bench.Table2Bench

open System
open TorchSharp
open Mpo.Contraction
open Mpo.Decomposition
open Mpo.Bench.Report

type Tensor = torch.Tensor

type Shape = { Name: string; Rows: int; Cols: int }

let shapes quick =
    if quick then [ { Name = "tiny-t5 embedding"; Rows = 8100; Cols = 128 } ]
    else
        [ { Name = "bert-base-uncased word embedding"; Rows = 30522; Cols = 768 }
          { Name = "all-MiniLM-L6-v2 / arctic-embed-xs word embedding"; Rows = 30522; Cols = 384 } ]

let ratios quick = if quick then [ 0.05 ] else [ 0.1; 0.01 ]

/// Tokens per lookup call (a batch of sequences' ids) and per y = x Wᵀ call (a few sequences generating).
let lookupTokens, linearTokens = 128L, 8L

/// A call the cost model expects to hold more live float32 elements than this is not run.
let maxCallMiB = 1024.0

let mpoCores, tensorCores = [ 3; 5; 7 ], [ 3; 5 ]

let private plan quick : Timing.Plan =
    if quick then { Warmup = 2; MinReps = 5; MaxReps = 30; BudgetMs = 1500.0; SlowMs = 1000.0; SlowReps = 1 }
    else { Warmup = 3; MinReps = 10; MaxReps = 200; BudgetMs = 8000.0; SlowMs = 3000.0; SlowReps = 3 }

/// MPOP Table 2's complexity for the row's category (n tensors, m = max i_k, d = max bond).
let paperComplexity (method: string) =
    match method with
    | "cp" -> "O(n m d²) (Tucker, d = 1)"
    | "tucker" -> "O(n m d + dⁿ)"
    | "svd" -> "O(2 m d³) (MPO, n = 2)"
    | "mpo" -> "O(n m d³)"
    | _ -> "–"

let configuration (c: FormatCost) =
    let list (xs: int[]) = "[" + String.Join(",", xs) + "]"
    match c.Method with
    | "dense" -> "W"
    | "svd" -> $"r = {c.Ranks.[1]}"
    | "mpo" -> $"bonds {list c.Ranks}"
    | "cp" -> $"R = {c.Ranks.[0]}"
    | "tucker" -> $"ranks {list c.Ranks}"
    | m -> m

/// The format's tensors (seeded random values, float32) and its two calls.
let private build (seed: int) (c: FormatCost) : (Tensor -> Tensor) * (Tensor -> Tensor) * (unit -> unit) =
    use g = new torch.Generator(uint64 seed)
    let randn (shape: int64[]) = torch.randn(shape, generator = g)
    let f = c.Factorization
    match c.Method with
    | "dense" ->
        let w = randn [| int64 f.Rows; int64 f.Cols |]
        (fun ids -> w.index_select(0L, ids)), (fun x -> torch.nn.functional.linear(x, w)), (fun () -> w.Dispose())
    | "svd" | "mpo" ->
        let cores = [| for k in 0 .. f.CoreCount - 1 -> randn (f.CoreShape(k, c.Ranks)) |]
        (fun ids -> MpoContraction.RowsFactorized(ids, cores, f)), (fun x -> MpoContraction.LinearFactorized(x, cores, f)),
        (fun () -> for t in cores do t.Dispose())
    | "cp" ->
        let factors = [| for k in 0 .. f.CoreCount - 1 -> randn [| int64 (f.Physical k); int64 c.Ranks.[0] |] |]
        let weights = randn [| int64 c.Ranks.[0] |]
        (fun ids -> CpContraction.Rows(ids, factors, weights, f)), (fun x -> CpContraction.Linear(x, factors, weights, f)),
        (fun () -> for t in factors do t.Dispose()
                   weights.Dispose())
    | "tucker" ->
        let core = randn (c.Ranks |> Array.map int64)
        let factors = [| for k in 0 .. f.CoreCount - 1 -> randn [| int64 (f.Physical k); int64 c.Ranks.[k] |] |]
        (fun ids -> TuckerContraction.Rows(ids, core, factors, f)), (fun x -> TuckerContraction.Linear(x, core, factors, f)),
        (fun () -> core.Dispose()
                   for t in factors do t.Dispose())
    | m -> failwith $"unknown format {m}"

let private mib (cost: PathCost) = cost.PeakElements * 4.0 / 1048576.0

type Row =
    { Shape: Shape
      Ratio: float
      Method: string
      Cores: int
      Configuration: string
      Parameters: int64
      CompressionRatio: float
      /// Cost model, per token: 2 × multiply-accumulates.
      LookupFlopsPerToken: float
      LinearFlopsPerToken: float
      LookupMiB: float
      LinearMiB: float
      Lookup: Measure.Profile
      Linear: Measure.Profile }

let run (opts: Options) =
    let work = [ for s in shapes opts.Quick do for r in ratios opts.Quick -> s, r ]
    withProgress opts "table2" (float work.Length) (fun progress ->
        [ for shape, ratio in work do
            progress.Describe $"{shape.Rows}×{shape.Cols}, ρ ≤ {ratio}"
            let budget = int64 (ratio * float shape.Rows * float shape.Cols)
            let costs = FormatCosts.AtBudget(shape.Rows, shape.Cols, budget, mpoCores, tensorCores, lookupTokens, linearTokens) |> List.ofSeq
            use g = new torch.Generator(20210603UL)
            use ids = torch.randint(int64 shape.Rows, [| lookupTokens |], generator = g, dtype = torch.int64)
            use x = torch.randn([| linearTokens; int64 shape.Cols |], generator = g)
            let built = costs |> List.mapi (fun i c -> build (100 + i) c)
            let candidate (cost: PathCost) (call: unit -> unit) =
                if mib cost > maxCallMiB then Measure.Skip $"the cost model expects {mib cost / 1024.0:F1} GiB (limit {maxCallMiB / 1024.0:F0} GiB)"
                else Measure.Run call
            let call (f: Tensor -> Tensor) (input: Tensor) () =
                use scope = torch.NewDisposeScope()
                use _ = torch.no_grad ()
                f input |> ignore
            let candidates =
                [| for c, (lookup, linear, _) in List.zip costs built do
                     yield candidate c.Lookup (call lookup ids)
                     yield candidate c.Linear (call linear x) |]
            let profiles = Measure.profile (plan opts.Quick) ignore candidates
            for _, _, dispose in built do dispose ()
            progress.Advance 1.0
            for i, c in List.indexed costs do
                yield
                    { Shape = shape
                      Ratio = ratio
                      Method = c.Method
                      Cores = c.Cores
                      Configuration = configuration c
                      Parameters = c.Parameters
                      CompressionRatio = c.CompressionRatio
                      LookupFlopsPerToken = 2.0 * c.Lookup.Macs / float lookupTokens
                      LinearFlopsPerToken = 2.0 * c.Linear.Macs / float linearTokens
                      LookupMiB = mib c.Lookup
                      LinearMiB = mib c.Linear
                      Lookup = profiles.[2 * i]
                      Linear = profiles.[2 * i + 1] } ])

let private perToken (p: Measure.Profile) (tokens: int64) =
    if p.Skipped <> "" then "skipped" else ms (p.Time.MedianMs * 1000.0 / float tokens)

let markdown (quick: bool) (rows: Row list) =
    let sections =
        rows
        |> List.groupBy (fun r -> r.Shape, r.Ratio)
        |> List.map (fun ((shape, ratio), rs) ->
            let t =
                table
                    [ "method", Left; "n", Right; "configuration", Left; "params", Right; "ρ", Right
                      "MPOP Table 2", Left
                      "lookup FLOPs/token", Right; "lookup µs/token", Right
                      "x·Wᵀ FLOPs/token", Right; "x·Wᵀ µs/token", Right ]
                    [ for r in rs ->
                        [ r.Method; string r.Cores; r.Configuration; r.Parameters.ToString("N0"); r.CompressionRatio.ToString("F4")
                          paperComplexity r.Method
                          sci r.LookupFlopsPerToken; perToken r.Lookup lookupTokens
                          sci r.LinearFlopsPerToken; perToken r.Linear linearTokens ] ]
            let skipped = rs |> List.collect (fun r -> [ r.Lookup; r.Linear ]) |> List.filter (fun p -> p.Skipped <> "") |> List.map (fun p -> p.Skipped) |> List.distinct
            String.concat "\n"
                ([ $"#### {shape.Name} {shape.Rows}×{shape.Cols}, parameters ≤ {ratio} × dense"; ""; t ]
                 @ (if skipped.IsEmpty then [] else [ ""; "Skipped: " + String.Join("; ", skipped) + "." ])))
    String.concat "\n"
        ([ "### MPOP Table 2: inference cost per method at matched parameters" + (if quick then " (quick mode)" else ""); "" ]
         @ [ String.Join("\n\n", sections); "" ]
         @ [ $"- lookup: {lookupTokens} random token ids → their rows of W; x·Wᵀ: {linearTokens} random rows x (W as a tied output head, one output per vocabulary entry). Both from the format's tensors, W never formed; dense is `index_select` and `linear` on W."
             "- FLOPs/token: 2 × the multiply-accumulates `CostModel` counts for exactly these contractions (`Rows`/`Factorized` for SVD and MPO, `CpRows`/`CpLinear`, `TuckerRows`/`TuckerLinear`), divided by the tokens of the call; dense lookup is a copy (0 FLOPs)."
             "- µs/token: median wall time of one call (float32, no autograd) divided by its tokens."
             "- configurations: the largest within the budget: SVD rank ⌊P/(I+J)⌋; MPO with the chooser's factors and one bond cap; CP rank ⌊P/Σaₖ⌋ and Tucker with one rank cap on the MPO's modes aₖ = iₖ·jₖ."
             $"- values are seeded random tensors of these shapes (the contraction cost depends on shapes only); calls the cost model expects to need more than {maxCallMiB / 1024.0:F0} GiB are not run." ])
