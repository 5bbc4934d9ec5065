/// The main job (issue 9 §7): MPOP on a real pre-trained encoder, as a small grid of trials in a result store — full
/// fine-tuning, MPOP_full+LFA (MPO-decomposed, central tensors frozen), MPOP (LFA, then dimension squeezing) and
/// MPOP_dir (truncated straight to MPOP's final size, then LFA) — beside the baselines at matched parameters, on one
/// bundled task, shortened to fit minutes on two cores (a subsample of the task, short sequences, few updates), and
/// the comparison table drawn from the records.
/// The matching rule follows what MPOP compares (Table 3, spec §4.3 and §6.1): a lightweight fine-tuning method by the
/// parameters it trains (#Pr), a compressed model by its total size (#To). So LoRA (on every attention and FFN linear,
/// α = 2r) takes the rank whose trained parameters come nearest LFA's, and truncated SVD (two trained factors of every
/// matrix MPOP decomposes, one rank for all) the rank whose total comes nearest MPOP's squeezed size, which MPOP_dir
/// is truncated to as well. Both ranks are counted from the model's configuration with the tuner applied
/// (ParameterCounting.FromConfig, the one counting function), against the counts the LFA and MPOP records hold: LFA's
/// trained count is read from its record rather than predicted, since a family the checkpoint lacks (initialized at
/// random) stays dense and trains there. The table is built from whatever records the store holds.
module Mpo.Experiments.FineTuning.MpopDemo

open System
open System.IO
open Mpo.Checkpoints
open Mpo.Data
open Mpo.Models
open Mpo.Tuning
open Mpo.Experiments.Reports
open Mpo.Experiments.Runs
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Schedules
open Mpo.Experiments.Store.ResultStore

/// How far the demo shortens the task and training.
type Plan =
    { Model: string
      Task: string
      TrainExamples: int
      DevExamples: int
      MaxLength: int
      BatchSize: int
      LearningRate: float
      /// Updates of full fine-tuning and of LFA; MPOP squeezes after as many.
      Steps: int
      /// Squeezing: cuts at most, LFA updates after each, Δ.
      MaxCuts: int
      RecoverySteps: int
      LossGap: float
      Seed: int64 }

/// The demo's plan: a few minutes on two idle cores (quick: a CI smoke run of the same grid).
let plan (model: string) (quick: bool) =
    if quick then
        { Model = model; Task = "spam"; TrainExamples = 32; DevExamples = 16; MaxLength = 16; BatchSize = 8; LearningRate = 5e-4
          Steps = 4; MaxCuts = 2; RecoverySteps = 1; LossGap = 0.5; Seed = 42L }
    else
        { Model = model; Task = "spam"; TrainExamples = 256; DevExamples = 96; MaxLength = 32; BatchSize = 16; LearningRate = 5e-4
          Steps = 32; MaxCuts = 12; RecoverySteps = 2; LossGap = 0.1; Seed = 42L }

/// The shortened training every trial of the grid shares: a constant learning rate (so MPOP's first updates are
/// LFA's), one evaluation per epoch.
let training (p: Plan) (steps: int) : Trial.Training =
    { Trial.defaultTraining with
        BatchSize = p.BatchSize
        MaxLength = p.MaxLength
        LearningRate = { Peak = p.LearningRate; Shape = Mpo.Training.ScheduleKind.Constant; Warmup = WarmupSteps 0L }
        EvaluationsPerEpoch = 1
        MaxSteps = Some(int64 steps)
        TrainExamples = Some p.TrainExamples
        DevExamples = Some p.DevExamples }

let private trial (p: Plan) (m: Trial.Method) (steps: int) =
    let t = { Trial.create p.Model p.Task with Method = m; Training = training p steps; Seed = p.Seed }
    TrialJson.id t, t

/// Full fine-tuning, LFA and MPOP (squeezing after the LFA updates).
let firstTrials (p: Plan) =
    let squeeze = { Trial.defaultSqueeze with LossGap = p.LossGap; WarmupSteps = p.Steps; RecoverySteps = p.RecoverySteps; MaxCuts = Some p.MaxCuts }
    [ trial p Trial.Method.Full p.Steps
      trial p (Trial.Method.Lfa Trial.defaultMpoTuning) p.Steps
      trial p (Trial.Method.Mpop(Trial.defaultMpoTuning, squeeze)) (p.Steps + p.MaxCuts * p.RecoverySteps + 1) ]

/// Updates of the trials at MPOP's final size: as many as MPOP had in all.
let private compressedSteps (p: Plan) = p.Steps + p.MaxCuts * p.RecoverySteps

/// MPOP_dir at MPOP's final size, trained for as many updates as MPOP had in all.
let directTrial (p: Plan) (mpopParameters: int64) =
    trial p (Trial.Method.MpopDir(Trial.defaultMpoTuning, mpopParameters)) (compressedSteps p)

let private configOf (modelFolder: string) =
    use checkpoint = CheckpointFolder.Open modelFolder
    ModelRegistry.ReadConfig checkpoint

/// The trial's model on its task counted from its configuration alone with <c>tuners</c> applied
/// (ParameterCounting.FromConfig, on the meta device): the architecture and labels FineTune.run loads it with.
let countFromConfig (modelFolder: string) (task: TextTask) (tuners: IStructuralTuner list) =
    let config = configOf modelFolder
    let architecture = (FineTune.formulation config task).Architecture
    let labels = if task.IsRegression then [| "LABEL_0" |] :> Collections.Generic.IReadOnlyList<_> else task.LabelNames
    ParameterCounting.FromConfig(config.WithLabels labels, architecture, tuners).Parameters

