/// MpoLinear forward+backward against a dense Linear of the same size (issue §7): BERT's FFN-in layer
/// (weight [3072, 768]) at full and truncated bonds, 1, 128 and 4096 tokens, each contraction path and the auto path.
/// Targets: auto within 10% of the faster path everywhere; reconstruct ≤ 1.5× dense at 4096 tokens with full bonds.
module Mpo.Bench.LinearBench

open System
open TorchSharp
open Mpo.Contraction
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Bench.Report

type Tensor = torch.Tensor

let outFeatures, inFeatures = 3072, 768

/// Bond caps: None is full bonds (exact).
let bondCaps = [ None; Some 64; Some 16; Some 8 ]

let bondText cap = match cap with None -> "full" | Some b -> $"max {b}"

let tokenCounts quick = if quick then [ 1; 128 ] else [ 1; 128; 4096 ]

/// Budgets are for the four candidates together; tiny calls need many repetitions for a stable median.
let plan quick tokens : Timing.Plan =
    match quick, tokens with
    | true, 1 -> { Warmup = 3; MinReps = 20; MaxReps = 300; BudgetMs = 800.0; SlowMs = 1000.0; SlowReps = 1 }
    | true, _ -> { Warmup = 2; MinReps = 9; MaxReps = 60; BudgetMs = 2500.0; SlowMs = 1000.0; SlowReps = 1 }
    | false, 1 -> { Warmup = 5; MinReps = 30; MaxReps = 2000; BudgetMs = 3000.0; SlowMs = 5000.0; SlowReps = 3 }
    | false, t when t <= 512 -> { Warmup = 3; MinReps = 15; MaxReps = 500; BudgetMs = 5000.0; SlowMs = 5000.0; SlowReps = 3 }
    | false, _ -> { Warmup = 2; MinReps = 5; MaxReps = 40; BudgetMs = 15000.0; SlowMs = 5000.0; SlowReps = 3 }

/// A path whose step would take longer than this (extrapolated from the previous token count by the cost model's
/// growth) is not run.
let skipMs quick = if quick then 2_000.0 else 60_000.0

/// Nor one whose live float32 elements, as the cost model counts them (peak + saved for backward; within 20% of the
/// measured RSS growth here), exceed this: such a step takes tens of seconds, is 10–50× slower than reconstruct, and
/// leaves this VM slow for tens of seconds after it (see Measure.Settle).
let maxStepMiB = 2048.0

/// A step the cost model expects to need more than this is measured after the others of its configuration.
let heavyMiB = 256.0

let private pathCost (f: MpoFactorization) (bonds: int[]) (path: ContractionPath) (tokens: int) =
    if path = ContractionPath.Factorized then CostModel.Factorized(f, bonds, int64 tokens, true)
    else CostModel.Reconstruct(f, bonds, int64 tokens, true)

/// Memory the cost model expects one training step of the path to need, MiB of float32.
let predictedMiB f bonds path tokens =
    let c = pathCost f bonds path tokens
    (c.PeakElements + c.SavedElements) * 4.0 / 1048576.0

/// Why a path should not run at t tokens (None: run it). <paramref name="previous"/>: its profile at t0 tokens.
let skipReason quick f bonds path (previous: (int * Measure.Profile) option) (t: int) =
    let estMiB = predictedMiB f bonds path t
    let estMs =
        match previous with
        | Some(t0, p) -> p.Time.MedianMs * (pathCost f bonds path t).Effective / (pathCost f bonds path t0).Effective
        | None -> 0.0
    match previous with
    | Some(_, p) when p.Skipped <> "" -> Some p.Skipped
    | _ when estMiB > maxStepMiB ->
        Some $"the cost model expects {estMiB / 1024.0:F1} GiB per step (limit {maxStepMiB / 1024.0:F0} GiB)"
    | _ when estMs > skipMs quick -> Some $"est. {estMs / 1000.0:F0} s per step (limit {skipMs quick / 1000.0:F0} s)"
    | _ -> None

/// The candidates of one configuration, in table order.
let paths = [| "dense"; "reconstruct"; "factorized"; "auto" |]

/// One training step's worth of work: forward, loss = sum, backward, then gradients dropped. The input never needs
/// a gradient (as for a first layer); everything the step makes is freed by the dispose scope.
let step (layer: torch.nn.Module<Tensor, Tensor>) (x: Tensor) () =
    use scope = torch.NewDisposeScope()
    let y = layer.forward x
    y.sum().backward()
    layer.zero_grad()

type Predicted =
    { DenseEffective: float
      ReconstructEffective: float
      FactorizedEffective: float
      /// Sweep direction the cost model picks for the factorized path in training.
      FactorizedReverse: bool
      /// Direction LinearFactorized actually takes: it asks the cost model with input.requires_grad, false here.
      FactorizedReverseAsRun: bool
      /// Peak + saved elements of the factorized step as float32, MiB.
      FactorizedMiB: float }

