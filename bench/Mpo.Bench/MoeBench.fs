/// MoE layer forward+backward (issue 11 §6): MPOE's experts (one shared central tensor per FFN matrix, auxiliary
/// tensors per expert) against dense-expert Switch at 4, 8, 16 and 64 experts and against the base FFN, on T5-base's
/// FFN shape (768 → 3072 → 768, ReLU, bias-free), with total parameters side by side. Both MoE layers route the same
/// way (top-1, capacity factor 1.25, gate = p, the same router weights), so they differ only in how experts hold
/// their matrices. Targets: MPOE at least as fast per step as Switch at 8+ experts; memory that grows with the
/// auxiliary size, not the full expert size.
module Mpo.Bench.MoeBench

open System
open TorchSharp
open Mpo.Contraction
open Mpo.Experts
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Bench.Report

type Tensor = torch.Tensor
type Layer = torch.nn.Module<Tensor, Tensor>

let shape quick = if quick then 128, 512 else 768, 3072
let tokens quick = if quick then 256 else 2048
let expertCounts quick = if quick then [ 4; 8 ] else [ 4; 8; 16; 64 ]

let plan quick : Timing.Plan =
    if quick then { Warmup = 2; MinReps = 5; MaxReps = 30; BudgetMs = 3000.0; SlowMs = 2000.0; SlowReps = 2 }
    else { Warmup = 2; MinReps = 3; MaxReps = 15; BudgetMs = 30000.0; SlowMs = 8000.0; SlowReps = 2 }

/// MPOE as trained by default (each expert's weight rebuilt again in backward instead of kept) and with the rebuilt
/// weights kept for backward (what autograd through the rebuild does, as the papers' code).
let candidates = [| "base FFN"; "Switch (dense experts)"; "MPOE"; "MPOE, W kept" |]

type Result =
    { Experts: int
      Tokens: int
      /// base FFN, Switch, MPOE (the MoE counts include the router; "W kept" has MPOE's)
      Parameters: int64[]
      Profiles: Measure.Profile[]
      /// What the cost model has MPO experts do for the tokens an expert gets on average.
      MpoePath: string
      /// Mean tokens per expert in the measured routing.
      TokensPerExpert: float
      DroppedFraction: float }

let private count (m: torch.nn.Module) = m.parameters() |> Seq.sumBy (fun p -> p.numel())

/// One training step of a plain block: forward, sum, backward, gradients dropped.
let private denseStep (layer: Layer) (x: Tensor) () =
    use scope = torch.NewDisposeScope()
    layer.forward(x).sum().backward()
    layer.zero_grad()

/// One training step of an MoE layer, its auxiliary losses included.
let private moeStep (layer: MoeFeedForward) (x: Tensor) () =
    use scope = torch.NewDisposeScope()
    use step = MoeStep.Begin(layer)
    step.AddTo(LossOutput(layer.forward(x).sum())).Loss.backward()
    layer.zero_grad()

let private copyRouter (from: MoeFeedForward) (into: MoeFeedForward) =
    use _ = torch.no_grad()
    into.router.weight.copy_(from.router.weight) |> ignore

