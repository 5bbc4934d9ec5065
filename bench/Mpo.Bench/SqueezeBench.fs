/// Time per squeeze cut (issue 9 §8 (b)): the parts of one cut of MPOP's dimension squeezing (Algorithm 2, spec §4.4)
/// as DimensionSqueezing makes it, next to one lightweight fine-tuning step of the same model, so a reader sees what a
/// cut costs relative to the recovery steps around it. One BERT model (BERT-base in full mode) built from its configuration with
/// random weights (the cost depends on shapes only), MPO-ized by the tuner with central tensors frozen (LFA); then
/// K rounds of one training step (forward + backward + the project's AdamW on one random batch, as `mpo-bench lfa`)
/// followed by one cut: (1) choose the cheapest central-bond unit over every decomposed layer from the stored
/// Schmidt values (DimensionSqueezing.Cheapest), (2) truncate that layer in place (MpoLayer.Truncate: re-gauge the
/// trained cores, then cut one unit), (3) refresh the optimizer as the trainer does after a cut (AdamW.Rebind on
/// freshly built groups: the replaced cores' moments are dropped). The step before each cut trains the auxiliary
/// tensors, so each cut re-gauges non-canonical cores and finds AdamW state to drop, as in a real run.
module Mpo.Bench.SqueezeBench

open System
open System.Diagnostics
open System.Text.Json.Nodes
open TorchSharp
open Mpo.Decomposition
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Bench.Report

/// One cut: which bond of which layer, and what each part took.
type Cut =
    { Cut: int
      Path: string
      Family: string
      Bond: int
      /// The bond's dimension after the cut.
      Dimension: int
      /// λ²_{d−1} / Σλ² of the dropped unit (MPOP's estimate of the relative squared error it adds).
      EstimatedError: float
      ChooseMs: float
      TruncateMs: float
      RefreshMs: float
      /// AdamW states the refresh dropped (the cut layer's trained cores: all re-gauged).
      DroppedStates: int
      /// All parameters after the cut.
      Parameters: int64 }

type Result =
    { Model: string
      Preset: string
      Batch: string
      /// Decomposed layers the cuts choose among.
      Layers: int
      /// The timed training steps (one before each cut), ms.
      StepsMs: float[]
      StepMs: float
      ChooseMs: float
      TruncateMs: float
      RefreshMs: float
      /// Median over cuts of choose + truncate (each cut's own sum).
      CutMs: float
      /// Median over cuts of choose + truncate + refresh.
      CutWithRefreshMs: float
      Cuts: Cut list }

/// Full: BERT-base, as `mpo-bench tune`. Quick: the small BERT of `mpo-bench lfa --quick`, not tune's 1-layer
/// BERT-base: MPO-izing that one's 7,680×768 embedding and cutting it (random weights put every cut there) took
/// 171 s on the 2-core VM, far over CI's half minute.
let private config quick =
    let json =
        if quick then """{"model_type": "bert", "vocab_size": 1000, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512}"""
        else """{"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}"""
    ModelRegistry.ReadConfig(JsonNode.Parse(json).AsObject(), "bench")

let run (opts: Options) =
    let preset = if opts.Quick then "mpop" else "mpop-bert"
    // batch as `mpo-bench lfa`; cuts K as issue 9 §8 (b)
    let batch, sequence, warmup, cuts = if opts.Quick then 4, 32, 1, 3 else 8, 128, 1, 10
    let cfg = config opts.Quick
    use g = new torch.Generator(7UL)
    use ids = torch.randint(0L, int64 cfg.VocabSize, [| int64 batch; int64 sequence |], generator = g)
    use labels = torch.randint(0L, 2L, [| int64 batch |], generator = g)
    torch.manual_seed 1L |> ignore
    use model = ModelRegistry.Create(cfg, "BertForSequenceClassification")
    let tuned = MpoTuner(MpoPresets.Get preset).Apply model
    // The groups the trainer builds for LFA, and rebuilds after every cut (Trainer.RefreshParameters).
    let rules = List.ofSeq (MpoTuner.ParameterGroupRules(Nullable 1e-4))
    let groups () = ParameterGroups.Build(model, 1e-4, 0.01, rules)
    use optimizer = new AdamW(groups ())
    model.train ()
    let step () = LfaBench.trainingStep model optimizer ids labels
    for _ in 1 .. warmup do step ()
    let rounds =
        withProgress opts "squeeze" (float cuts) (fun progress ->
            [ for i in 1 .. cuts do
                let stepMs = Timing.time step
                let clock = Stopwatch.StartNew()
                let choice = DimensionSqueezing.Cheapest(tuned, tuned.Targets)
                let chooseMs = clock.Elapsed.TotalMilliseconds
                if not choice.HasValue then failwith $"squeeze: no central bond above 1 left to cut before cut {i}"
                let struct (target, bond, estimate) = choice.Value
                progress.Describe $"cut {i}: {target.Path}"
                let layer = tuned.Layer target
                // Algorithm 2's cut as DimensionSqueezing.Cut makes it: one unit off the chosen bond
                let bonds = layer.Bonds
                bonds.[bond] <- bonds.[bond] - 1
                let truncateMs = Timing.time (fun () -> layer.Truncate(TruncationSpec.PerBond(bonds.[1 .. bonds.Length - 2])) |> ignore)
                let mutable dropped = 0
                let refreshMs = Timing.time (fun () -> dropped <- optimizer.Rebind(groups ()).Count)
                progress.Advance 1.0
                yield stepMs,
                      { Cut = i; Path = target.Path; Family = target.Family; Bond = bond; Dimension = layer.Bonds.[bond]
                        EstimatedError = estimate; ChooseMs = chooseMs; TruncateMs = truncateMs; RefreshMs = refreshMs
                        DroppedStates = dropped; Parameters = tuned.Count().Total } ])
    let steps = rounds |> List.map fst |> Array.ofList
    let cutList = rounds |> List.map snd
    let med f = cutList |> List.map f |> Array.ofList |> Timing.median
    [ { Model = (if opts.Quick then "BERT, 2 layers × 128 (quick)" else "BERT-base (12 layers)")
        Preset = preset
        Batch = $"{batch}×{sequence}"
        Layers = tuned.Targets.Count
        StepsMs = steps
        StepMs = Timing.median steps
        ChooseMs = med (fun c -> c.ChooseMs)
        TruncateMs = med (fun c -> c.TruncateMs)
        RefreshMs = med (fun c -> c.RefreshMs)
        CutMs = med (fun c -> c.ChooseMs + c.TruncateMs)
        CutWithRefreshMs = med (fun c -> c.ChooseMs + c.TruncateMs + c.RefreshMs)
        Cuts = cutList } ]