type Result =
    { Bonds: string
      BondDims: int[]
      Parameters: int64
      Tokens: int
      /// dense, reconstruct, factorized, auto
      Profiles: Measure.Profile[]
      AutoPicked: string
      Predicted: Predicted
      /// auto / min(reconstruct, factorized)
      AutoOverBest: float
      ReconstructOverDense: float
      /// Which explicit path was faster when measured.
      Faster: string }

let private median (p: Measure.Profile) = p.Time.MedianMs

/// Smallest of the measured medians (skipped paths are NaN).
let private fastest (xs: float seq) = xs |> Seq.filter (Double.IsNaN >> not) |> Seq.fold min infinity

let run (opts: Options) =
    let tokens = tokenCounts opts.Quick
    // Work units ≈ tokens-weighted calls, so 4096-token configurations dominate the ETA as they dominate the time.
    let units t = 1.0 + float t / 64.0
    let callsPer t = let p = plan opts.Quick t in p.Warmup + p.MinReps
    let total = float bondCaps.Length * (tokens |> List.sumBy (fun t -> units t * float (paths.Length * callsPer t)))
    torch.manual_seed 20210603L |> ignore
    use dense = torch.nn.Linear(int64 inFeatures, int64 outFeatures)
    dense.train ()
    let f = FactorizationChooser.Choose(outFeatures, inFeatures)
    // A seeded random weight, decomposed once and then only truncated: timings do not depend on the values.
    use full = MpoDecomposer.Decompose(dense.weight, f)
    // MpoLinear copies the cores, so the truncated MPO can go as soon as the layer exists.
    let layerFor cap =
        match cap with
        | None -> new MpoLinear(full, dense.bias)
        | Some b ->
            use cut = full.Truncate(TruncationSpec.MaxBond b)
            new MpoLinear(cut, dense.bias)
    let guard bonds previous i t =
        let path = if i = 2 then ContractionPath.Factorized else ContractionPath.Reconstruct
        skipReason opts.Quick f bonds path (previous |> Option.map (fun (t0, profiles: Measure.Profile[]) -> t0, profiles.[i])) t
    withProgress opts "linear" total (fun progress ->
        [ for cap in bondCaps do
              use layer = layerFor cap
              layer.train ()
              let bonds = layer.Bonds
              let mutable previous = None
              for t in tokens do
                  progress.Describe $"bonds {bondText cap}, {t} tokens"
                  use g = new torch.Generator(uint64 (7 + t))
                  use x = torch.randn([| int64 t; int64 inFeatures |], generator = g)
                  let picked = CostModel.Choose(f, bonds, int64 t, layer.training)
                  // Auto runs whatever it picks, so it is also skipped when its pick would be.
                  let pickedIndex = if picked = ContractionPath.Factorized then 2 else 1
                  let pathStep path guards =
                      match guards |> List.tryPick (fun i -> guard bonds previous i t) with
                      | Some reason -> Measure.Skip reason
                      | None ->
                          let run () =
                              layer.Path <- path
                              step layer x ()
                          let actual = if path = ContractionPath.Auto then picked else path
                          if predictedMiB f bonds actual t > heavyMiB then Measure.RunLast run else Measure.Run run
                  let candidates =
                      [| Measure.Run(step dense x)
                         pathStep ContractionPath.Reconstruct [ 1 ]
                         pathStep ContractionPath.Factorized [ 2 ]
                         pathStep ContractionPath.Auto [ pickedIndex ] |]
                  let profiles = Measure.profile (plan opts.Quick t) (fun _ -> progress.Advance(units t)) candidates
                  previous <- Some(t, profiles)
                  let rec', fact = CostModel.Reconstruct(f, bonds, int64 t, true), CostModel.Factorized(f, bonds, int64 t, true)
                  let best = fastest [ median profiles.[1]; median profiles.[2] ]
                  yield
                      { Bonds = bondText cap
                        BondDims = bonds
                        Parameters = f.ParameterCount bonds
                        Tokens = t
                        Profiles = profiles
                        AutoPicked = (string picked).ToLowerInvariant()
                        Predicted =
                          { DenseEffective = CostModel.Dense(f, int64 t, true).Effective
                            ReconstructEffective = rec'.Effective
                            FactorizedEffective = fact.Effective
                            FactorizedReverse = fact.Reverse
                            FactorizedReverseAsRun = CostModel.Factorized(f, bonds, int64 t, false).Reverse
                            FactorizedMiB = predictedMiB f bonds ContractionPath.Factorized t }
                        AutoOverBest = median profiles.[3] / best
                        ReconstructOverDense = median profiles.[1] / median profiles.[0]
                        // A skipped path was skipped for being far slower than the other.
                        Faster =
                            if profiles.[2].Skipped <> "" then "reconstruct"
                            elif profiles.[1].Skipped <> "" then "factorized"
                            elif median profiles.[2] < median profiles.[1] then "factorized"
                            else "reconstruct" } ])

let autoTolerance = 1.10
let reconstructTarget = 1.5

/// A time cell: "skipped", or the median with the sample count when it is too small to hide.
let private cell (p: Measure.Profile) =
    if p.Skipped <> "" then "skipped"
    elif p.Time.Reps < 5 then $"{ms (median p)} ({p.Time.Reps}×)"
    else ms (median p)

