/// The measurement protocol every table shares: per configuration, one call of each candidate alone under a fresh
/// RSS high-water mark (memory), then warm-up and round-robin timing (time).
module Mpo.Bench.Measure

open System
open System.Diagnostics
open TorchSharp

/// Something to measure, or the reason it is not measured (e.g. it would not fit in memory).
type Candidate =
    | Run of (unit -> unit)
    /// Known to allocate a lot (hundreds of MiB of fresh memory per call): measured entirely after the others,
    /// because the machine runs the calls that follow such a call erratically slower (see Settle).
    | RunLast of (unit -> unit)
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

/// This machine is a small VM: after a step that touched a GiB or more of fresh memory, later calls may run slower
/// (1-token steps measured 20–300× slower, and weight rebuilds 3×, erratically, for tens of seconds). Timings taken
/// then would describe the host, not the code, so timing waits until a fixed CPU probe runs at its usual speed.
module Settle =
    /// Compute in cache plus 64 MiB of freshly faulted memory: the slowdown hits page faults hardest.
    let private probeOnce () =
        use scope = torch.NewDisposeScope()
        let a = torch.ones(192L, 192L)
        Timing.time (fun () ->
            for _ in 1..20 do
                torch.mm(a, a) |> ignore
            torch.ones(16L * 1024L * 1024L) |> ignore)

    let private probe () = Array.init 5 (fun _ -> probeOnce ()) |> Timing.median

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

/// Measures one group of candidates (all Run): memory pass, warm-up, rounds, then the slow ones.
let private measureGroup (plan: Timing.Plan) (afterEach: int -> unit) (group: (int * (unit -> unit))[]) =
    Settle.wait settleMs
    let first =
        group
        |> Array.map (fun (i, f) ->
            let t, baseline, peak = Memory.peakDuring (fun () -> Timing.time f)
            afterEach i
            t, baseline, peak)
    let slow = first |> Array.map (fun (t, _, _) -> t > plan.SlowMs)
    // The memory-pass call is never a sample: it follows a trim, so it pays page faults a steady state does not.
    let samples = group |> Array.map (fun _ -> ResizeArray<float>())
    Settle.wait settleMs
    group
    |> Array.iteri (fun g (i, f) ->
        if not slow.[g] then
            for _ in 2 .. plan.Warmup do
                f ()
                afterEach i)
    let wants g (round: int) (elapsedMs: float) =
        not slow.[g] && (round < plan.MinReps || (round < plan.MaxReps && elapsedMs < plan.BudgetMs))
    // A fixed order would make one candidate always follow the same other one and inherit its cache and allocator
    // state (a step right after a 9 MB weight rebuild runs slower), hence the seeded shuffle.
    let order = Random(20210603)
    let clock = Stopwatch.StartNew()
    let mutable round = 0
    while Seq.exists (fun g -> wants g round clock.Elapsed.TotalMilliseconds) (seq { 0 .. group.Length - 1 }) do
        let indices = Array.init group.Length id
        order.Shuffle indices
        for g in indices do
            if wants g round clock.Elapsed.TotalMilliseconds then
                let i, f = group.[g]
                samples.[g].Add(Timing.time f)
                afterEach i
        round <- round + 1
    group
    |> Array.iteri (fun g (i, f) ->
        if slow.[g] then
            for _ in 1 .. plan.SlowReps do
                samples.[g].Add(Timing.time f)
                afterEach i)
    Array.init group.Length (fun g ->
        let _, baseline, peak = first.[g]
        fst group.[g], { Time = Timing.stats (samples.[g].ToArray()); BaselineMiB = baseline; PeakMiB = peak; Skipped = "" })

/// Measures the candidates of one configuration, the RunLast ones after all the others:
/// <list type="number">
/// <item>memory pass: each candidate once, alone, after returning freed memory to the OS, under a reset high-water
/// mark (so peaks do not inherit one another's leftovers); it is also the first warm-up call;</item>
/// <item>a candidate whose memory-pass call took longer than <c>SlowMs</c> gets no more warm-up and only
/// <c>SlowReps</c> timed calls, after the others of its group, so its load does not spill into their samples;</item>
/// <item>the others get the rest of their warm-up, then are timed in rounds (one call of each per round, in a fresh
/// order each round), so slow drifts (clock frequency, allocator state, a background process) hit all alike and
/// their ratios stay honest.</item>
/// </list>
/// Timing starts only once the machine has settled (see <see cref="Settle"/>). <paramref name="afterEach"/> runs
/// outside the timed region after every call (progress reporting), with the candidate's index.
let profile (plan: Timing.Plan) (afterEach: int -> unit) (candidates: Candidate[]) =
    let group pick = candidates |> Array.indexed |> Array.choose (fun (i, c) -> pick c |> Option.map (fun f -> i, f))
    let light = group (function Run f -> Some f | _ -> None)
    let heavy = group (function RunLast f -> Some f | _ -> None)
    let measure g = if Array.isEmpty g then [||] else measureGroup plan afterEach g
    let measured = Array.append (measure light) (measure heavy) |> Map.ofArray
    candidates
    |> Array.mapi (fun i c ->
        match c with
        | Skip reason -> skipped reason
        | _ -> measured.[i])
