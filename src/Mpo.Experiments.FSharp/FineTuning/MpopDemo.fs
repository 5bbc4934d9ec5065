/// The main job (issue 9 §7): MPOP on a real pre-trained encoder, as a small grid of trials in a result store — full
/// fine-tuning, MPOP_full+LFA (MPO-decomposed, central tensors frozen), MPOP (LFA, then dimension squeezing) and
/// MPOP_dir (truncated straight to MPOP's final size, then LFA) — on one bundled task, shortened to fit minutes on two
/// cores (a subsample of the task, short sequences, few updates), and the comparison table drawn from the records.
/// Baselines at equal trained parameters (LoRA, truncated SVD) are rows of the same table once their methods exist:
/// the table is built from whatever records the store holds.
module Mpo.Experiments.FineTuning.MpopDemo

open System
open System.IO
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

/// MPOP_dir at MPOP's final size, trained for as many updates as MPOP had in all.
let directTrial (p: Plan) (mpopParameters: int64) =
    trial p (Trial.Method.MpopDir(Trial.defaultMpoTuning, mpopParameters)) (p.Steps + p.MaxCuts * p.RecoverySteps)

/// The paper's names for the rows.
let label (methodName: string) =
    match methodName with
    | "full" -> "full fine-tuning"
    | "lfa" -> "MPOP_full+LFA"
    | "mpop" -> "MPOP (squeezed)"
    | "mpop-dir" -> "MPOP_dir"
    | other -> other

let private methodOf (r: Record) =
    match r.Trial.["method"] with
    | :? Text.Json.Nodes.JsonObject as m when not (isNull m.["name"]) -> m.["name"].ToString()
    | _ -> "?"

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
        [ let full = records |> List.tryFind (fun r -> methodOf r = "full") |> Option.map (fun r -> metric r "parameters")
          for r in records ->
              let trained = metric r "trainable_parameters"
              [ label (methodOf r); Tables.int64s (int64 trained); Tables.int64s (int64 (metric r "parameters"))
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

/// Runs the grid into <c>store</c> (finished trials are kept, killed ones resume) and returns its records in row order.
let run (store: Store) (p: Plan) =
    let first = firstTrials p
    let summary = Runner.inProcess "mpo demo" store first
    match summary.Errors with
    | (_, e) :: _ -> raise e
    | [] -> ()
    let records = store.LoadStrict()
    let mpop = records.[first |> List.last |> fst]
    let direct = directTrial p (int64 (metric mpop "parameters"))
    let second = Runner.inProcess "mpo demo" store [ direct ]
    match second.Errors with
    | (_, e) :: _ -> raise e
    | [] -> ()
    let records = store.LoadStrict()
    [ for id, _ in first @ [ direct ] -> records.[id] ]