let markdown (quick: bool) (results: Result list) =
    let main =
        table
            [ "bonds", Left
              "params", Right
              "tokens", Right
              "dense ms", Right
              "reconstruct ms", Right
              "factorized ms", Right
              "auto ms (picked)", Right
              "auto / best", Right
              "reconstruct / dense", Right
              "peak RSS MiB dense / rec / fact / auto", Right ]
            [ for r in results ->
                  let p = r.Profiles
                  [ r.Bonds
                    $"{float r.Parameters / 1e6:F2}M"
                    string r.Tokens
                    cell p.[0]
                    cell p.[1]
                    cell p.[2]
                    $"{cell p.[3]} ({r.AutoPicked})"
                    ratio r.AutoOverBest
                    ratio r.ReconstructOverDense
                    p |> Array.map (fun x -> mib x.PeakMiB) |> String.concat " / " ] ]
    let model =
        table
            [ "bonds", Left
              "tokens", Right
              "predicted reconstruct", Right
              "predicted factorized", Right
              "predicted fact / rec", Right
              "measured fact / rec", Right
              "picked", Left
              "faster", Left
              "fact MiB predicted / measured", Right ]
            [ for r in results ->
                  [ r.Bonds
                    string r.Tokens
                    sci r.Predicted.ReconstructEffective
                    sci r.Predicted.FactorizedEffective
                    ratio (r.Predicted.FactorizedEffective / r.Predicted.ReconstructEffective)
                    ratio (median r.Profiles.[2] / median r.Profiles.[1])
                    r.AutoPicked
                    r.Faster
                    $"{r.Predicted.FactorizedMiB:F0} / {mib (r.Profiles.[2].PeakMiB - r.Profiles.[2].BaselineMiB)}" ] ]
    let measured = results |> List.filter (fun r -> not (Double.IsNaN r.AutoOverBest))
    let worst = measured |> List.maxBy (fun r -> r.AutoOverBest)
    let autoOk = measured |> List.forall (fun r -> r.AutoOverBest <= autoTolerance)
    let skipped =
        [ for r in results do
              for i in 0 .. paths.Length - 1 do
                  if r.Profiles.[i].Skipped <> "" then
                      yield $"  - {paths.[i]}, bonds {r.Bonds}, {r.Tokens} tokens: {r.Profiles.[i].Skipped}" ]
    let target =
        results |> List.tryFind (fun r -> r.Tokens = 4096 && r.Bonds = "full")
    let reconstructLine =
        match target with
        | Some r ->
            let ok = r.ReconstructOverDense <= reconstructTarget
            $"- reconstruct ≤ {reconstructTarget}× dense at 4096 tokens, full bonds: {yesNo ok} ({r.ReconstructOverDense:F2}×)"
        | None -> $"- reconstruct ≤ {reconstructTarget}× dense at 4096 tokens, full bonds: not measured (quick mode has no 4096-token run)"
    let mismatched = results |> List.filter (fun r -> r.AutoPicked <> r.Faster)
    let reps =
        results |> List.collect (fun r -> r.Profiles |> Array.filter (fun p -> p.Skipped = "") |> Array.map (fun p -> p.Time.Reps) |> List.ofArray)
    let title = if quick then "MpoLinear 3072×768 forward+backward, quick mode" else "MpoLinear 3072×768 (BERT FFN in) forward+backward"
    String.concat "\n"
        [ $"### {title}"
          ""
          main
          ""
          $"- auto within 10%% of the faster path everywhere: {yesNo autoOk} (worst case auto / best = {worst.AutoOverBest:F2} at bonds {worst.Bonds}, {worst.Tokens} tokens, picked {worst.AutoPicked}, faster {worst.Faster})"
          reconstructLine
          yield! (if skipped.IsEmpty then [] else "- not run (time or memory limit):" :: skipped)
          $"- cost model picked the slower path in {mismatched.Length} of {results.Length} configurations"
          + (if mismatched.IsEmpty then "" else ": " + (mismatched |> List.map (fun r -> $"{r.Bonds}/{r.Tokens} tokens") |> String.concat ", "))
          $"- times: median of {List.min reps}–{List.max reps} interleaved repetitions after warm-up (calls over {(plan quick 4096).SlowMs / 1000.0:F0} s: {(plan quick 4096).SlowReps} at most, count shown); one step = forward, `sum()`, backward, `zero_grad()`, inside a dispose scope; the input needs no gradient."
          "- dense: `torch.nn.Linear(768, 3072)` with bias; MpoLinear holds the same weight (a seeded random one) and bias, truncated with `TruncationSpec.MaxBond`."
          "- peak RSS: whole-process high-water mark over one step of that path alone, after returning freed memory to the OS (includes the runtime, libtorch, both layers and the input)."
          ""
          "#### Cost model (`CostModel`, training) against the measurements"
          ""
          model
          ""
          "- predicted: `PathCost.Effective` (MACs + CopyWeight·copies + CallOverheadMacs·calls); fact / rec below 1 means the model prefers factorized."
          "- fact MiB: the cost model's peak + saved elements of the factorized step as float32, against the measured RSS growth over that step." ]
