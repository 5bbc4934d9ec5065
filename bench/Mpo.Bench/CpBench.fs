/// CP-ALS (MPOP's CPD baseline) on a word embedding tensorized as the MPO's 5-way tensor: time per ALS sweep against
/// its floor, the two GEMMs of X with a half's Khatri–Rao product (|X|·R multiply-adds each) that every sweep of
/// the dimension-tree ALS must do, and the time of a whole 100-sweep run.
/// <para>The embedding is a seeded random float32 matrix of the real encoders' shape: a sweep's cost depends on the
/// shapes and the rank, not on the values.</para>
module Mpo.Bench.CpBench

open System
open TorchSharp
open Mpo.Decomposition
open Mpo.Bench.Report

type Tensor = torch.Tensor

let shape quick = if quick then 8100, 128 else 30522, 384
let ranks quick = if quick then [ 16; 48 ] else [ 50; 100; 200; 400 ]
let sweeps = 6

let private plan quick : Timing.Plan =
    if quick then { Warmup = 1; MinReps = 3; MaxReps = 3; BudgetMs = 0.0; SlowMs = 2000.0; SlowReps = 1 }
    else { Warmup = 1; MinReps = 3; MaxReps = 5; BudgetMs = 10000.0; SlowMs = 4000.0; SlowReps = 2 }

/// The split CpDecomposition uses: modes 0..h-1 | h..N-1 with the most balanced halves.
let split (modes: int64[]) =
    let product (xs: int64 seq) = Seq.fold (fun a b -> a * float b) 1.0 xs
    [ 1 .. modes.Length - 1 ] |> List.minBy (fun h -> max (product modes.[.. h - 1]) (product modes.[h ..]))

type Result =
    { Rows: int
      Cols: int
      Modes: int64[]
      Rank: int
      /// Decompose with 1 sweep (start included) and with `sweeps` sweeps.
      OneSweep: Measure.Profile
      ManySweeps: Measure.Profile
      /// The two GEMMs of one sweep.
      Floor: Measure.Profile
      SweepMs: float
      SweepOverFloor: float
      /// One sweep with the start, plus 99 more: what a 100-sweep run (the study's limit) takes.
      HundredSweepsSeconds: float }

let run (opts: Options) =
    let rows, cols = shape opts.Quick
    let f = FactorizationChooser.Choose(rows, cols, 5)
    use g = new torch.Generator(20210603UL)
    use w = torch.randn([| int64 rows; int64 cols |], generator = g)
    use x = Tensorization.ToTensor(w.``to``(torch.float64), f)
    let modes = Tensorization.Modes f
    let h = split modes
    let left = modes.[.. h - 1] |> Array.fold (*) 1L
    let right = modes.[h ..] |> Array.fold (*) 1L
    use m = x.reshape(left, right)
    let rs = ranks opts.Quick
    withProgress opts "cp" (float rs.Length) (fun progress ->
        [ for rank in rs do
            progress.Describe $"rank {rank}"
            use kr = torch.randn([| right; int64 rank |], dtype = torch.float64, generator = g)
            use kl = torch.randn([| left; int64 rank |], dtype = torch.float64, generator = g)
            let decompose n () =
                use cp = CpDecomposition.Decompose(x, rank, CpOptions(MaxIterations = n, Tolerance = 0.0))
                ()
            let floor () =
                use scope = torch.NewDisposeScope()
                m.mm(kr) |> ignore
                m.t().mm(kl) |> ignore
            let p =
                Measure.profile (plan opts.Quick) ignore
                    [| Measure.Run(decompose 1); Measure.Run(decompose sweeps); Measure.Run floor |]
            let sweep = (p.[1].Time.MedianMs - p.[0].Time.MedianMs) / float (sweeps - 1)
            progress.Advance 1.0
            yield
                { Rows = rows; Cols = cols; Modes = modes; Rank = rank; OneSweep = p.[0]; ManySweeps = p.[1]; Floor = p.[2]
                  SweepMs = sweep; SweepOverFloor = sweep / p.[2].Time.MedianMs
                  HundredSweepsSeconds = (p.[0].Time.MedianMs + 99.0 * sweep) / 1000.0 } ])

let markdown (quick: bool) (results: Result list) =
    let r0 = results.Head
    let t =
        table
            [ "rank R", Right; "params", Right; "start + 1 sweep ms", Right; "per sweep ms", Right; "floor ms", Right
              "sweep / floor", Right; "100 sweeps s", Right ]
            [ for r in results ->
                [ string r.Rank; (CpDecomposition.ParameterCount(r.Modes, r.Rank)).ToString("N0"); ms r.OneSweep.Time.MedianMs
                  ms r.SweepMs; ms r.Floor.Time.MedianMs; ratio r.SweepOverFloor; $"{r.HundredSweepsSeconds:F1}" ] ]
    String.concat "\n"
        [ let modes = String.Join(",", r0.Modes)
          let mode = if quick then " (quick mode)" else ""
          $"### CP-ALS on a {r0.Rows}×{r0.Cols} embedding as the MPO's 5-way tensor [{modes}]{mode}"
          ""
          t
          ""
          $"- per sweep: (time of {sweeps} sweeps − time of 1 sweep) / {sweeps - 1}, medians; the start (HOSVD of every mode) is in the first column."
          "- floor: the two GEMMs every sweep of the dimension-tree ALS does (X as [Π left modes, Π right modes] times a half's Khatri–Rao product, and its transpose), float64."
          "- 100 sweeps: the study's limit (`EmbeddingStudy.fullSettings`); runs that settle (|Δε| < 1e-5) stop earlier." ]