let markdown (_: bool) (results: Result list) =
    let n (x: int64) = x.ToString("N0", Globalization.CultureInfo.InvariantCulture)
    let range (xs: float seq) = let a = Array.ofSeq xs in $"{ms (Array.min a)}–{ms (Array.max a)}"
    let times (x: float) = (if x >= 0.1 then x.ToString("F2") else sci x) + "×"
    let parts =
        table
            [ "model", Left; "preset", Left; "layers", Right; "part", Left; "median ms", Right; "range ms", Right; "/ step", Right ]
            [ for r in results do
                let row part (median: float) (samples: float seq) =
                    [ r.Model; r.Preset; string r.Layers; part; ms median; range samples; times (median / r.StepMs) ]
                yield row "(1) choose: `DimensionSqueezing.Cheapest`" r.ChooseMs (r.Cuts |> Seq.map (fun c -> c.ChooseMs))
                yield row "(2) truncate: `MpoLayer.Truncate` (re-gauge + cut)" r.TruncateMs (r.Cuts |> Seq.map (fun c -> c.TruncateMs))
                yield row "(3) optimizer refresh: `AdamW.Rebind`" r.RefreshMs (r.Cuts |> Seq.map (fun c -> c.RefreshMs))
                yield row "cut = (1) + (2)" r.CutMs (r.Cuts |> Seq.map (fun c -> c.ChooseMs + c.TruncateMs))
                yield row "cut + refresh = (1) + (2) + (3)" r.CutWithRefreshMs (r.Cuts |> Seq.map (fun c -> c.ChooseMs + c.TruncateMs + c.RefreshMs))
                yield row $"LFA training step, batch {r.Batch}" r.StepMs r.StepsMs ]
    let perCut =
        table
            [ "cut", Right; "layer", Left; "family", Left; "bond → d", Left; "λ²/Σλ²", Right; "choose ms", Right; "truncate ms", Right
              "refresh ms", Right; "AdamW states dropped", Right; "params after", Right ]
            [ for r in results do
                for c in r.Cuts ->
                    [ string c.Cut; c.Path; c.Family; $"{c.Bond} → {c.Dimension}"; sci c.EstimatedError; ms c.ChooseMs; ms c.TruncateMs
                      ms c.RefreshMs; string c.DroppedStates; n c.Parameters ] ]
    let families =
        [ for r in results do
            r.Cuts |> List.countBy (fun c -> c.Family) |> List.map (fun (f, k) -> $"{f} {k}") |> String.concat ", " ]
        |> String.concat "; "
    let k = results |> List.sumBy (fun r -> r.Cuts.Length)
    String.concat "\n\n"
        [ parts
          perCut
          $"Medians over {k} cuts, each after one timed training step; families the cuts hit: {families}. \"/ step\" is the part's median over the step's. \
            Truncate is timed as the one public call that contains both the re-gauge of the trained cores and the cut \
            (the two are not separable through the public API). The refresh is what the trainer does after a cut \
            (AdamW.Rebind on freshly built parameter groups); AdamW's fresh zero moments for the replaced cores are made in \
            the next step and so are inside the step time." ]
