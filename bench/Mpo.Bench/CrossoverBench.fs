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
                          Measure.Run(fun () ->
                              layer.Path <- path
                              LinearBench.step layer x ())
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

/// Fitted time model t ≈ α·MACs + β·copies + γ·calls (ms), least squares on relative error so 1-token and
/// 4096-token points weigh alike.
type Fit =
    { MsPerMac: float
      MsPerCopy: float
      MsPerCall: float
      CopyWeight: float
      CallOverheadMacs: float
      /// Median |predicted − measured| / measured over all points.
      MedianRelativeError: float }

let private solve3 (a: float[,]) (b: float[]) =
    // Gaussian elimination with partial pivoting; 3×3 normal equations need nothing more.
    let n = 3
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

let fit (points: Point list) =
    let rows =
        [ for p in points do
              if not (Double.IsNaN p.ReconstructMs) then
                  yield [| p.Reconstruct.Macs; p.Reconstruct.CopiedElements; p.ReconstructCalls |], p.ReconstructMs
              if not (Double.IsNaN p.FactorizedMs) then
                  yield [| p.Factorized.Macs; p.Factorized.CopiedElements; p.FactorizedCalls |], p.FactorizedMs ]
    let ata = Array2D.zeroCreate 3 3
    let atb = Array.zeroCreate 3
    for x, t in rows do
        let w = x |> Array.map (fun v -> v / t) // row scaled by 1/t: residuals become relative
        for i in 0 .. 2 do
            atb.[i] <- atb.[i] + w.[i]
            for j in 0 .. 2 do ata.[i, j] <- ata.[i, j] + w.[i] * w.[j]
    let c = solve3 ata atb
    let predict (x: float[]) = c.[0] * x.[0] + c.[1] * x.[1] + c.[2] * x.[2]
    { MsPerMac = c.[0]
      MsPerCopy = c.[1]
      MsPerCall = c.[2]
      CopyWeight = c.[1] / c.[0]
      CallOverheadMacs = c.[2] / c.[0]
      MedianRelativeError = rows |> List.map (fun (x, t) -> abs (predict x - t) / t) |> Array.ofList |> Timing.median }

/// Smallest token count (1..4096) from which the model prefers reconstruct, under the given constants.
let predictedCrossover (f: MpoFactorization) (bonds: int[]) (copyWeight: float) (callMacs: float) =
    let eff (c: PathCost) = c.Macs + copyWeight * c.CopiedElements + callMacs * calls c
    seq { 1..4096 }
    |> Seq.tryFind (fun t ->
        let r, fa = CostModel.Reconstruct(f, bonds, int64 t, true), CostModel.Factorized(f, bonds, int64 t, true)
        eff r <= eff fa)

let markdown (quick: bool) (points: Point list) =
    let f = FactorizationChooser.Choose(LinearBench.outFeatures, LinearBench.inFeatures)
    let tokens = points |> List.map (fun p -> p.Tokens) |> List.distinct
    let groups = points |> List.groupBy (fun p -> p.Bonds)
    let fitted = fit points
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
             @ [ "measured crossover", Right; "CostModel crossover", Right; "refit crossover", Right ])
            [ for bonds, ps in groups ->
                  let dims = ps.Head.BondDims
                  [ bonds ]
                  @ (tokens |> List.map (fun t -> ps |> List.find (fun p -> p.Tokens = t) |> fun p -> if Double.IsNaN p.FactorizedMs then "skipped" else ratio (p.FactorizedMs / p.ReconstructMs)))
                  @ [ measuredCrossover ps
                      crossoverText (predictedCrossover f dims CostModel.CopyWeight CostModel.CallOverheadMacs)
                      crossoverText (predictedCrossover f dims fitted.CopyWeight fitted.CallOverheadMacs) ] ]
    let raw =
        table
            [ "bonds", Left; "tokens", Right; "reconstruct ms", Right; "factorized ms", Right; "MACs rec / fact", Right; "copies rec / fact", Right; "calls rec / fact", Right ]
            [ for p in points ->
                  [ p.Bonds; string p.Tokens; ms p.ReconstructMs; ms p.FactorizedMs
                    $"{p.Reconstruct.Macs:E2} / {p.Factorized.Macs:E2}"
                    $"{p.Reconstruct.CopiedElements:E2} / {p.Factorized.CopiedElements:E2}"
                    $"{p.ReconstructCalls} / {p.FactorizedCalls}" ] ]
    let title = if quick then "Crossover sweep, quick mode" else "Crossover sweep (cost-model calibration)"
    String.concat "\n"
        [ $"### {title}: MpoLinear 3072×768 forward+backward, factorized / reconstruct time"
          ""
          "Below 1: factorized is faster. Crossover: the token count from which reconstruct is faster."
          ""
          ratioTable
          ""
          $"- least-squares fit t ≈ α·MACs + β·copies + γ·calls (relative residuals): α = {fitted.MsPerMac:E3} ms/MAC ({1e-9 / fitted.MsPerMac:F1} GMAC/s), β = {fitted.MsPerCopy:E3} ms/element, γ = {fitted.MsPerCall:E3} ms/call; median |error| {100.0 * fitted.MedianRelativeError:F0}%%"
          $"- implied constants: CopyWeight = β/α = {fitted.CopyWeight:F1} (now {CostModel.CopyWeight}), CallOverheadMacs = γ/α = {fitted.CallOverheadMacs:E2} (now {CostModel.CallOverheadMacs:E2})"
          "- the fit treats one MAC alike in every GEMM; small GEMMs run far below peak, so read the constants as a direction, not a law."
          ""
          raw ]
