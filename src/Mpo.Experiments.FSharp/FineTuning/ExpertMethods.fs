/// The MoE methods of a trial (Switch, MoE, MPOE: MPOE Table 1's rows) applied to a loaded model for fine-tuning:
/// the FFNs upcycled through the tuner configuration's "moe" section, the routing losses added to the task loss
/// (MoeStep), the gradient mask as a trainer callback, and the expert loads summed over the run for the record.
module Mpo.Experiments.FineTuning.ExpertMethods

open System.Text.Json.Nodes
open Mpo.Experts
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial

/// An MoE method applied to a model: the tuned model, the loads summed over training, the callbacks to train with.
type Applied =
    { Tuned: TunedModel
      Tally: ExpertLoadTally
      Callbacks: TrainerCallback list }

/// The method's kind and settings, if it is an MoE method.
let settings (m: Method) =
    match m with
    | Method.Switch e -> Some(MoeKind.Switch, e)
    | Method.Moe e -> Some(MoeKind.Moe, e)
    | Method.Mpoe e -> Some(MoeKind.Mpoe, e)
    | _ -> None

/// The tuner configuration of an MoE method: its "moe" section from the settings (read by the core's one parser, so
/// its checks apply), the experts' cores, nothing else decomposed.
let tunerConfig (kind: MoeKind) (e: ExpertSettings) =
    // the spec's method fields are the section's, except p_b (an object there), its mode, and the cores (top level)
    let moe = JsonObject()
    TrialJson.writeExperts moe e
    for key in [ "gradient_mask"; "gradient_mask_mode"; "cores" ] do moe.Remove key |> ignore
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

/// Upcycles the model's FFNs when the method is an MoE method; None otherwise.
let apply (m: Method) (model: PretrainedModel) =
    settings m
    |> Option.map (fun (kind, e) ->
        let config = tunerConfig kind e
        let tuned = MpoTuner(config).Apply(model)
        let tally = ExpertLoadTally()
        let mask =
            match config.Moe.GradientMask with
            | null -> []
            | g when g.IsOff || g.Freezes -> []   // p_b = 1 froze the central tensors when applied
            | g -> [ g.Callback() :> TrainerCallback ]
        { Tuned = tuned; Tally = tally; Callbacks = (tally :> TrainerCallback) :: mask })

/// The training loss of one batch: the task loss from <c>forward</c>, plus the routing losses of an MoE model
/// (α·balance + β·z, logged as components), whose loads are added to the tally.
let loss (applied: Applied option) (model: PretrainedModel) (inputs: ModelInputs) (forward: unit -> LossOutput) =
    match applied with
    | None -> forward ()
    | Some a ->
        use step = MoeStep.Begin(model, inputs)
        let out = forward ()
        a.Tally.Add step.Loads
        step.AddTo out

/// The record's series of an MoE run: per layer, the share of kept tokens each expert computed over training
/// ("expert_load/<layer>", the name Store.ResultStore.Keys.expertLoad gives, which compiles after this file and
/// which the store's tests hold to it), the routed counts and [dropped, real] tokens.
let series (applied: Applied option) : Map<string, float list> =
    match applied with
    | None -> Map.empty
    | Some a ->
        Map.ofList
            [ for layer in a.Tally.Layers do
                yield sprintf "expert_load/%s" layer, List.ofArray (a.Tally.KeptFractions layer)
                yield sprintf "expert_routed/%s" layer, [ for c in a.Tally.Routed layer -> float c ]
                yield sprintf "expert_dropped/%s" layer, [ float (a.Tally.Dropped layer); float (a.Tally.Tokens layer) ] ]

/// The record's MoE metrics: experts, router parameters (the papers' totals leave them out) and the share of dropped tokens.
let metrics (applied: Applied option) : (string * float) list =
    match applied with
    | None -> []
    | Some a ->
        let count = ParameterCounting.Describe a.Tuned.Model
        let tokens = a.Tally.Layers |> Seq.sumBy a.Tally.Tokens
        let dropped = a.Tally.Layers |> Seq.sumBy a.Tally.Dropped
        [ "moe.experts", float (a.Tuned.Experts |> Seq.map (fun t -> t.Experts) |> Seq.max)
          "moe.layers", float a.Tuned.Experts.Count
          "moe.router_parameters", float count.RouterParameters
          "moe.dropped_fraction", (if tokens = 0L then 0.0 else float dropped / float tokens) ]
