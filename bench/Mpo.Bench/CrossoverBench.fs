/// Calibration sweep for the cost model: where does the factorized path stop beating reconstruct (tokens × bonds,
/// training step, FFN-in 3072×768), where does CostModel think it does, and which CopyWeight / CallOverheadMacs
/// would make the two agree on this machine. Not part of `all`: it informs a recalibration, it checks no target.
module Mpo.Bench.CrossoverBench

open System
open TorchSharp
open Mpo.Contraction
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Bench.Report

let tokenCounts quick = if quick then [ 1; 16; 128 ] else [ 1; 4; 16; 64; 256; 1024; 4096 ]

let bondCaps quick = if quick then [ None; Some 16 ] else [ None; Some 64; Some 32; Some 16; Some 8; Some 4 ]

let plan quick tokens : Timing.Plan =
    match quick with
    | true -> { Warmup = 2; MinReps = 3; MaxReps = 30; BudgetMs = 300.0; SlowMs = 1000.0; SlowReps = 1 }
    | false when tokens >= 1024 -> { Warmup = 2; MinReps = 3; MaxReps = 20; BudgetMs = 3000.0; SlowMs = 3000.0; SlowReps = 1 }
    | false -> { Warmup = 3; MinReps = 10; MaxReps = 1000; BudgetMs = 1500.0; SlowMs = 3000.0; SlowReps = 1 }

type Point =
    { Bonds: string
      BondDims: int[]
      Tokens: int
      ReconstructMs: float
      FactorizedMs: float
      Reconstruct: PathCost
      Factorized: PathCost
      ReconstructCalls: float
      FactorizedCalls: float }

/// PathCost keeps its call count internal; Effective = Macs + CopyWeight·copies + CallOverheadMacs·calls gives it back.
let calls (c: PathCost) =
    Math.Round((c.Effective - c.Macs - CostModel.CopyWeight * c.CopiedElements) / CostModel.CallOverheadMacs)

let run (opts: Options) =
    let f = FactorizationChooser.Choose(LinearBench.outFeatures, LinearBench.inFeatures)
    torch.manual_seed 20210604L |> ignore
    use dense = torch.nn.Linear(int64 LinearBench.inFeatures, int64 LinearBench.outFeatures)
    use full = MpoDecomposer.Decompose(dense.weight, f)
    let tokens = tokenCounts opts.Quick
    let caps = bondCaps opts.Quick
    let units t = 1.0 + float t / 64.0
    let total =
        float caps.Length * (tokens |> List.sumBy (fun t -> let p = plan opts.Quick t in units t * float (2 * (p.Warmup + p.MinReps))))
    withProgress opts "crossover" total (fun progress ->
        [ for cap in caps do
              use layer =
                  match cap with
                  | None -> new MpoLinear(full, dense.bias)
                  | Some b ->
                      use cut = full.Truncate(TruncationSpec.MaxBond b)
                      new MpoLinear(cut, dense.bias)
              layer.train ()
              let bonds = layer.Bonds
              let mutable previous = None
              for t in tokens do
                  progress.Describe $"bonds {LinearBench.bondText cap}, {t} tokens"
                  use g = new torch.Generator(uint64 (11 + t))
                  use x = torch.randn([| int64 t; int64 LinearBench.inFeatures |], generator = g)
                  let withPath path i =
                      match LinearBench.skipReason opts.Quick f bonds path (previous |> Option.map (fun (t0, ps: Measure.Profile[]) -> t0, ps.[i])) t with
                      | Some reason -> Measure.Skip reason
                      | None ->
                          let run () =
                              layer.Path <- path
                              LinearBench.step layer x ()
                          if LinearBench.predictedMiB f bonds path t > LinearBench.heavyMiB then Measure.RunLast run
                          else Measure.Run run
                  let p =
                      Measure.profile (plan opts.Quick t) (fun _ -> progress.Advance(units t))
                          [| withPath ContractionPath.Reconstruct 0; withPath ContractionPath.Factorized 1 |]
                  previous <- Some(t, p)
                  let r, fa = CostModel.Reconstruct(f, bonds, int64 t, true), CostModel.Factorized(f, bonds, int64 t, true)
                  yield
                      { Bonds = LinearBench.bondText cap
                        BondDims = bonds
                        Tokens = t
                        ReconstructMs = p.[0].Time.MedianMs
                        FactorizedMs = p.[1].Time.MedianMs
                        Reconstruct = r
                        Factorized = fa
                        ReconstructCalls = calls r
                        FactorizedCalls = calls fa } ])

