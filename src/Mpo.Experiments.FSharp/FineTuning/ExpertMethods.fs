/// The MoE methods of a trial (Switch, MoE, MPOE: MPOE Table 1's rows) as fine-tuning methods in the shape of
/// Methods: the FFNs upcycled through the tuner configuration's "moe" section, every parameter trained (the gradient
/// mask as a trainer callback), the routing losses added to the batch's task loss (MoeStep, unless the configuration
/// turns them off), and the expert loads summed over the run (a callback, so a resumed run keeps them) for the record.
/// Nothing is saved besides the trainer's checkpoints (their config.json records the experts, so they load back).
module Mpo.Experiments.FineTuning.ExpertMethods

open System.Text.Json.Nodes
open Mpo.Experts
open Mpo.Training
open Mpo.Tuning
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.FineTuning.Methods

/// The tuner configuration of an MoE method: its "moe" section from the settings (read by the core's one parser, so
/// its checks apply), the experts' cores, nothing else decomposed.
let tunerConfig (kind: MoeKind) (e: ExpertSettings) =
    // the spec's method fields are the section's, except p_b (an object there), its mode, and the cores (top level)
    let moe = JsonObject()
    TrialJson.writeExperts moe e
    for key in [ "gradient_mask"; "gradient_mask_mode"; "cores"; "mpo_learning_rate" ] do moe.Remove key |> ignore
    moe.["kind"] <- JsonValue.Create(MoeTunerConfig.NameOf kind)
    if e.GradientMask > 0.0 then
        let mask = JsonObject()
        mask.["p_b"] <- JsonValue.Create e.GradientMask
        mask.["mode"] <- JsonValue.Create e.GradientMaskMode
        moe.["gradient_mask"] <- mask
    let json = JsonObject()
    json.["cores"] <- JsonValue.Create e.Cores
    json.["moe"] <- moe
    MpoTunerConfig.FromJson(json, "method")

/// The record's series of an MoE run: per layer, the share of kept tokens each expert computed over training
/// (Keys.expertLoad), the routed counts and [dropped, real] tokens.
let private series (tally: ExpertLoadTally) : Map<string, float list> =
    Map.ofList
        [ for layer in tally.Layers do
            yield Keys.expertLoad layer, List.ofArray (tally.KeptFractions layer)
            yield sprintf "expert_routed/%s" layer, [ for c in tally.Routed layer -> float c ]
            yield sprintf "expert_dropped/%s" layer, [ float (tally.Dropped layer); float (tally.Tokens layer) ] ]

/// The record's MoE metrics: experts, router parameters (the papers' totals leave them out) and the share of dropped tokens.
let private metrics (tuned: TunedModel) (tally: ExpertLoadTally) : Map<string, float> =
    let count = ParameterCounting.Describe tuned.Model
    let tokens = tally.Layers |> Seq.sumBy tally.Tokens
    let dropped = tally.Layers |> Seq.sumBy tally.Dropped
    Map.ofList
        [ "moe.experts", float (tuned.Experts |> Seq.map (fun t -> t.Experts) |> Seq.max)
          "moe.layers", float tuned.Experts.Count
          "moe.router_parameters", float count.RouterParameters
          "moe.dropped_fraction", (if tokens = 0L then 0.0 else float dropped / float tokens) ]

/// An MoE method of <c>kind</c>: the context's model upcycled (MPO experts' cores in MPOP's group when the trial sets
/// their learning rate); the batch loss is the task loss plus the routing losses
/// (α·balance + β·z, logged as components), whose loads go to the tally; the loads and MoE metrics at the end.
let upcycle (kind: MoeKind) (e: ExpertSettings) (ctx: Context) =
    let config = tunerConfig kind e
    let tuned = MpoTuner(config).Apply ctx.Model
    let tally = ExpertLoadTally()
    let mask =
        match config.Moe.GradientMask with
        | null -> []
        | g when g.IsOff || g.Freezes -> []   // p_b = 1 froze the central tensors when applied
        | g -> [ g.Callback() :> TrainerCallback ]
    { full () with
        // MPOP's group for the MPO experts' cores when the trial gives them their own learning rate (Trial.ExpertSettings)
        ParameterGroups = (match e.MpoLearningRate with Some lr -> List.ofSeq (MpoTuner.ParameterGroupRules(System.Nullable lr)) | None -> [])
        Callbacks = (tally :> TrainerCallback) :: mask
        Loss =
            fun inputs forward ->
                use step = MoeStep.Begin(ctx.Model, inputs)
                let out = forward ()
                tally.Add step.Loads
                step.AddTo out
        Finish = fun () -> series tally, metrics tuned tally }

/// +Switch: top-1 routing, dense experts upcycled from the FFN.
let switch (e: ExpertSettings) (ctx: Context) = upcycle MoeKind.Switch e ctx

/// +MoE: Shazeer-style top-2 routing, dense experts.
let moe (e: ExpertSettings) (ctx: Context) = upcycle MoeKind.Moe e ctx

/// MPOE: MPO experts sharing one central tensor per FFN matrix, each with its own auxiliary tensors.
let mpoe (e: ExpertSettings) (ctx: Context) = upcycle MoeKind.Mpoe e ctx
