/// Schedules as data: how a hyper-parameter moves over training. The learning rate (Hugging Face's shapes, computed by
/// the core's LearningRateSchedule), the truncation of bonds (MPOP §4.2: one cut before fine-tuning, as MPOP_dir, or
/// dimension squeezing, one bond unit at a time with fine-tuning in between, MPOP Algorithm 2) and any scalar such as
/// MPOE's gradient-mask probability p_b (MPOE §3.2), which the paper leaves as a constant to sweep.
module Mpo.Experiments.Specs.Schedules

open System
open Mpo.Decomposition
open Mpo.Training

/// A scalar over the updates of a run, for hyper-parameters that may move (the gradient-mask probability p_b).
type Schedule =
    /// The same value at every update.
    | Constant of float
    /// From <c>start</c> at the first update to <c>stop</c> at the last, linearly.
    | Linear of start: float * stop: float
    /// Piecewise constant: each (update, value) holds from that update on; the first must start at update 0.
    | Steps of (int64 * float) list

/// The value of <c>schedule</c> at update <c>step</c> (0-based) of a run of <c>total</c> updates.
let valueAt (schedule: Schedule) (step: int64) (total: int64) =
    match schedule with
    | Constant v -> v
    | Linear (a, b) -> if total <= 1L then a else a + (b - a) * float (min step (total - 1L)) / float (total - 1L)
    | Steps points -> points |> List.filter (fun (s, _) -> s <= step) |> List.last |> snd

/// Problems with a schedule whose values must lie in [lo, hi], as messages (empty: none).
let problems (lo: float) (hi: float) (schedule: Schedule) =
    let outside v = Double.IsNaN v || v < lo || v > hi
    match schedule with
    | Constant v when outside v -> [ sprintf "must be in [%g, %g], got %g" lo hi v ]
    | Linear (a, b) when outside a || outside b -> [ sprintf "must stay in [%g, %g], got %g to %g" lo hi a b ]
    | Steps [] -> [ "needs at least one (update, value) pair" ]
    | Steps ((first, _) :: _) when first <> 0L -> [ sprintf "must start at update 0, starts at %d" first ]
    | Steps points when points |> List.pairwise |> List.exists (fun ((a, _), (b, _)) -> b <= a) -> [ "updates must increase" ]
    | Steps points when points |> List.exists (snd >> outside) -> [ sprintf "values must be in [%g, %g]" lo hi ]
    | _ -> []

/// When warmup ends: a fraction of the run's updates (HF's warmup_ratio) or a number of updates (warmup_steps).
type Warmup =
    | WarmupRatio of float
    | WarmupSteps of int64

/// The learning rate over training: linear warmup to <c>Peak</c>, then the shape (HF's lr_scheduler_type).
type LearningRate =
    { Peak: float
      Shape: ScheduleKind
      Warmup: Warmup }

/// The learning rate of update <c>step</c> of <c>total</c>: the core's HF-exact multiplier times the peak.
let learningRateAt (lr: LearningRate) (step: int64) (total: int64) =
    let warmup =
        match lr.Warmup with
        | WarmupRatio r -> LearningRateSchedule.WarmupSteps(0L, r, total)
        | WarmupSteps s -> s
    lr.Peak * LearningRateSchedule.Factor(lr.Shape, step, warmup, total)

/// How bonds are cut. MPOP_dir truncates once, before fine-tuning; MPOP squeezes: after fine-tuning to convergence,
/// it lowers one bond of one central tensor by one unit at a time and fine-tunes the auxiliary tensors in between,
/// stopping when the loss rises by more than Δ or the target is reached (MPOP Algorithm 2).
type Truncation =
    /// One cut to the target before fine-tuning.
    | Once of TruncationSpec
    /// Dimension squeezing towards the target.
    | Squeeze of Squeezing

and Squeezing =
    { /// Where squeezing ends at the latest (a bond cap, an error tolerance or a parameter budget).
      Target: TruncationSpec
      /// Bond units removed per squeeze (MPOP: 1).
      Units: int
      /// Updates of fine-tuning between two squeezes.
      Every: int64
      /// Δ: squeezing stops when the training loss exceeds the loss before squeezing by more than this.
      MaxLossIncrease: float option }

/// Problems with a truncation (its messages name the sub-field).
let truncationProblems (t: Truncation) =
    let target (spec: TruncationSpec) =
        match spec with
        | :? TruncationSpec.MaxBond as m when m.Bond < 1 -> [ "max_bond", sprintf "must be at least 1, got %d" m.Bond ]
        | :? TruncationSpec.Tolerance as e when not (e.Relative > 0.0 && e.Relative < 1.0) -> [ "tolerance", sprintf "must be in (0, 1), got %g" e.Relative ]
        | :? TruncationSpec.Budget as b when b.Parameters < 1L -> [ "budget", sprintf "must be at least 1, got %d" b.Parameters ]
        | :? TruncationSpec.PerBond as p when p.Bonds |> Seq.exists (fun d -> d < 1) -> [ "per_bond", "every bond must be at least 1" ]
        | _ -> []
    match t with
    | Once spec -> target spec |> List.map (fun (f, m) -> "once." + f, m)
    | Squeeze s ->
        (target s.Target |> List.map (fun (f, m) -> "squeeze.target." + f, m))
        @ (if s.Units < 1 then [ "squeeze.units", sprintf "must be at least 1, got %d" s.Units ] else [])
        @ (if s.Every < 1L then [ "squeeze.every", sprintf "must be at least 1 update, got %d" s.Every ] else [])
        @ (match s.MaxLossIncrease with
           | Some d when not (d > 0.0) -> [ "squeeze.max_loss_increase", sprintf "must be positive, got %g" d ]
           | _ -> [])