/// A time model t ≈ Σ coefficient·feature (ms), fitted by least squares on relative residuals so 1-token and
/// 4096-token points weigh alike.
type Fit =
    { Coefficients: float[]
      /// Median |predicted − measured| / measured over all points.
      MedianRelativeError: float }

/// Features of one step under the CostModel's form: MACs, copied elements, calls.
let sharedFeatures (c: PathCost) (_: bool) = [| c.Macs; c.CopiedElements; calls c |]

/// The same with one MAC column per path, so the fit can say how much slower a factorized MAC runs (its GEMMs are
/// small and oddly shaped; reconstruct's big GEMM runs near peak).
let perPathFeatures (c: PathCost) (factorized: bool) =
    [| (if factorized then 0.0 else c.Macs); (if factorized then c.Macs else 0.0); c.CopiedElements; calls c |]

/// Solves the square system a·x = b (Gaussian elimination with partial pivoting; normal equations of a few
/// unknowns need nothing more).
let private solve (a: float[,]) (b: float[]) =
    let n = b.Length
    let m = Array2D.init n (n + 1) (fun i j -> if j < n then a.[i, j] else b.[i])
    for c in 0 .. n - 1 do
        let p = [ c .. n - 1 ] |> List.maxBy (fun r -> abs m.[r, c])
        for j in 0 .. n do
            let tmp = m.[c, j]
            m.[c, j] <- m.[p, j]
            m.[p, j] <- tmp
        for r in 0 .. n - 1 do
            if r <> c && m.[c, c] <> 0.0 then
                let k = m.[r, c] / m.[c, c]
                for j in c .. n do m.[r, j] <- m.[r, j] - k * m.[c, j]
    Array.init n (fun i -> m.[i, n] / m.[i, i])

let private dot (a: float[]) (b: float[]) = Array.fold2 (fun acc x y -> acc + x * y) 0.0 a b

let fit (features: PathCost -> bool -> float[]) (points: Point list) =
    let rows =
        [ for p in points do
              if not (Double.IsNaN p.ReconstructMs) then yield features p.Reconstruct false, p.ReconstructMs
              if not (Double.IsNaN p.FactorizedMs) then yield features p.Factorized true, p.FactorizedMs ]
    let n = (fst rows.Head).Length
    let ata = Array2D.zeroCreate n n
    let atb = Array.zeroCreate n
    for x, t in rows do
        let w = x |> Array.map (fun v -> v / t) // row scaled by 1/t: residuals become relative
        for i in 0 .. n - 1 do
            atb.[i] <- atb.[i] + w.[i]
            for j in 0 .. n - 1 do ata.[i, j] <- ata.[i, j] + w.[i] * w.[j]
    let c = solve ata atb
    { Coefficients = c
      MedianRelativeError = rows |> List.map (fun (x, t) -> abs (dot c x - t) / t) |> Array.ofList |> Timing.median }

/// Smallest token count (1..4096) from which reconstruct costs no more than factorized under a cost function.
let predictedCrossover (f: MpoFactorization) (bonds: int[]) (cost: PathCost -> bool -> float) =
    seq { 1..4096 }
    |> Seq.tryFind (fun t ->
        let r, fa = CostModel.Reconstruct(f, bonds, int64 t, true), CostModel.Factorized(f, bonds, int64 t, true)
        cost r false <= cost fa true)