/// LoRA at LFA's trained parameters (on every attention and FFN linear, α = 2r so the update's scale α/r stays the
/// same whatever rank the match picks), trained for as many updates as LFA.
let loraTrial (p: Plan) (count: IStructuralTuner list -> ParameterCount) (modelType: string) (lfaTrained: int64) =
    let targets = LowRankMethods.blockLinears modelType |> Array.ofList
    let make (r: int) = LoraConfig(R = r, LoraAlpha = 2.0 * float r, TargetModules = targets)
    trial p (Trial.Method.Lora(LowRankMethods.loraMatching count make lfaTrained)) p.Steps

/// Truncated SVD of MPOP's matrices at MPOP's final size, trained for as many updates as MPOP had in all.
let svdTrial (p: Plan) (count: IStructuralTuner list -> ParameterCount) (mpopParameters: int64) =
    trial p (Trial.Method.Svd(LowRankMethods.svdMatching count Trial.defaultMpoTuning mpopParameters)) (compressedSteps p)

/// The paper's names for the rows, with the baselines' ranks.
let label (m: Trial.Method) =
    match m with
    | Trial.Method.Full -> "full fine-tuning"
    | Trial.Method.Lfa _ -> "MPOP_full+LFA"
    | Trial.Method.Mpop _ -> "MPOP (squeezed)"
    | Trial.Method.MpopDir _ -> "MPOP_dir"
    | Trial.Method.Lora c -> sprintf "LoRA r=%d" c.R
    | Trial.Method.Svd c when c.Rank.HasValue -> sprintf "truncated SVD r=%d" c.Rank.Value
    | Trial.Method.Svd c -> sprintf "truncated SVD (%d parameters per matrix)" c.Budget.Value
    | other -> other.Name

/// A record's row label: its method read back from the trial (the method's name where it no longer reads).
let private labelOf (r: Record) =
    try label (TrialJson.readMethod "method" r.Trial.["method"])
    with :? TrialJson.SpecException ->
        match r.Trial.["method"] with
        | :? Text.Json.Nodes.JsonObject as m when not (isNull m.["name"]) -> m.["name"].ToString()
        | m when not (isNull m) -> m.ToString()
        | _ -> "?"

let private isFull (r: Record) =
    match r.Trial.["method"] with
    | :? Text.Json.Nodes.JsonObject as m when not (isNull m.["name"]) -> m.["name"].ToString() = "full"
    | _ -> false

let private metric (r: Record) (key: string) =
    match Map.tryFind key r.Metrics with
    | Some v -> v
    | None -> nan

/// The comparison: one row per finished record (any method), trained (#Pr) and total (#To) parameters beside the
/// dev and test accuracy.
let table (records: Record list) =
    let show (x: float) = if Double.IsNaN x then "–" else Tables.ratio x
    Tables.markdown
        [ "method"; "trained (#Pr)"; "total (#To)"; "trained / full"; "dev accuracy"; "test accuracy"; "updates"; "train s" ]
        [ let full = records |> List.tryFind isFull |> Option.map (fun r -> metric r "parameters")
          for r in records ->
              let trained = metric r "trainable_parameters"
              [ labelOf r; Tables.int64s (int64 trained); Tables.int64s (int64 (metric r "parameters"))
                (match full with Some f -> Tables.percent (trained / f) | None -> "–")
                show (metric r "dev.accuracy"); show (metric r "test.accuracy"); sprintf "%.0f" (metric r "steps")
                sprintf "%.0f" (metric r "train_seconds") ] ]

/// MPOP's trajectory: after each cut, the model's size, the dev loss and accuracy (the last cut undone when it broke Δ).
let trajectory (r: Record) =
    match Map.tryFind Keys.squeezeParameters r.Series with
    | None -> None
    | Some sizes ->
        let get key = Map.tryFind (Keys.squeezeMetric key) r.Series |> Option.defaultValue []
        let loss, acc, kept = get "loss", get "dev.accuracy", get "kept"
        Some(
            Tables.markdown [ "cut"; "parameters"; "dev loss"; "dev accuracy"; "kept" ]
                [ for i in 0 .. sizes.Length - 1 ->
                    [ (if i = 0 then "before" else string i); Tables.int64s (int64 sizes.[i])
                      (if i < loss.Length then sprintf "%.4f" loss.[i] else "–"); (if i < acc.Length then Tables.ratio acc.[i] else "–")
                      (if i < kept.Length && kept.[i] = 0.0 then "undone (Δ)" else "yes") ] ])

/// Runs the grid into <c>store</c> (finished trials are kept, killed ones resume) and returns its records in row order:
/// full fine-tuning, LFA, LoRA at LFA's trained parameters, MPOP, then MPOP_dir and truncated SVD at MPOP's final size.
let run (store: Store) (p: Plan) =
    let runAll (trials: (string * Trial.Trial) list) =
        let summary = Runner.inProcess "mpo demo" store trials
        match summary.Errors with
        | (_, e) :: _ -> raise e
        | [] -> store.LoadStrict()
    let first = firstTrials p
    let records = runAll first
    let lfa, mpop = records.[fst first.[1]], records.[fst first.[2]]
    // the matched ranks: counted from the configuration, against what the LFA and MPOP runs counted
    let folder = Execute.modelFolder p.Model
    let count = countFromConfig folder (TextTasks.ByName p.Task)
    let modelType = (configOf folder).ModelType
    let mpopParameters = int64 (metric mpop "parameters")
    let lora = loraTrial p count modelType (int64 (metric lfa "trainable_parameters"))
    let direct = directTrial p mpopParameters
    let svd = svdTrial p count mpopParameters
    let records = runAll [ direct; lora; svd ]
    [ for id, _ in [ first.[0]; first.[1]; lora; first.[2]; direct; svd ] -> records.[id] ]
