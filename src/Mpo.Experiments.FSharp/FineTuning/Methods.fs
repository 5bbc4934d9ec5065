/// The methods a trial trains by (Specs.Trial.Method), each as what it does to a loaded model: the change it makes
/// (MPO decomposition, truncation, upcycled experts), the trainer's parameter-group rules and callbacks, what it adds
/// to the batch loss (the routing losses), and what the run keeps at the end (the adapter, the squeezing trajectory,
/// the expert loads). FineTune.run calls one function here (or in LowRankMethods, ExpertMethods) per method, so a new
/// method is a function beside these and one line there.
module Mpo.Experiments.FineTuning.Methods

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore

/// What a method needs from the run.
type Context =
    { Model: PretrainedModel
      /// The base checkpoint's folder (an adapter records its hash).
      ModelFolder: string
      RunFolder: string
      /// Parameters the checkpoint did not have (initialized at random when loading: a new head, a missing pooler).
      NewlyInitialized: IReadOnlyList<string>
      /// The dev split's mean loss and metrics (squeezing's p and p̃, and the trajectory's metric per cut).
      Measure: unit -> float * IReadOnlyDictionary<string, float> }

/// A method applied to the loaded model: what the trainer gets, and what the run keeps.
type Applied =
    { ParameterGroups: ParameterGroupRule list
      Callbacks: TrainerCallback list
      /// The training loss of one batch from the task loss (<c>forward</c> computes it): the task loss itself, or with
      /// what the method adds (MoE's routing losses around the forward pass).
      Loss: ModelInputs -> (unit -> LossOutput) -> LossOutput
      /// Whether the best dev checkpoint is loaded at the end; not after squeezing, whose bonds changed on the way
      /// (its model is the last good state).
      LoadBestAtEnd: bool
      /// After training: writes what the method saves into the run folder and returns the record's series and extra
      /// metrics.
      Finish: unit -> Map<string, float list> * Map<string, float> }

/// The folder of a run's adapter (adapter_config.json + adapter_model.safetensors).
let adapterFolder (runFolder: string) = Path.Combine(runFolder, "adapter")

/// Full fine-tuning: the model as loaded, every parameter trained, nothing saved besides the trainer's checkpoints.
let full () =
    { ParameterGroups = []; Callbacks = []; Loss = (fun _ forward -> forward ()); LoadBestAtEnd = true
      Finish = fun () -> Map.empty, Map.empty }

/// The tuner configuration a method names: a preset or a JSON file (errors name the preset list or the file).
let tunerConfig (tuning: Trial.MpoTuning) =
    MpoTunerConfig.Load tuning.Tuner

/// The tuner's configuration for the context's model: MPOP decomposes pre-trained matrices, so a family whose modules
/// the checkpoint lacks (the pooler of a masked-LM checkpoint, initialized at random like the head) stays dense and is
/// trained; its random weights could not even be derived again when the adapter is loaded.
let private configFor (tuning: Trial.MpoTuning) (ctx: Context) =
    let config = tunerConfig tuning
    if not config.FreezeCentral then
        invalidArg "mpo" (sprintf "%s: freeze_central is false, but lightweight fine-tuning (LFA) keeps the central tensors frozen" tuning.Tuner)
    let fresh (t: TargetModule) =
        let weight = t.Path + ".weight"
        ctx.NewlyInitialized |> Seq.exists (fun n -> n = weight || n.EndsWith("." + weight) || weight.EndsWith("." + n))
    let selected = TargetPatterns.Match(ctx.Model, config.TargetModules)
    let skipped = [ for t in selected do if fresh t then t.Family ] |> List.distinct
    if skipped.IsEmpty then config
    else
        eprintfn "not decomposed (not in the checkpoint %s, initialized at random: trained dense): %s" ctx.ModelFolder (String.Join(", ", skipped))
        let json = config.ToJson()
        json.["target_modules"] <- JsonArray([| for f in (selected |> Seq.map (fun t -> t.Family) |> Seq.distinct) do if not (List.contains f skipped) then JsonValue.Create f :> JsonNode |])
        MpoTunerConfig.FromJson(json, tuning.Tuner)

/// Decomposes the context's model with the tuner, central tensors frozen (LFA), and prints peft's line.
let private decompose (tuning: Trial.MpoTuning) (ctx: Context) =
    let tuned = MpoTuner(configFor tuning ctx).Apply ctx.Model
    eprintfn "%s: %d modules MPO-decomposed (%s); %O" (Path.GetFileName ctx.ModelFolder) tuned.Targets.Count tuning.Tuner (tuned.Count())
    tuned

let private saveAdapter (tuned: TunedModel) (ctx: Context) =
    MpoAdapter.Save(tuned, adapterFolder ctx.RunFolder, ctx.ModelFolder)

/// MPOP_full+LFA: the tuner's matrices decomposed, central tensors frozen; the MPO cores in their own group (own
/// learning rate, no decay); the adapter written at the end.
let lfa (tuning: Trial.MpoTuning) (ctx: Context) =
    let tuned = decompose tuning ctx
    { full () with
        ParameterGroups = List.ofSeq (MpoTuner.ParameterGroupRules(Option.toNullable tuning.MpoLearningRate))
        Finish = fun () -> saveAdapter tuned ctx; Map.empty, Map.empty }

