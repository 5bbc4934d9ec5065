/// Dimension squeezing (MPOP Algorithm 2) as a trainer callback: the cut it picks against singular values computed
/// independently, one unit per cut with the optimizer restarted for the cut layer, a harmful cut undone back to the
/// last good state, an exact resume, MPOP_dir, and bad input.
module Mpo.Core.Tests.SqueezingTests

open System
open System.IO
open System.Threading
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TunerTests

let inTemp action = Mpo.Core.Tests.ModelFixtures.inTemp action

/// The BERT classifier fixture in float64 with every MPOP matrix decomposed, central tensors frozen.
let tunedFixture () = mpop.Apply(loadFixture "BertForSequenceClassification" None)

/// Four fixed batches of the fixture's vocabulary with labels.
let batches (model: PretrainedModel) =
    [| for b in 0 .. 3 ->
        use g = new torch.Generator(uint64 (50 + b))
        ModelInputs(torch.randint(1L, int64 model.Config.VocabSize, [| 4L; 6L |], generator = g),
                    Labels = torch.randint(0L, 3L, [| 4L |], generator = g)) |]

let squeezeOptions = SqueezeOptions(WarmupSteps = 4, RecoverySteps = 3, LossWindow = 3, LossGap = 1e9, MaxCuts = 4,
                                    Families = [| MpoFamilies.Query; MpoFamilies.Key; MpoFamilies.Value; MpoFamilies.FfnIn; MpoFamilies.FfnOut |])

let trainerOptions folder =
    TrainerOptions(OutputFolder = folder, LearningRate = 1e-3, MaxSteps = 60L, WarmupSteps = 0L, LoggingSteps = 1L, SaveSteps = 2L,
                   ParameterGroups = MpoTuner.ParameterGroupRules(Nullable 1e-3))

let trainer (tuned: TunedModel) folder (callback: DimensionSqueezing) =
    let data = batches tuned.Model
    let source = BatchSource.Create(data.Length, fun _ i -> data.[i])
    new Trainer<ModelInputs>(tuned.Model, trainerOptions folder, source, (fun b -> LossOutput(tuned.Model.forward(b).Loss)), callbacks = [ callback ])

let parameters (model: PretrainedModel) = [ for struct (n, p) in model.named_parameters () -> n, p.detach().clone() ]

