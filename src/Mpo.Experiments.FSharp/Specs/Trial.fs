/// Experiments as data: one trial is a model × a method × a task × hyper-parameters × a seed. A method is a value;
/// adding one (LFA, squeezed MPO, MPOP_dir, SVD, LoRA, last layers, Switch/MoE/MPOE) is a case here with its
/// hyper-parameters, its JSON in TrialJson, and the line in FineTune.run that applies it.
module Mpo.Experiments.Specs.Trial

open System
open Mpo.Data
open Mpo.Training
open Mpo.Experiments.Specs.Schedules

/// The hyper-parameters of an MoE method (MPOE §3, spec §5.2–5.3), every one resolved (defaults: the method's
/// preset, Mpo.Tuning.MoeTunerConfig.Preset): the FFN of every block becomes an MoE layer upcycled from it.
type ExpertSettings =
    { Experts: int
      TopK: int
      /// Each expert takes at most ⌈c·k·tokens/n⌉ tokens; None: no dropping.
      CapacityFactor: float option
      /// α of the load-balancing loss and β of the router z-loss, added to the task loss.
      BalanceLoss: float
      ZLoss: float
      /// Router input jitter ε (multiplicative, training only).
      Jitter: float
      /// p_b of the gradient mask on the shared central tensors (MPOE only; 0: none, 1: frozen).
      GradientMask: float
      /// "skip_step", "mask_update" or "mask_gradient" (Mpo.Experts.GradientMaskMode).
      GradientMaskMode: string
      /// Cores of the MPO experts' decomposition (MPOE Table 4's m).
      Cores: int }

/// An MoE method's defaults with n experts: its preset's routing and losses, no gradient mask, 5 cores.
let expertDefaults (kind: Mpo.Tuning.MoeKind) (experts: int) =
    let o = Mpo.Tuning.MoeTunerConfig.Preset(kind, experts)
    { Experts = experts
      TopK = o.TopK
      CapacityFactor = (if Double.IsPositiveInfinity o.CapacityFactor then None else Some o.CapacityFactor)
      BalanceLoss = o.BalanceLossCoefficient
      ZLoss = o.ZLossCoefficient
      Jitter = o.JitterNoise
      GradientMask = 0.0
      GradientMaskMode = "skip_step"
      Cores = 5 }

/// What a trial trains and how.
[<RequireQualifiedAccess>]
type Method =
    /// Full fine-tuning: every parameter trained (the baselines MPOP's and MPOE's methods are compared against).
    | Full
    /// "+Switch" (MPOE Table 1): top-1, dense experts upcycled from the FFN; everything trained.
    | Switch of ExpertSettings
    /// "+MoE": Shazeer-style top-2, dense experts.
    | Moe of ExpertSettings
    /// MPOE: MPO experts sharing one central tensor per FFN matrix, with the gradient mask.
    | Mpoe of ExpertSettings

    /// The method's name in specs, IDs and tables.
    member m.Name =
        match m with
        | Full -> "full"
        | Switch _ -> "switch"
        | Moe _ -> "moe"
        | Mpoe _ -> "mpoe"

/// How a run trains, whatever the method (Hugging Face TrainingArguments' names where it has one).
type Training =
    { Epochs: int
      BatchSize: int
      LearningRate: LearningRate
      WeightDecay: float
      /// Longest input row, special tokens included.
      MaxLength: int
      /// Evaluations on the dev split per epoch (and checkpoints with them).
      EvaluationsPerEpoch: int
      /// Stops after this many updates (smoke runs); None: all epochs.
      MaxSteps: int64 option
      /// Trains on the first N training examples only (smoke runs); None: all.
      TrainExamples: int option }

type Trial =
    { /// A bundled model's name (tiny-bert) or a checkpoint folder in Hugging Face layout.
      Model: string
      /// A bundled or GLUE task's name.
      Task: string
      /// The task's folder (train/dev/test.tsv); None: the bundled data/tasks/<task>.
      Data: string option
      Method: Method
      Training: Training
      /// Seed of the head's initialization, shuffling and dropout.
      Seed: int64 }

/// Full fine-tuning defaults for the tiny models: BERT's recipe (AdamW, linear decay after 10% warmup, weight decay
/// 0.01, batch 16) with the larger learning rate small models want (they were pre-trained at 1e-3).
let defaultTraining =
    { Epochs = 3
      BatchSize = 16
      LearningRate = { Peak = 2e-4; Shape = ScheduleKind.Linear; Warmup = WarmupRatio 0.1 }
      WeightDecay = 0.01
      MaxLength = 128
      EvaluationsPerEpoch = 2
      MaxSteps = None
      TrainExamples = None }

let defaultSeed = 42L

/// A trial with every default: only the model and the task have none.
let create (model: string) (task: string) =
    { Model = model; Task = task; Data = None; Method = Method.Full; Training = defaultTraining; Seed = defaultSeed }