/// The dev metrics measured at squeezing's p and each p̃, kept in the trainer's checkpoints beside the squeezing
/// callback's state, so a resumed run's trajectory has every cut's metrics.
type SqueezeMetrics() =
    inherit TrainerCallback()
    member val Measured = ResizeArray<Map<string, float>>()
    override _.Name = "squeeze-metrics"
    override this.SaveState() =
        JsonArray([| for m in this.Measured -> JsonObject([ for KeyValue(k, v) in m -> KeyValuePair(k, JsonValue.Create v :> JsonNode) ]) :> JsonNode |]) :> JsonNode
    override this.LoadState(state: JsonNode) =
        this.Measured.Clear()
        for m in state.AsArray() do
            this.Measured.Add(Map.ofList [ for KeyValue(k, v) in m.AsObject() -> k, v.GetValue<float>() ])

/// The squeezing trajectory as the store's series: the model's size (all parameters), the dev loss and every dev metric,
/// before the first cut and after each cut's recovery (the last one undone when it broke Δ: its `squeeze/kept` is 0).
let trajectorySeries (before: int64) (squeezing: DimensionSqueezing) (measured: IReadOnlyList<Map<string, float>>) =
    let cuts = [ for c in squeezing.Trajectory do if Double.IsFinite c.Loss then c ]
    if Double.IsNaN squeezing.ReferenceLoss || measured.Count = 0 then Map.empty
    else
        let n = min measured.Count (cuts.Length + 1)
        let cuts = List.truncate (n - 1) cuts
        let metrics = [ for KeyValue(k, _) in measured.[0] -> k ]
        // (two lists: a `for … ->` in a list expression turns its other items into discarded statements)
        Map.ofList (
            [ Keys.squeezeParameters, float before :: [ for c in cuts -> float c.Parameters ]
              Keys.squeezeMetric "loss", squeezing.ReferenceLoss :: [ for c in cuts -> c.Loss ]
              Keys.squeezeMetric "kept", 1.0 :: [ for c in cuts -> if c.Kept then 1.0 else 0.0 ] ]
            @ [ for m in metrics -> Keys.squeezeMetric ("dev." + m), [ for i in 0 .. n - 1 -> measured.[i].[m] ] ])

/// The core's squeezing options from a trial's settings (the loss window is the recovery and warm-up length's
/// minimum; it is unused, since p and p̃ are measured on the dev split).
let squeezeOptions (s: Trial.SqueezeSettings) =
    SqueezeOptions(
        LossGap = s.LossGap, WarmupSteps = s.WarmupSteps, RecoverySteps = s.RecoverySteps,
        LossWindow = min s.WarmupSteps s.RecoverySteps,
        TargetParameters = Option.toNullable s.TargetParameters, MaxCuts = defaultArg s.MaxCuts Int32.MaxValue,
        Families = (match s.Families with Some f -> ResizeArray f :> IReadOnlyList<_> | None -> null))

/// MPOP: LFA, then dimension squeezing (Algorithm 2) as a trainer callback whose p and p̃ are the dev loss; the last
/// good state is kept in `<run>/squeeze/`; the adapter (with the squeezed central tensors) and the trajectory at the end.
let mpop (tuning: Trial.MpoTuning) (squeeze: Trial.SqueezeSettings) (ctx: Context) =
    let tuned = decompose tuning ctx
    let before = tuned.Count().Total
    let metrics = SqueezeMetrics()
    let measure () =
        let loss, scores = ctx.Measure()
        metrics.Measured.Add(Map.ofList [ for KeyValue(k, v) in scores -> k, v ])
        loss
    let squeezing = DimensionSqueezing(tuned, squeezeOptions squeeze, Path.Combine(ctx.RunFolder, "squeeze"), Func<float> measure)
    { full () with
        ParameterGroups = List.ofSeq (MpoTuner.ParameterGroupRules(Option.toNullable tuning.MpoLearningRate))
        Callbacks = [ squeezing; metrics ]
        LoadBestAtEnd = false
        Finish =
            fun () ->
                saveAdapter tuned ctx
                let cuts = squeezing.Trajectory |> Seq.filter (fun c -> c.Kept) |> Seq.length
                trajectorySeries before squeezing metrics.Measured,
                Map.ofList [ "squeeze_cuts", float cuts; "parameters_before_squeezing", float before ] }

/// MPOP_dir: decomposed, truncated straight to the target size by the cuts squeezing would make cheapest first
/// (DimensionSqueezing.PlanDirect), then LFA; the adapter at the end.
let mpopDir (tuning: Trial.MpoTuning) (targetParameters: int64) (ctx: Context) =
    let tuned = decompose tuning ctx
    let before = tuned.Count().Total
    DimensionSqueezing.Direct(tuned, DimensionSqueezing.PlanDirect(tuned, targetParameters))
    eprintfn "MPOP_dir: truncated to %O (target %s parameters)" (tuned.Count()) (targetParameters.ToString "N0")
    { full () with
        ParameterGroups = List.ofSeq (MpoTuner.ParameterGroupRules(Option.toNullable tuning.MpoLearningRate))
        Finish = fun () -> saveAdapter tuned ctx; Map.empty, Map.ofList [ "parameters_before_truncation", float before ] }
