/// Schedules as data: how a hyper-parameter moves over training. The learning rate (Hugging Face's shapes, computed by
/// the core's LearningRateSchedule) and any scalar such as MPOE's gradient-mask probability p_b (MPOE §3.2), which the
/// paper leaves as a constant to sweep. How bonds are cut is the method's (Trial.Method.MpopDir's target size,
/// Trial.SqueezeSettings for dimension squeezing, MPOP Algorithm 2).
module Mpo.Experiments.Specs.Schedules

open System
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