/// What is wrong with an MoE method's settings in a trial (method.* fields).
let expertProblems (t: Trial) =
    match t.Method with
    | Method.Switch e | Method.Moe e | Method.Mpoe e ->
        [ if e.Experts < 1 then "method.experts", sprintf "must be at least 1, got %d" e.Experts
          if e.TopK < 1 || e.TopK > e.Experts then "method.top_k", sprintf "must be between 1 and the %d experts, got %d" e.Experts e.TopK
          match e.CapacityFactor with
          | Some c when not (c > 0.0) -> "method.capacity_factor", sprintf "must be positive (null for no dropping), got %g" c
          | _ -> ()
          // every expert must be reachable in a step: a batch routes at most batch_size × max_length × top_k choices
          let choices = int64 t.Training.BatchSize * int64 t.Training.MaxLength * int64 e.TopK
          if int64 e.Experts > choices then
              "method.experts", sprintf "%d experts, but a batch routes at most %d choices (training.batch_size %d × training.max_length %d × top_k %d): some experts could never be trained"
                                    e.Experts choices t.Training.BatchSize t.Training.MaxLength e.TopK
          if not (e.BalanceLoss >= 0.0 && Double.IsFinite e.BalanceLoss) then "method.balance_loss", sprintf "must be non-negative, got %g" e.BalanceLoss
          if not (e.ZLoss >= 0.0 && Double.IsFinite e.ZLoss) then "method.z_loss", sprintf "must be non-negative, got %g" e.ZLoss
          if not (e.Jitter >= 0.0 && e.Jitter < 1.0) then "method.jitter", sprintf "must be in [0, 1), got %g" e.Jitter
          if not (e.GradientMask >= 0.0 && e.GradientMask <= 1.0) then "method.gradient_mask", sprintf "p_b must be in [0, 1], got %g" e.GradientMask
          if e.GradientMask > 0.0 && t.Method.Name <> "mpoe" then
              "method.gradient_mask", sprintf "masks the shared central tensors of MPO experts; %s has dense experts" t.Method.Name
          if not (List.contains e.GradientMaskMode [ "skip_step"; "mask_update"; "mask_gradient" ]) then
              "method.gradient_mask_mode", sprintf "'%s' is not one of skip_step, mask_update, mask_gradient" e.GradientMaskMode
          if e.Cores < 2 then "method.cores", sprintf "an MPO needs at least 2 cores, got %d" e.Cores ]
    | _ -> []

/// What is wrong with a trial as (field path, message) pairs; empty when it can run. Paths are the spec's
/// ("training.learning_rate.peak"), so errors name the field as the user wrote it.
let problems (t: Trial) =
    let tr = t.Training
    expertProblems t @
    [ if String.IsNullOrWhiteSpace t.Model then "model", "must name a bundled model or a checkpoint folder"
      let task =
          try Some(TextTasks.ByName t.Task)
          with :? ArgumentException -> None
      match task with
      | None ->
          let known = Seq.append GlueTasks.All TextTasks.All |> Seq.map (fun k -> k.Name)
          "task", sprintf "no task is named '%s' (known: %s)" t.Task (String.Join(", ", known))
      | Some k when k.Kind = TaskKind.LanguageModeling ->
          "task", sprintf "'%s' is language modelling; trials fine-tune on classification and regression tasks" k.Name
      | Some k when t.Data.IsNone && not (TextTasks.All |> Seq.contains k) ->
          "data", sprintf "task '%s' is not bundled: give its folder (train.tsv, dev.tsv, test.tsv) in data" k.Name
      | Some _ -> ()
      match t.Data with
      | Some d when String.IsNullOrWhiteSpace d -> "data", "must be a folder (or absent for a bundled task)"
      | _ -> ()
      if tr.MaxSteps.IsNone && tr.Epochs < 1 then "training.epochs", sprintf "must be at least 1, got %d" tr.Epochs
      if tr.BatchSize < 1 then "training.batch_size", sprintf "must be at least 1, got %d" tr.BatchSize
      if not (Double.IsFinite tr.LearningRate.Peak && tr.LearningRate.Peak > 0.0) then
          "training.learning_rate.peak", sprintf "must be positive and finite, got %g" tr.LearningRate.Peak
      match tr.LearningRate.Warmup with
      | WarmupRatio r when not (r >= 0.0 && r <= 1.0) -> "training.learning_rate.warmup_ratio", sprintf "must be in [0, 1], got %g" r
      | WarmupSteps s when s < 0L -> "training.learning_rate.warmup_steps", sprintf "must be non-negative, got %d" s
      | _ -> ()
      if not (Double.IsFinite tr.WeightDecay && tr.WeightDecay >= 0.0) then
          "training.weight_decay", sprintf "must be non-negative, got %g" tr.WeightDecay
      if tr.MaxLength < 4 then "training.max_length", sprintf "must be at least 4 tokens (special tokens included), got %d" tr.MaxLength
      if tr.EvaluationsPerEpoch < 1 then "training.evaluations_per_epoch", sprintf "must be at least 1, got %d" tr.EvaluationsPerEpoch
      match tr.MaxSteps with
      | Some s when s < 1L -> "training.max_steps", sprintf "must be at least 1, got %d" s
      | Some s when (match tr.LearningRate.Warmup with WarmupSteps w -> w > s | _ -> false) ->
          "training.learning_rate.warmup_steps", sprintf "exceeds training.max_steps (%d): the run would never leave warmup" s
      | _ -> ()
      match tr.TrainExamples with
      | Some n when n < 1 -> "training.train_examples", sprintf "must be at least 1, got %d" n
      | _ -> () ]