[<Tests>]
let tests =
    testSequenced <| testList "Tuning.DimensionSqueezing" [
        test "the cheapest cut: the central bond whose smallest kept singular value weighs least, from the unfoldings themselves" {
            use tuned = tunedFixture ()
            let candidates = [ for t in tuned.Targets do if t.Family <> MpoFamilies.WordEmbedding && t.Family <> MpoFamilies.Pooler then yield t ]
            let estimates =
                [ for t in candidates do
                    use w = (tuned.Layer t).Weight()
                    let f = t.Factorization
                    for b in [ f.CentralIndex; f.CentralIndex + 1 ] do
                        let s = singularValues (unfolding w f b)
                        let d = t.Bonds.[b]
                        if d >= 2 then yield t.Path, b, s.[d - 1] * s.[d - 1] / (s |> Array.sumBy (fun x -> x * x)) ]
            let path, bond, estimate = estimates |> List.minBy (fun (_, _, e) -> e)
            match DimensionSqueezing.Cheapest(tuned, candidates) |> Option.ofNullable with
            | None -> failtest "a candidate exists"
            | Some struct (target, b, e) ->
                Expect.equal (target.Path, b) (path, bond) "the same bond"
                expectClose 1e-8 e estimate "the same estimate" }

        test "each cut takes one unit off one central bond, re-gauges that layer and restarts its optimizer state; it stops at MaxCuts" {
            use tuned = tunedFixture ()
            inTemp (fun dir ->
                let callback = DimensionSqueezing(tuned, squeezeOptions, Path.Combine(dir, "squeeze"))
                let bondsBefore = dict [ for t in tuned.Targets -> t.Path, (tuned.Layer t).Bonds ]
                use run = trainer tuned (Path.Combine(dir, "run")) callback
                let result = run.Run()
                Expect.equal callback.Outcome SqueezeOutcome.MaxCuts "stopped at the cut limit"
                Expect.equal result.Reason StopReason.StopRequested "the callback stopped training"
                Expect.equal result.GlobalStep (4L + 4L * 3L) "warm-up, then 3 recovery updates after each of 4 cuts"
                Expect.equal callback.Trajectory.Count 4 "four cuts"
                let cuts = callback.Trajectory |> List.ofSeq
                for c in cuts do
                    Expect.isTrue c.Kept $"cut {c.Cut} kept"
                    Expect.isTrue (Double.IsFinite c.Loss) $"cut {c.Cut}: recovered loss measured"
                let byPath = cuts |> List.countBy (fun c -> c.Path, c.Bond) |> dict
                for t in tuned.Targets do
                    let now = (tuned.Layer t).Bonds
                    for b in 0 .. now.Length - 1 do
                        let expected = bondsBefore.[t.Path].[b] - (match byPath.TryGetValue((t.Path, b)) with | true, n -> n | _ -> 0)
                        Expect.equal now.[b] expected $"{t.Path} bond {b}: one unit per cut, nothing else"
                Expect.isTrue (cuts |> List.pairwise |> List.forall (fun (a, b) -> b.Parameters < a.Parameters)) "the model shrinks with every cut"
                let last = cuts |> List.last
                Expect.equal last.Parameters (ParameterCounting.Count tuned.Model).Total "trajectory records the model's size"
                // the last cut's layer: its cores' AdamW state restarted at the cut (3 recovery updates since)
                let core = last.Path + "." + MpoLayer.AuxiliaryPrefix + "0"
                Expect.equal run.Optimizer.State.[core].Step 3L "optimizer state restarted at the cut") }

        test "a cut whose recovered loss exceeds the reference by more than Δ is undone: the model ends in the last good state" {
            use tuned = tunedFixture ()
            inTemp (fun dir ->
                let mutable calls = 0
                let mutable good = []
                // p = 1, then every p̃ = 2: the first cut breaks Δ = 0.5
                let evaluate () =
                    calls <- calls + 1
                    // (evaluations run in a dispose scope: keep the copies out of it)
                    if calls = 1 then good <- [ for n, p in parameters tuned.Model -> n, p.DetachFromDisposeScope() ]
                    if calls = 1 then 1.0 else 2.0
                let callback = DimensionSqueezing(tuned, SqueezeOptions(WarmupSteps = 4, RecoverySteps = 3, LossWindow = 3, LossGap = 0.5), Path.Combine(dir, "squeeze"), Func<float> evaluate)
                use run = trainer tuned (Path.Combine(dir, "run")) callback
                run.Run() |> ignore
                Expect.equal callback.Outcome SqueezeOutcome.LossGap "stopped on the gap"
                Expect.isFalse callback.Trajectory.[0].Kept "the cut was undone"
                expectClose 1e-12 callback.ReferenceLoss 1.0 "p"
                for (n, before), struct (_, now) in List.zip good (List.ofSeq (tuned.Model.named_parameters ())) do
                    Expect.isTrue (before.shape = now.shape && before.eq(now).all().item<bool>()) $"{n}: back to the state before the cut") }

        test "a killed squeezing run resumes to exactly the uninterrupted run's bonds, weights and trajectory" {
            inTemp (fun dir ->
                use a = tunedFixture ()
                let ca = DimensionSqueezing(a, squeezeOptions, Path.Combine(dir, "a-squeeze"))
                use ta = trainer a (Path.Combine(dir, "a")) ca
                ta.Run() |> ignore
                // b: cancelled in the middle of the second cut's recovery, then resumed by a fresh process's objects
                use cts = new CancellationTokenSource()
                let b1 = tunedFixture ()
                let cb1 = DimensionSqueezing(b1, squeezeOptions, Path.Combine(dir, "b-squeeze"))
                let data = batches b1.Model
                let progress = { new IProgress<TrainingProgress> with member _.Report p = if p.Step >= 9L then cts.Cancel() }
                use tb1 = new Trainer<ModelInputs>(b1.Model, trainerOptions (Path.Combine(dir, "b")), BatchSource.Create(data.Length, fun _ i -> data.[i]),
                                                   (fun x -> LossOutput(b1.Model.forward(x).Loss)), callbacks = [ cb1 ], progress = progress)
                let first = tb1.Run(cts.Token)
                Expect.equal first.Reason StopReason.Cancelled "killed"
                b1.Dispose()
                use b = tunedFixture ()
                let cb = DimensionSqueezing(b, squeezeOptions, Path.Combine(dir, "b-squeeze"))
                use tb = trainer b (Path.Combine(dir, "b")) cb
                let resumed = tb.Resume()
                Expect.isTrue resumed.ResumedFromStep.HasValue "resumed"
                Expect.sequenceEqual [ for c in cb.Trajectory -> c.Path, c.Bond, c.Dimension, c.Loss ] [ for c in ca.Trajectory -> c.Path, c.Bond, c.Dimension, c.Loss ] "same cuts, same losses"
                for (n, x), (_, y) in List.zip (parameters a.Model) (parameters b.Model) do
                    Expect.isTrue (x.shape = y.shape && x.eq(y).all().item<bool>()) $"{n}: bitwise equal") }

        test "MPOP_dir: straight to the squeezed bonds in one cut; bonds above the current ones are refused" {
            use squeezed = tunedFixture ()
            let cutPath =
                inTemp (fun dir ->
                    let callback = DimensionSqueezing(squeezed, squeezeOptions, Path.Combine(dir, "squeeze"))
                    use run = trainer squeezed (Path.Combine(dir, "run")) callback
                    run.Run() |> ignore
                    callback.Trajectory.[0].Path)
            let final = readOnlyDict [ for t in squeezed.Targets -> t.Path, (squeezed.Layer t).Bonds ]
            use direct = tunedFixture ()
            DimensionSqueezing.Direct(direct, final)
            for t in direct.Targets do
                Expect.sequenceEqual (direct.Layer t).Bonds final.[t.Path] $"{t.Path}: the squeezed bonds"
            Expect.equal (ParameterCounting.Count direct.Model).Total (ParameterCounting.Count squeezed.Model).Total "the same size"
            let cut = direct.Targets |> Seq.find (fun t -> t.Path = cutPath)
            throwsWith<ArgumentException> [ cut.Path; "exceed" ] (fun () ->
                DimensionSqueezing.Direct(direct, readOnlyDict [ cut.Path, cut.Factorization.FullBonds() ])) |> ignore }

        test "bad input: a target below what squeezing can reach, a NaN loss (the last good state stays on disk)" {
            use tuned = tunedFixture ()
            throwsWith<ArgumentException> [ "TargetParameters"; "below what squeezing can reach" ] (fun () ->
                DimensionSqueezing(tuned, SqueezeOptions(TargetParameters = 10L), "unused") |> ignore) |> ignore
            throwsWith<ArgumentException> [ "LossWindow" ] (fun () ->
                DimensionSqueezing(tuned, SqueezeOptions(WarmupSteps = 2, LossWindow = 3), "unused") |> ignore) |> ignore
            inTemp (fun dir ->
                let callback = DimensionSqueezing(tuned, squeezeOptions, Path.Combine(dir, "squeeze"))
                let data = batches tuned.Model
                let mutable step = 0
                let loss (b: ModelInputs) =
                    step <- step + 1
                    let l = tuned.Model.forward(b).Loss
                    LossOutput(if step = 6 then l * nan else l)
                use run = new Trainer<ModelInputs>(tuned.Model, trainerOptions (Path.Combine(dir, "run")), BatchSource.Create(data.Length, fun _ i -> data.[i]), loss, callbacks = [ callback ])
                let e = throwsWith<TrainingDivergedException> [ "step 6" ] (fun () -> run.Run() |> ignore)
                Expect.isNotNull e.LastCheckpoint "names the last checkpoint to resume from"
                Expect.isTrue (File.Exists(Path.Combine(dir, "squeeze", DimensionSqueezing.GoodStateFile))) "the last good state is kept") }
    ]
