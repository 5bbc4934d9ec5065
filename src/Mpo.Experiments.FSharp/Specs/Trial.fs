/// Experiments as data: one trial is a model × a method × a task × hyper-parameters × a seed. A method is a value;
/// adding one (LFA, squeezed MPO, MPOP_dir, SVD, LoRA, last layers, Switch/MoE/MPOE) is a case here with its
/// hyper-parameters, its JSON in TrialJson, and the line in FineTune.run that applies it.
module Mpo.Experiments.Specs.Trial

open System
open Mpo.Data
open Mpo.Training
open Mpo.Experiments.Specs.Schedules

/// MPO as a tuner (MPOP §4): which matrices are decomposed and how (a preset or a tuner configuration file), and the
/// MPO cores' own learning rate (MPOP's `--mpo_lr`; None: `-1`, the main learning rate, still without weight decay).
type MpoTuning =
    { /// A preset (mpop, mpop-albert, mpop-albert-code, mpop-bert) or a tuner configuration file (JSON).
      Tuner: string
      MpoLearningRate: float option }

/// Dimension squeezing's hyper-parameters (MPOP Algorithm 2; the core's SqueezeOptions): LFA for WarmupSteps updates
/// sets the reference loss p, then one central-bond unit is cut at a time with RecoverySteps updates of LFA after each,
/// until the recovered loss p̃ exceeds p by more than Δ (the cut is undone), the target size or the cut limit is reached.
/// p and p̃ are the loss on the dev split, where the trajectory's accuracy per cut is measured too.
type SqueezeSettings =
    { /// Δ.
      LossGap: float
      WarmupSteps: int
      RecoverySteps: int
      /// Stop once the model has at most this many parameters (all of them, peft's count).
      TargetParameters: int64 option
      MaxCuts: int option
      /// Families whose central bonds may be cut (None: every decomposed module).
      Families: string list option }
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
      Cores: int
      /// MPOE's parameter sharing (P2 §3.1): one central tensor per FFN matrix shared by the experts; false: every
      /// expert owns one (MPOE Table 3's "w/o PS"). MPOE only; specs write it only when false.
      ShareCentral: bool
      /// MPO experts' cores (shared central and auxiliary tensors) in MPOP's own optimizer group: this learning rate,
      /// no weight decay (MPOP's `--mpo_lr`). None: the trainer's default groups (the main learning rate; cores without decay,
      /// as MPOE's released code). MPOE only; specs write it only when set. Why it matters: AdamW moves every element
      /// by about the learning rate whatever its scale, so a core whose entries are r in size changes by lr/r per step,
      /// and the product of m cores by about the sum of those. all-MiniLM-L6-v2's first FFN matrix (rms 0.064) becomes
      /// cores of rms 0.016 (central), 0.044 and 0.036 (inner auxiliary), ~1 (outer): at one lr its experts move ~7×
      /// faster than the dense matrix did, and MPOE's training there broke down at full fine-tuning's 5e-4.
      MpoLearningRate: float option }

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
      Cores = 5
      ShareCentral = true
      MpoLearningRate = None }

/// What a trial trains and how.
[<RequireQualifiedAccess>]
type Method =
    /// Full fine-tuning: every parameter trained (the baselines MPOP's and MPOE's methods are compared against).
    | Full
    /// MPOP_full+LFA (MPOP §4.2): the tuner's matrices MPO-decomposed, central tensors frozen, auxiliary tensors and
    /// every non-decomposed parameter trained.
    | Lfa of MpoTuning
    /// MPOP (§4.3): LFA, then dimension squeezing.
    | Mpop of MpoTuning * SqueezeSettings
    /// MPOP_dir (§5.2's ablation): truncated straight to a target size before LFA, by the cuts squeezing would make
    /// cheapest first, with no fine-tuning in between.
    | MpopDir of MpoTuning * targetParameters: int64
    /// LoRA with peft's semantics (base frozen; rank, alpha, dropout, target families; the head trains beside it).
    | Lora of Mpo.Tuning.LoraConfig
    /// Truncated-SVD low-rank layers: each target matrix as two trained factors of a given rank or parameter budget.
    | Svd of Mpo.Tuning.SvdTunerConfig
    /// Only the last k transformer layers (+ top, head, and embeddings as MPOP Table 5 counts them) train.
    | LastLayers of Mpo.Tuning.LastLayersConfig
    /// "+Switch" (MPOE Table 1): top-1, dense experts upcycled from the FFN; everything trained.
    | Switch of ExpertSettings
    /// "+MoE": Shazeer-style top-2, dense experts.
    | Moe of ExpertSettings
    /// MPOE: MPO experts sharing one central tensor per FFN matrix, with the gradient mask (or, ShareCentral false,
    /// each owning one: Table 3's "w/o PS").
    | Mpoe of ExpertSettings

    /// The method's name in specs, IDs and tables.
    member m.Name =
        match m with
        | Full -> "full"
        | Lfa _ -> "lfa"
        | Mpop _ -> "mpop"
        | MpopDir _ -> "mpop-dir"
        | Lora _ -> "lora"
        | Svd _ -> "svd"
        | LastLayers _ -> "last-layers"
        | Switch _ -> "switch"
        | Moe _ -> "moe"
        | Mpoe _ -> "mpoe"