let run (opts: Options) =
    let d, ff = shape opts.Quick
    let t = tokens opts.Quick
    torch.manual_seed 20221012L |> ignore
    let wi = torch.nn.Linear(int64 d, int64 ff, hasBias = false)
    let wo = torch.nn.Linear(int64 ff, int64 d, hasBias = false)
    let ffn = new FeedForwardView("wi", (fun () -> wi :> Layer), "wo", (fun () -> wo :> Layer), Func<Tensor, Tensor>(fun h -> torch.nn.functional.relu(h)))
    ffn.train()
    use g = new torch.Generator(17UL)
    use x = torch.randn([| int64 t; int64 d |], generator = g)
    let total = expertCounts opts.Quick |> List.sumBy (fun n -> float n)
    withProgress opts "moe" total (fun progress ->
        [ for n in expertCounts opts.Quick do
              progress.Describe $"{n} experts"
              let options = MoeOptions(Experts = n, TopK = 1, CapacityFactor = 1.25, Gates = GateMode.Probability, RouterBias = false)
              use switch = MoeFeedForward.Upcycle(ffn, options, ExpertKind.Dense)
              use mpoe = MoeFeedForward.Upcycle(ffn, options, ExpertKind.Mpo)
              use kept = MoeFeedForward.Upcycle(ffn, options, ExpertKind.Mpo)
              copyRouter switch mpoe
              copyRouter switch kept
              for m in [ kept.Input; kept.Output ] do (m :?> MpoExpertMatrices).RecomputeWeights <- false
              switch.train()
              mpoe.train()
              kept.train()
              // The routing both layers take (same router, same input).
              let load =
                  use scope = torch.NewDisposeScope()
                  use step = MoeStep.Begin(switch)
                  switch.forward(x) |> ignore
                  step.Loads.[0], step.DroppedFraction
              let loads, dropped = load
              let perExpert = float (Array.sum loads.Kept) / float n
              let bank = mpoe.Input :?> MpoExpertMatrices
              let path = (string (bank.PathFor(int64 (Math.Round perExpert), true))).ToLowerInvariant()
              let profiles =
                  Measure.profile (plan opts.Quick) (fun _ -> progress.Advance(float n / 4.0))
                      [| Measure.Run(denseStep ffn x); Measure.Run(moeStep switch x); Measure.Run(moeStep mpoe x); Measure.Run(moeStep kept x) |]
              yield
                  { Experts = n
                    Tokens = t
                    Parameters = [| count wi + count wo; count switch; count mpoe |]
                    Profiles = profiles
                    MpoePath = path
                    TokensPerExpert = perExpert
                    DroppedFraction = dropped } ])

let private median (p: Measure.Profile) = p.Time.MedianMs

let private perSecond (r: Result) (p: Measure.Profile) = float r.Tokens / (median p / 1000.0)

let markdown (quick: bool) (results: Result list) =
    let d, ff = shape quick
    let main =
        table
            [ "experts", Right
              "params base / Switch / MPOE", Right
              "MPOE / Switch params", Right
              "tokens/s base / Switch / MPOE / MPOE W kept", Right
              "MPOE / Switch time", Right
              "peak RSS MiB base / Switch / MPOE / MPOE W kept", Right
              "MPO path (tokens per expert)", Left
              "dropped", Right ]
            [ for r in results ->
                  let p = r.Profiles
                  [ string r.Experts
                    r.Parameters |> Array.map (fun c -> $"{float c / 1e6:F2}M") |> String.concat " / "
                    ratio (float r.Parameters.[2] / float r.Parameters.[1])
                    p |> Array.map (fun x -> (perSecond r x).ToString("F0")) |> String.concat " / "
                    ratio (median p.[2] / median p.[1])
                    p |> Array.map (fun x -> mib x.PeakMiB) |> String.concat " / "
                    $"{r.MpoePath} ({r.TokensPerExpert:F0})"
                    $"{100.0 * r.DroppedFraction:F1}%%" ] ]
    let fastEnough = results |> List.filter (fun r -> r.Experts >= 8) |> List.forall (fun r -> median r.Profiles.[2] <= median r.Profiles.[1])
    let growth i =
        let first, last = List.head results, List.last results
        last.Profiles.[i].PeakMiB - first.Profiles.[i].PeakMiB
    let first, last = List.head results, List.last results
    let title =
        if quick then $"MoE layer {d}→{ff}→{d} forward+backward, {first.Tokens} tokens, quick mode"
        else $"MoE layer {d}→{ff}→{d} (T5-base FFN) forward+backward, {first.Tokens} tokens"
    String.concat "\n"
        [ $"### {title}"
          ""
          main
          ""
          $"- MPOE at least as fast per step as dense-expert Switch at 8+ experts: {yesNo fastEnough}"
          $"- peak RSS growth from {first.Experts} to {last.Experts} experts: Switch {mib (growth 1)} MiB, MPOE {mib (growth 2)} MiB, MPOE with W kept {mib (growth 3)} MiB " +
          $"(parameters grow by {float (last.Parameters.[1] - first.Parameters.[1]) / 1e6:F1}M and {float (last.Parameters.[2] - first.Parameters.[2]) / 1e6:F1}M)"
          $"- routing: top-1, capacity factor 1.25, gate = p, the same router weights for all; MPO path = what the cost model picks for an expert's average token count; \"W kept\": the rebuilt expert weights kept for backward instead of rebuilt there" ]