let markdown (quick: bool) (points: Point list) =
    let f = FactorizationChooser.Choose(LinearBench.outFeatures, LinearBench.inFeatures)
    let tokens = points |> List.map (fun p -> p.Tokens) |> List.distinct
    let groups = points |> List.groupBy (fun p -> p.Bonds)
    let shared = fit sharedFeatures points
    let perPath = fit perPathFeatures points
    let costModel (c: PathCost) (_: bool) = c.Effective
    let fitted (fit: Fit) features (c: PathCost) factorized = dot fit.Coefficients (features c factorized)
    let a, b = shared.Coefficients, perPath.Coefficients
    let crossoverText = function Some t -> $"{t}" | None -> "> 4096"
    let measuredCrossover (ps: Point list) =
        // first measured token count from which reconstruct is faster at every larger count
        let ordered = ps |> List.sortBy (fun p -> p.Tokens)
        // a skipped factorized step was skipped for being far slower
        let reconstructFaster q = Double.IsNaN q.FactorizedMs || q.ReconstructMs <= q.FactorizedMs
        ordered
        |> List.tryFindIndex (fun p -> ordered |> List.forall (fun q -> q.Tokens < p.Tokens || reconstructFaster q))
        |> Option.map (fun i -> $"≤ {ordered.[i].Tokens}" + (if i > 0 then $" (> {ordered.[i - 1].Tokens})" else ""))
        |> Option.defaultValue $"> {(List.last ordered).Tokens}"
    let ratioTable =
        table
            ([ "bonds", Left ] @ (tokens |> List.map (fun t -> $"{t} tok", Right))
             @ [ "measured crossover", Right; "CostModel crossover", Right; "refit crossover", Right; "per-path refit crossover", Right ])
            [ for bonds, ps in groups ->
                  let dims = ps.Head.BondDims
                  [ bonds ]
                  @ (tokens |> List.map (fun t -> ps |> List.find (fun p -> p.Tokens = t) |> fun p -> if Double.IsNaN p.FactorizedMs then "skipped" else ratio (p.FactorizedMs / p.ReconstructMs)))
                  @ [ measuredCrossover ps
                      crossoverText (predictedCrossover f dims costModel)
                      crossoverText (predictedCrossover f dims (fitted shared sharedFeatures))
                      crossoverText (predictedCrossover f dims (fitted perPath perPathFeatures)) ] ]
    let raw =
        table
            [ "bonds", Left; "tokens", Right; "reconstruct ms", Right; "factorized ms", Right; "MACs rec / fact", Right; "copies rec / fact", Right; "calls rec / fact", Right ]
            [ for p in points ->
                  [ p.Bonds; string p.Tokens; ms p.ReconstructMs; ms p.FactorizedMs
                    $"{sci p.Reconstruct.Macs} / {sci p.Factorized.Macs}"
                    $"{sci p.Reconstruct.CopiedElements} / {sci p.Factorized.CopiedElements}"
                    $"{p.ReconstructCalls} / {p.FactorizedCalls}" ] ]
    let title = if quick then "Crossover sweep, quick mode" else "Crossover sweep (cost-model calibration)"
    String.concat "\n"
        [ $"### {title}: MpoLinear 3072×768 forward+backward, factorized / reconstruct time"
          ""
          "Below 1: factorized is faster. Crossover: the token count from which reconstruct is faster."
          ""
          ratioTable
          ""
          $"- refit, CostModel's form t ≈ α·MACs + β·copies + γ·calls (least squares on relative residuals, median |error| {100.0 * shared.MedianRelativeError:F0}%%): CopyWeight = β/α = {a.[1] / a.[0]:F1} (now {CostModel.CopyWeight}), CallOverheadMacs = γ/α = {sci (a.[2] / a.[0])} (now {sci CostModel.CallOverheadMacs}); α = {sci a.[0]} ms/MAC"
          $"- per-path refit t ≈ α_r·MACs_rec + α_f·MACs_fact + β·copies + γ·calls (median |error| {100.0 * perPath.MedianRelativeError:F0}%%): a factorized MAC costs α_f/α_r = {b.[1] / b.[0]:F1} reconstruct MACs; CopyWeight = β/α_r = {b.[2] / b.[0]:F1}, CallOverheadMacs = γ/α_r = {sci (b.[3] / b.[0])}; reconstruct MACs run at {1e-6 / b.[0]:F1} GMAC/s, factorized ones at {1e-6 / b.[1]:F1} GMAC/s"
          "- refit crossovers: where each refitted model would switch on this machine; read the constants as a direction, not a law (negative or tiny ones mean the feature explains nothing here)."
          ""
          raw ]