/// The MPO tuning a method starts from when a spec names none: the chooser's factors for any model (preset mpop).
let defaultMpoTuning = { Tuner = "mpop"; MpoLearningRate = None }

/// Squeezing defaults: MPOP's Δ = 0.03 and the RankHander's 10-update window, no target (Δ or every bond at 1 ends it).
let defaultSqueeze =
    { LossGap = 0.03; WarmupSteps = 10; RecoverySteps = 10; TargetParameters = None; MaxCuts = None; Families = None }

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
      TrainExamples: int option
      /// Evaluates on N dev examples drawn with the seed (the best checkpoint, squeezing's p and p̃; slow models); None: all.
      DevExamples: int option
      /// Scores N test examples drawn with the seed (a language-modelling test split's passages: its perplexity and
      /// the prompts of its sampled continuations); None: all.
      TestExamples: int option }

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
      TrainExamples = None
      DevExamples = None
      TestExamples = None }

let defaultSeed = 42L

/// A trial with every default: only the model and the task have none.
let create (model: string) (task: string) =
    { Model = model; Task = task; Data = None; Method = Method.Full; Training = defaultTraining; Seed = defaultSeed }

/// What is wrong with the MPO cores' own learning rate of a method (MPOP's methods and MPOE alike).
let private mpoLearningRateProblems (lr: float option) =
    [ match lr with
      | Some lr when not (Double.IsFinite lr && lr > 0.0) -> "method.mpo_learning_rate", sprintf "must be positive and finite, got %g" lr
      | _ -> () ]

/// What is wrong with a method's hyper-parameters, as (field path, message) pairs.
let methodProblems (m: Method) =
    let tuning (m: MpoTuning) =
        [ if String.IsNullOrWhiteSpace m.Tuner then "method.mpo", "must name a tuner preset or configuration file"
          yield! mpoLearningRateProblems m.MpoLearningRate ]
    match m with
    | Method.Full -> []
    // the baselines' configurations check themselves when read (their C# FromJson names the field)
    | Method.Lora _ | Method.Svd _ | Method.LastLayers _ -> []
    // the MoE methods' settings need the trial's batch shape: expertProblems
    | Method.Switch _ | Method.Moe _ | Method.Mpoe _ -> []
    | Method.Lfa m -> tuning m
    | Method.Mpop (m, s) ->
        tuning m
        @ [ if not (Double.IsFinite s.LossGap && s.LossGap >= 0.0) then "method.squeeze.loss_gap", sprintf "must be finite and non-negative, got %g" s.LossGap
            if s.WarmupSteps < 1 then "method.squeeze.warmup_steps", sprintf "must be at least 1, got %d" s.WarmupSteps
            if s.RecoverySteps < 1 then "method.squeeze.recovery_steps", sprintf "must be at least 1, got %d" s.RecoverySteps
            match s.TargetParameters with
            | Some p when p < 1L -> "method.squeeze.target_parameters", sprintf "must be at least 1, got %d" p
            | _ -> ()
            match s.MaxCuts with
            | Some c when c < 1 -> "method.squeeze.max_cuts", sprintf "must be at least 1, got %d" c
            | _ -> ()
            match s.Families with
            | Some [] -> "method.squeeze.families", "must name at least one family (or be absent: every decomposed module)"
            | _ -> () ]
    | Method.MpopDir (m, target) ->
        tuning m @ [ if target < 1L then "method.target_parameters", sprintf "must be at least 1, got %d" target ]

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
          if e.Cores < 2 then "method.cores", sprintf "an MPO needs at least 2 cores, got %d" e.Cores
          yield! mpoLearningRateProblems e.MpoLearningRate
          if e.MpoLearningRate.IsSome && t.Method.Name <> "mpoe" then
              "method.mpo_learning_rate", sprintf "is the learning rate of MPO experts' cores; %s has dense experts" t.Method.Name
          if not e.ShareCentral && t.Method.Name <> "mpoe" then
              "method.share_central", sprintf "is about the central tensors of MPO experts; %s has dense experts" t.Method.Name
          // the mask corrects the shared tensor's unbalanced updates (P2 §3.2): unshared experts have none to correct
          if not e.ShareCentral && e.GradientMask > 0.0 then
              "method.gradient_mask", "masks the shared central tensor; with share_central false every expert owns its central tensor and there is none to mask" ]
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
      | _ -> ()
      match tr.DevExamples with
      | Some n when n < 1 -> "training.dev_examples", sprintf "must be at least 1, got %d" n
      | _ -> ()
      match tr.TestExamples with
      | Some n when n < 1 -> "training.test_examples", sprintf "must be at least 1, got %d" n
      | _ -> () ]
    @ methodProblems t.Method
