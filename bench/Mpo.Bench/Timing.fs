/// Wall-clock timing primitives. Medians, because a 2-core machine shared with the OS has long-tailed outliers that
/// would drag a mean.
module Mpo.Bench.Timing

open System
open System.Diagnostics

/// How long to measure one thing.
type Plan =
    { /// Untimed calls before the first timed one (the memory pass counts as the first).
      Warmup: int
      /// Always at least this many timed repetitions…
      MinReps: int
      /// …then more while the budget (all candidates of a configuration together) lasts, up to this many.
      MaxReps: int
      BudgetMs: float
      /// A call slower than this is not warmed up again nor repeated past SlowReps samples: a multi-second call
      /// has no warm-up effect worth removing, and repeating it would blow the run's time limit.
      SlowMs: float
      SlowReps: int }

type Stats =
    { MedianMs: float
      MinMs: float
      MaxMs: float
      Reps: int
      SamplesMs: float[] }

let median (xs: float[]) =
    if xs.Length = 0 then nan
    else
        let s = Array.sort xs
        let m = s.Length / 2
        if s.Length % 2 = 1 then s.[m] else (s.[m - 1] + s.[m]) / 2.0

let stats (samples: float[]) =
    { MedianMs = median samples
      MinMs = (if samples.Length = 0 then nan else Array.min samples)
      MaxMs = (if samples.Length = 0 then nan else Array.max samples)
      Reps = samples.Length
      SamplesMs = samples }

/// Milliseconds one call of <paramref name="f"/> takes.
let time (f: unit -> unit) =
    let sw = Stopwatch.StartNew()
    f ()
    sw.Elapsed.TotalMilliseconds
