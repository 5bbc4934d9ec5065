/// The measurement protocol every table shares: per configuration, one call of each candidate alone under a fresh
/// RSS high-water mark (memory), then warm-up and round-robin timing (time).
module Mpo.Bench.Measure

open System
open System.Diagnostics
open TorchSharp

/// Something to measure, or the reason it is not measured (e.g. it would not fit in memory).
type Candidate =
    | Run of (unit -> unit)
    | Skip of reason: string

/// What one candidate cost: time and memory.
type Profile =
    { Time: Timing.Stats
      /// RSS just before the memory pass, MiB.
      BaselineMiB: float
      /// RSS high-water mark during one call, MiB.
      PeakMiB: float
      /// Empty when measured; otherwise why not.
      Skipped: string }

let private skipped reason =
    { Time = Timing.stats [||]; BaselineMiB = nan; PeakMiB = nan; Skipped = reason }

/// This machine is a small VM: after a step that touched a GiB or more of fresh memory, everything runs slower
/// (1-token steps measured 20–300× slower, erratically, for tens of seconds) while the host catches up. Timings taken
/// then would describe the host, not the code, so timing waits until a fixed CPU probe runs at its usual speed.
module Settle =
    let private probeOnce () =
        use scope = torch.NewDisposeScope()
        let a = torch.ones(192L, 192L)
        Timing.time (fun () ->
            for _ in 1..20 do
                torch.mm(a, a) |> ignore)

    let private probe () = Array.init 7 (fun _ -> probeOnce ()) |> Timing.median

    let mutable private usual = nan
    let mutable private waitedMs = 0.0

    /// Total time spent waiting so far, seconds.
    let waitedSeconds () = waitedMs / 1000.0

    /// Records the probe's usual speed; call once at start, on a quiet machine.
    let calibrate () =
        probe () |> ignore
        usual <- probe ()

    /// Waits (at most <paramref name="maxMs"/>) until the probe is within 1.3× of its usual time.
    let wait (maxMs: float) =
        if not (Double.IsNaN usual) then
            let clock = Stopwatch.StartNew()
            while probe () > 1.3 * usual && clock.Elapsed.TotalMilliseconds < maxMs do
                Threading.Thread.Sleep 500
            waitedMs <- waitedMs + clock.Elapsed.TotalMilliseconds

let private settleMs = 60_000.0

/// Measures the candidates of one configuration:
/// <list type="number">
/// <item>memory pass: each candidate once, alone, after returning freed memory to the OS, under a reset high-water
/// mark (so peaks do not inherit one another's leftovers); it is also the first warm-up call;</item>
/// <item>a candidate whose memory-pass call took longer than <c>SlowMs</c> gets no more warm-up and only
/// <c>SlowReps</c> timed calls, after all the others, so its load does not spill into their samples;</item>
/// <item>the others get the rest of their warm-up, then are timed in rounds (one call of each per round, in a fresh
/// order each round), so slow drifts (clock frequency, allocator state, a background process) hit all alike and
/// their ratios stay honest.</item>
/// </list>
/// Timing starts only once the machine has settled (see <see cref="Settle"/>). <paramref name="afterEach"/> runs
/// outside the timed region after every call (progress reporting).
let profile (plan: Timing.Plan) (afterEach: int -> unit) (candidates: Candidate[]) =
    Settle.wait settleMs
    let first =
        candidates
        |> Array.mapi (fun i c ->
            match c with
            | Skip _ -> None
            | Run f ->
                let t, baseline, peak = Memory.peakDuring (fun () -> Timing.time f)
                afterEach i
                Some(t, baseline, peak))
    let slow = first |> Array.map (function Some(t, _, _) -> t > plan.SlowMs | None -> false)
    // The memory-pass call is never a sample: it follows a trim, so it pays page faults a steady state does not.
    let samples = candidates |> Array.map (fun _ -> ResizeArray<float>())
    Settle.wait settleMs
    candidates
    |> Array.iteri (fun i c ->
        match c with
        | Run f when not slow.[i] ->
            for _ in 2 .. plan.Warmup do
                f ()
                afterEach i
        | _ -> ())
    let wants i (round: int) (elapsedMs: float) =
        match candidates.[i] with
        | Run _ when not slow.[i] -> round < plan.MinReps || (round < plan.MaxReps && elapsedMs < plan.BudgetMs)
        | _ -> false
    // A fixed order would make one candidate always follow the same other one and inherit its cache and allocator
    // state (a step right after a 9 MB weight rebuild runs slower), hence the seeded shuffle.
    let order = Random(20210603)
    let clock = Stopwatch.StartNew()
    let mutable round = 0
    while Seq.exists (fun i -> wants i round clock.Elapsed.TotalMilliseconds) (seq { 0 .. candidates.Length - 1 }) do
        let indices = Array.init candidates.Length id
        order.Shuffle indices
        for i in indices do
            match candidates.[i] with
            | Run f when wants i round clock.Elapsed.TotalMilliseconds ->
                samples.[i].Add(Timing.time f)
                afterEach i
            | _ -> ()
        round <- round + 1
    candidates
    |> Array.iteri (fun i c ->
        match c with
        | Run f when slow.[i] ->
            for _ in 1 .. plan.SlowReps do
                samples.[i].Add(Timing.time f)
                afterEach i
        | _ -> ())
    Array.init candidates.Length (fun i ->
        match candidates.[i], first.[i] with
        | Skip reason, _ -> skipped reason
        | Run _, Some(_, baseline, peak) ->
            { Time = Timing.stats (samples.[i].ToArray()); BaselineMiB = baseline; PeakMiB = peak; Skipped = "" }
        | Run _, None -> skipped "not run")
