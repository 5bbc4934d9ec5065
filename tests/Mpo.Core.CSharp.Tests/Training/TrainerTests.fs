module Mpo.Core.Tests.TrainerTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open System.Threading
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TrainingProblems

exception SimulatedKill of int64

/// A callback made of functions, for probing the trainer from a test.
type Probe(?afterBackward: TrainingStepContext -> unit, ?stepEnd: TrainingStepContext -> unit) =
    inherit TrainerCallback()
    override _.OnAfterBackward c = afterBackward |> Option.iter (fun f -> f c)
    override _.OnStepEnd c = stepEnd |> Option.iter (fun f -> f c)

/// MPOP-style squeezing as a callback: at update 6 it truncates the MPO layer's bonds to 2 in place and tells the
/// trainer; its state (whether it has truncated) goes into checkpoints, and restoring it re-truncates a fresh model.
type Squeeze(layer: MpoLinear) =
    inherit TrainerCallback()
    member val Dropped: string list = [] with get, set
    member val Done = false with get, set
    override this.OnStepEnd c =
        if c.Step = 6L then
            layer.Truncate(TruncationSpec.MaxBond 2) |> ignore
            this.Dropped <- List.ofSeq (c.RefreshParameters())
            this.Done <- true
    override this.SaveState() = JsonValue.Create(this.Done)
    override this.LoadState state =
        if state.GetValue<bool>() then
            layer.Truncate(TruncationSpec.MaxBond 2) |> ignore
            this.Done <- true

/// MpoLinear(8→8, factors 2·2·2 × 2·2·2, central frozen: MPOP lightweight fine-tuning) → tanh → Linear(8→1).
let squeezableModel (seed: int) =
    torch.random.manual_seed(int64 seed) |> ignore
    let mpo = MpoLinear.FromWeight(torch.randn(8L, 8L), torch.zeros(8L), MpoFactorization([| 2; 2; 2 |], [| 2; 2; 2 |]))
    mpo.FreezeCentral()
    let model =
        torch.nn.Sequential(
            struct ("mpo", mpo :> Layer), struct ("act", torch.nn.Tanh() :> Layer), struct ("out", torch.nn.Linear(8L, 1L) :> Layer))
    model, mpo

let squeezeData =
    lazy (
        use g = new torch.Generator(5UL)
        let x = torch.randn([| 64L; 8L |], generator = g)
        let y = torch.sin(x.matmul(torch.randn([| 8L; 1L |], generator = g)))
        { X = x; Y = y; ValX = x; ValY = y })

/// The regression run the resume tests replay: 16 batches of 4 per epoch, 2 accumulated per update (8 updates per
/// epoch, 24 in all), dropout 0.2, warmup then linear decay, weight decay, clipping that bites, evaluation every 4
/// updates tracking the best validation MSE, a checkpoint every 5 updates, two kept.
let regressionOptions (folder: string) =
    TrainerOptions(
        OutputFolder = folder, Epochs = 3, GradientAccumulationSteps = 2, LearningRate = 2e-2, WeightDecay = 0.01,
        MaxGradNorm = 0.5, WarmupSteps = 3L, LoggingSteps = 1L, EvalSteps = 4L, BestMetric = "mse",
        SaveSteps = 5L, SaveTotalLimit = 2, Seed = Nullable 42L)

let regressionTrainer (options: TrainerOptions) (initSeed: int) (callbacks: TrainerCallback list) (progress: IProgress<TrainingProgress>) =
    let data = regressionData.Force()
    let model = regressionModel initSeed 0.2
    model, new Trainer<Batch>(model, options, batches data 4, mseLoss model, mseMetric model data, callbacks, progress)

/// (step, loss) of every training line and (step, eval_mse) of every evaluation line of a metrics file.
let metricLines (folder: string) =
    let records = MetricsLog.Read(Path.Combine(folder, MetricsLog.FileName))
    [ for r in records do if r.ContainsKey "loss" then yield r.["step"].GetValue<int64>(), r.["loss"].GetValue<float>() ],
    [ for r in records do if r.ContainsKey "eval_mse" then yield r.["step"].GetValue<int64>(), r.["eval_mse"].GetValue<float>() ]

/// The uninterrupted run every resumed run must reproduce: its losses, final parameters and metrics file.
let reference =
    lazy (
        let folder = Directory.CreateTempSubdirectory("mpo-train-ref-").FullName
        try
            let model, trainer = regressionTrainer (regressionOptions folder) 1 [] null
            use trainer = trainer
            let result = trainer.Run()
            result, snapshot model, metricLines folder
        finally
            Directory.Delete(folder, true))

/// The last checkpoint the reference run had written by update `step`: every 5 updates, and at each evaluation that
/// improved the best validation MSE.
let lastCheckpointBy (step: int64) =
    let _, _, (_, evals) = reference.Force()
    let improvements =
        evals |> List.fold (fun (best, acc) (s, v) -> if v < best then v, s :: acc else best, acc) (infinity, []) |> snd
    [ for s in 1L .. step do if s % 5L = 0L || List.contains s improvements then yield s ] |> List.max

let checkpointDirs (folder: string) =
    Directory.GetDirectories(folder) |> Array.map Path.GetFileName |> Array.sort |> List.ofArray

[<Tests>]
let tests =
    testSequenced <| testList "Training.Trainer" [
        test "the reference run is sane: loss falls, the schedule reaches the log, checkpoints are pruned to the last two and the best" {
            let result, _, (losses, evals) = reference.Force()
            Expect.equal (result.Reason, result.GlobalStep, result.TotalSteps) (StopReason.Completed, 24L, 24L) "24 updates"
            Expect.equal result.Losses.Count 24 "a loss per update"
            Expect.isLessThan (snd (List.last evals)) (0.7 * snd (List.head evals)) $"training reduces the validation loss: {evals}"
            Expect.sequenceEqual (List.map fst losses) [ 1L .. 24L ] "one training line per update"
            Expect.sequenceEqual (List.map snd losses) result.Losses "logged losses are the step losses"
            Expect.sequenceEqual (List.map fst evals) [ 4L; 8L; 12L; 16L; 20L; 24L ] "an evaluation every 4 updates"
            Expect.equal result.BestStep (Nullable(evals |> List.minBy snd |> fst)) $"best step is the lowest validation MSE: {evals}"
        }

        test "resuming after cancellation at several points reproduces the uninterrupted run bit for bit (dropout on)" {
            let expected, finalParameters, (expectedLines, expectedEvals) = reference.Force()
            for k in [ 1L; 7L; 12L; 20L ] do
                inTemp (fun folder ->
                    use cancel = new CancellationTokenSource()
                    let stopAt = onProgress (fun p -> if p.Event = TrainingEvent.Step && p.Step = k then cancel.Cancel())
                    let _, first = regressionTrainer (regressionOptions folder) 1 [] stopAt
                    let stopped = using first (fun t -> t.Run(cancel.Token))
                    Expect.equal (stopped.Reason, stopped.GlobalStep) (StopReason.Cancelled, k) $"stopped at {k}"
                    Expect.equal (Path.GetFileName stopped.LastCheckpoint) $"checkpoint-{k}" "a checkpoint at the stop"
                    // Another initialization (which also moves torch's generator): only the checkpoint can make it right.
                    let model, second = regressionTrainer (regressionOptions folder) 77 [] null
                    let resumed = using second (fun t -> t.Resume())
                    Expect.equal (resumed.ResumedFromStep, resumed.FirstStep, resumed.Reason) (Nullable k, k + 1L, StopReason.Completed) "resumed"
                    Expect.sequenceEqual (Seq.append stopped.Losses resumed.Losses) expected.Losses $"losses bitwise equal (stop at {k})"
                    Expect.isTrue (bitwiseEqual (snapshot model) finalParameters) $"final parameters bitwise equal (stop at {k})"
                    let lines, evals = metricLines folder
                    Expect.sequenceEqual lines expectedLines $"metrics.jsonl reads as the uninterrupted run (stop at {k})"
                    Expect.sequenceEqual evals expectedEvals "evaluations too"
                    Expect.equal resumed.BestStep expected.BestStep "best step carried over")
        }

        test "after a kill between checkpoints, the job resumes from the last checkpoint and still ends bit for bit equal" {
            let _, finalParameters, (expectedLines, _) = reference.Force()
            inTemp (fun folder ->
                let kill = onProgress (fun p -> if p.Event = TrainingEvent.Step && p.Step = 13L then raise (SimulatedKill p.Step))
                let _, first = regressionTrainer (regressionOptions folder) 1 [] kill
                Expect.throwsT<SimulatedKill> (fun () -> using first (fun t -> t.RunOrResume() |> ignore)) "killed at 13"
                let manifest = CheckpointStore(folder).ReadManifest()
                let last = lastCheckpointBy 13L
                Expect.equal manifest.Latest $"checkpoint-{last}" "last checkpoint before the kill"
                Expect.isLessThan last 13L "the kill came between checkpoints"
                Expect.equal (fst (metricLines folder) |> List.last |> fst) 13L "the log ran ahead of the checkpoint"
                // A checkpoint the dying process was still writing.
                let partial = Directory.CreateDirectory(Path.Combine(folder, ".checkpoint-15.tmp-dead"))
                File.WriteAllText(Path.Combine(partial.FullName, "optimizer.safetensors"), "half")
                let model, second = regressionTrainer (regressionOptions folder) 77 [] null
                let resumed = using second (fun t -> t.RunOrResume())
                Expect.equal resumed.ResumedFromStep (Nullable last) "resumed from the last checkpoint"
                Expect.isTrue (bitwiseEqual (snapshot model) finalParameters) "final parameters bitwise equal"
                Expect.sequenceEqual (fst (metricLines folder)) expectedLines "steps 11-13 were cut and re-logged once"
                Expect.isFalse (Directory.Exists partial.FullName) "the half-written checkpoint was removed"
                let expected, _, _ = reference.Force()
                Expect.equal (set (checkpointDirs folder)) (set [ "checkpoint-20"; "checkpoint-24"; $"checkpoint-{expected.BestStep.Value}" ])
                    "the last two checkpoints and the best")
        }

        test "squeezing seam: bonds truncated in place mid-run reset only those parameters' optimizer state, and resume re-applies it" {
            let options folder = TrainerOptions(OutputFolder = folder, Epochs = 2, LearningRate = 1e-2, SaveSteps = 4L, Seed = Nullable 3L)
            let train folder seed (cancelAt: int64 option) resume =
                let model, mpo = squeezableModel seed
                let squeeze = Squeeze(mpo)
                use cancel = new CancellationTokenSource()
                let progress = onProgress (fun p -> if Some p.Step = cancelAt && p.Event = TrainingEvent.Step then cancel.Cancel())
                use trainer = new Trainer<Batch>(model, options folder, batches (squeezeData.Force()) 8, mseLoss model, callbacks = [ squeeze ], progress = progress)
                let result = if resume then trainer.Resume(null, cancel.Token) else trainer.Run(cancel.Token)
                let steps = dict [ for KeyValue(n, st) in trainer.Optimizer.State -> n, st.Step ]
                result, snapshot model, mpo, squeeze, steps
            inTemp (fun folder ->
                let result, final, mpo, squeeze, steps = train folder 1 None false
                Expect.equal result.GlobalStep 16L "16 updates"
                Expect.sequenceEqual mpo.Bonds [ 1; 2; 2; 1 ] "bonds capped at 2"
                let changed = [ for k in 0 .. 2 do if k <> mpo.CentralIndex then yield "mpo." + mpo.CoreName k ]
                Expect.equal (set squeeze.Dropped) (set changed) "exactly the truncated auxiliary tensors lost their state"
                Expect.isFalse (steps.ContainsKey "mpo.central") "the frozen central tensor never had state"
                Expect.equal steps.["mpo.bias"] 16L "the bias kept its moments through the squeeze"
                for name in changed do Expect.equal steps.[name] 10L $"{name} restarted at the squeeze"
                inTemp (fun other ->
                    let stopped, _, _, _, _ = train other 1 (Some 9L) false
                    Expect.equal stopped.GlobalStep 9L "cancelled after the squeeze"
                    // A fresh model has full bonds; the callback's restored state truncates it before the weights load.
                    let resumed, resumedFinal, resumedMpo, _, _ = train other 2 None true
                    Expect.equal resumed.ResumedFromStep (Nullable 9L) "resumed"
                    Expect.sequenceEqual resumedMpo.Bonds [ 1; 2; 2; 1 ] "squeezed again on resume"
                    Expect.isTrue (bitwiseEqual resumedFinal final) "final parameters bitwise equal to the uninterrupted run"))
        }

        test "a NaN loss stops training naming the step, leaves the parameters and the last checkpoint intact" {
            inTemp (fun folder ->
                let data = regressionData.Force()
                let model = regressionModel 1 0.2
                let clean = batches data 4
                // Epoch 1, batch 3 is in update 10 (8 updates per epoch, 2 batches each).
                let poisoned =
                    BatchSource.Create(clean.BatchesPerEpoch, Func<int, int, Batch>(fun e i ->
                        let x, y = clean.Batch(e, i)
                        if (e, i) = (1, 3) then x, y * torch.tensor(nan) else x, y))
                let mutable afterStep9 = []
                let probe = Probe(stepEnd = fun c -> if c.Step = 9L then afterStep9 <- snapshot c.Model)
                use trainer = new Trainer<Batch>(model, regressionOptions folder, poisoned, mseLoss model, mseMetric model data, [ probe ])
                // Until update 10 this is the reference run, so its last checkpoint is the reference's.
                let last = $"checkpoint-{lastCheckpointBy 9L}"
                let e = throwsWith<TrainingDivergedException> [ "loss is NaN"; "step 10"; "epoch 1, batch 3"; last ] (fun () -> trainer.Run() |> ignore)
                Expect.equal (e.Step, e.Epoch, e.Batch) (10L, 1, Nullable 3) "step, epoch and batch"
                Expect.isTrue (bitwiseEqual (snapshot model) afterStep9) "parameters as after update 9"
                Expect.equal (CheckpointStore(folder).ReadManifest().Latest) last "manifest still points at the good checkpoint"
                // The good checkpoint is usable: a clean resume from it runs to the end.
                let _, again = regressionTrainer (regressionOptions folder) 3 [] null
                let resumed = using again (fun t -> t.Resume())
                Expect.equal (resumed.ResumedFromStep, resumed.Reason) (Nullable (lastCheckpointBy 9L), StopReason.Completed) "resumed from it")
        }

        test "a finite loss with a NaN gradient stops training naming the gradient norm and the step" {
            let data = regressionData.Force()
            let model = regressionModel 1 0.0
            let before = snapshot model
            // √|u| at u = 0 has an infinite derivative, and |u|' = 0 there: the loss is finite, its gradient NaN.
            let badGradient =
                Func<Batch, LossOutput>(fun (x, y) ->
                    let out = model.forward(x)
                    LossOutput(torch.nn.functional.mse_loss(out, y) + (out - out.detach()).abs().sum().sqrt()))
            use trainer = new Trainer<Batch>(model, TrainerOptions(Epochs = 1), batches data 4, badGradient)
            let e = throwsWith<TrainingDivergedException> [ "gradient norm is NaN"; "step 1 (epoch 0)"; "No checkpoint" ] (fun () -> trainer.Run() |> ignore)
            Expect.equal (e.Quantity, e.Batch) ("gradient norm", Nullable()) "the gradient norm, for the whole update"
            Expect.isTrue (bitwiseEqual (snapshot model) before) "no update made"
        }

        test "accumulating 2 batches of 4 gives the updates of batches of 8 (mean loss, dropout off, float64)" {
            let data32 = regressionData.Force()
            let data = { X = data32.X.``to``(torch.float64); Y = data32.Y.``to``(torch.float64); ValX = data32.ValX; ValY = data32.ValY }
            let train batchSize accumulation =
                let model = (regressionModel 5 0.0).``to``(torch.float64)
                let options =
                    TrainerOptions(Epochs = 2, GradientAccumulationSteps = accumulation, LearningRate = 1e-2, WeightDecay = 0.01,
                                   MaxGradNorm = 0.3, WarmupSteps = 2L)
                use trainer = new Trainer<Batch>(model, options, batches data batchSize, mseLoss model)
                let result = trainer.Run()
                result.Losses, snapshot model
            let lossesBig, big = train 8 1
            let lossesAccumulated, accumulated = train 4 2
            Expect.equal lossesAccumulated.Count 16 "same number of updates"
            for a, b in Seq.zip lossesAccumulated lossesBig do expectClose 1e-12 a b "step loss"
            for (name, a), (_, b) in List.zip accumulated big do
                Expect.isLessThan (relativeError a b) 1e-12 $"{name} after 16 updates"
        }

        test "clipping: AdamW sees gradients within max_grad_norm, and grad_norm is the norm before clipping" {
            let mutable preClip = 0.0
            let mutable clipped = 0
            let norm (c: TrainingStepContext) =
                c.TrainableParameters |> Seq.sumBy (fun struct (_, p) -> p.grad.``to``(torch.float64).square().sum().ToDouble()) |> sqrt
            let probe =
                Probe((fun c -> preClip <- norm c),
                      (fun c ->
                          expectClose 1e-6 c.GradNorm.Value preClip "reported norm = norm before clipping"
                          Expect.isLessThanOrEqual (norm c) (0.05 * (1.0 + 1e-6)) "clipped gradients within the bound"
                          if preClip > 0.05 then clipped <- clipped + 1))
            let data = regressionData.Force()
            let model = regressionModel 2 0.2
            let options = TrainerOptions(Epochs = 1, MaxGradNorm = 0.05, LearningRate = 1e-2)
            use trainer = new Trainer<Batch>(model, options, batches data 4, mseLoss model, callbacks = [ probe ])
            trainer.Run() |> ignore
            Expect.isGreaterThan clipped 8 "clipping happened on most updates"
        }

        test "frozen parameters stay bitwise unchanged and have no optimizer state; biases and LayerNorm get no weight decay" {
            inTemp (fun folder ->
                let data = regressionData.Force()
                let model = regressionModel 4 0.0
                let named = dict [ for struct (n, p) in model.named_parameters() -> n, p ]
                named.["fc1.weight"].requires_grad <- false
                let before = snapshot model |> dict
                // A loss with zero gradient everywhere: AdamW's step is then pure decoupled decay, p ← p·(1 − lr·λ).
                let zeroLoss = Func<Batch, LossOutput>(fun (x, _) -> LossOutput(model.forward(x).mul(torch.tensor(0.0f)).sum()))
                let options = TrainerOptions(OutputFolder = folder, MaxSteps = 1L, LearningRate = 0.01, WeightDecay = 0.1, Schedule = ScheduleKind.Constant)
                use trainer = new Trainer<Batch>(model, options, batches data 4, zeroLoss)
                trainer.Run() |> ignore
                Expect.isTrue (bitwise named.["fc1.weight"] before.["fc1.weight"]) "frozen weight untouched"
                Expect.isFalse (trainer.Optimizer.State.ContainsKey "fc1.weight") "no state for the frozen weight"
                Expect.isFalse (trainer.Optimizer.Groups |> Seq.exists (fun g -> g.Parameters |> Seq.exists (fun struct (n, _) -> n = "fc1.weight"))) "in no group"
                use saved = SafeTensorsFile.Open(Path.Combine(folder, "checkpoint-1", "optimizer.safetensors"))
                Expect.isFalse (saved.Tensors |> Seq.exists (fun t -> t.Name.StartsWith "fc1.weight")) "nothing saved for it"
                Expect.isTrue (saved.Contains "out.weight.exp_avg") "trainable ones are saved"
                for name in [ "out.weight" ] do
                    Expect.isTrue (bitwise named.[name] (before.[name].mul((1.0 - 0.01 * 0.1).ToScalar()))) $"{name} decayed by exactly 1 − lr·λ"
                for name in [ "fc1.bias"; "norm.weight"; "norm.bias"; "out.bias" ] do
                    Expect.isTrue (bitwise named.[name] before.[name]) $"{name}: no decay")
        }

        test "early stopping ends at the right evaluation, keeps the best checkpoint, loads it at the end, and survives a resume" {
            // The watched score by evaluation step: best at 4, then two evaluations without improvement.
            let scores = dict [ 2L, 1.0; 4L, 0.8; 6L, 0.85; 8L, 0.9; 10L, 0.1; 12L, 0.05 ]
            let options folder =
                TrainerOptions(OutputFolder = folder, Epochs = 10, LearningRate = 1e-2, EvalSteps = 2L, BestMetric = "score",
                               EarlyStoppingPatience = 2, SaveSteps = 0L, SaveTotalLimit = 1, LoadBestAtEnd = true, LoggingSteps = 1L)
            let run folder (cancelAt: int64 option) resume =
                let data = classificationData.Force()
                let model = classificationModel 8
                let mutable step = 0L
                let mutable atBest = []
                let probe = Probe(stepEnd = fun c -> step <- c.Step; (if c.Step = 4L then atBest <- snapshot c.Model))
                let metric =
                    Func<IReadOnlyDictionary<string, float>>(fun () ->
                        let accuracy = (accuracyMetric model data).Invoke().["accuracy"]
                        readOnlyDict [ "score", scores.[step]; "accuracy", accuracy ])
                use cancel = new CancellationTokenSource()
                let progress = onProgress (fun p -> if Some p.Step = cancelAt && p.Event = TrainingEvent.Step then cancel.Cancel())
                use trainer = new Trainer<Batch>(model, options folder, batches data 10, crossEntropyLoss model, metric, [ probe ], progress)
                let result = if resume then trainer.Resume(null, cancel.Token) else trainer.Run(cancel.Token)
                result, model, atBest
            inTemp (fun folder ->
                let result, model, atBest = run folder None false
                Expect.equal (result.Reason, result.GlobalStep) (StopReason.EarlyStopped, 8L) "stopped after the evaluation at step 8"
                Expect.sequenceEqual [ for e in result.Evaluations -> e.Step ] [ 2L; 4L; 6L; 8L ] "four evaluations"
                Expect.equal (result.BestStep, result.BestMetric) (Nullable 4L, Nullable 0.8) "best at step 4"
                Expect.equal (Path.GetFileName result.BestCheckpoint) "checkpoint-4" "best checkpoint"
                Expect.sequenceEqual (checkpointDirs folder) [ "checkpoint-4"; "checkpoint-8" ] "the best and the last"
                Expect.equal (CheckpointStore(folder).ReadManifest().Best) "checkpoint-4" "manifest names the best"
                Expect.isTrue (bitwiseEqual (snapshot model) atBest) "the best weights were loaded at the end")
            inTemp (fun folder ->
                let stopped, _, _ = run folder (Some 6L) false
                Expect.equal (stopped.Reason, stopped.GlobalStep) (StopReason.Cancelled, 6L) "cancelled after one evaluation without improvement"
                let resumed, _, _ = run folder None true
                Expect.equal (resumed.Reason, resumed.GlobalStep, resumed.BestStep) (StopReason.EarlyStopped, 8L, Nullable 4L) "the patience counter was restored")
        }

        test "invalid options are rejected naming the option" {
            let data = regressionData.Force()
            let model = regressionModel 1 0.0
            let check (options: TrainerOptions) (option: string) =
                let e = throwsWith<ArgumentException> [ $"TrainerOptions.{option}" ] (fun () ->
                    new Trainer<Batch>(model, options, batches data 4, mseLoss model, mseMetric model data) |> ignore)
                Expect.equal e.ParamName option $"ParamName is {option}"
            check (TrainerOptions(GradientAccumulationSteps = 0)) "GradientAccumulationSteps"
            check (TrainerOptions(WarmupRatio = 1.5)) "WarmupRatio"
            check (TrainerOptions(LearningRate = -1.0)) "LearningRate"
            check (TrainerOptions(LearningRate = nan)) "LearningRate"
            check (TrainerOptions(AdamBeta1 = 1.0)) "AdamBeta1"
            check (TrainerOptions(MaxSteps = 0L)) "MaxSteps"
            check (TrainerOptions(Epochs = 0)) "Epochs"
            check (TrainerOptions(LoggingSteps = 0L)) "LoggingSteps"
            check (TrainerOptions(SaveTotalLimit = 0)) "SaveTotalLimit"
            check (TrainerOptions(MaxGradNorm = -0.5)) "MaxGradNorm"
            check (TrainerOptions(EarlyStoppingPatience = 3)) "BestMetric"
            check (TrainerOptions(BestMetric = "mse")) "EvalSteps"
            check (TrainerOptions(BestMetric = "mse", EvalSteps = 5L, LoadBestAtEnd = true)) "OutputFolder"
            check (TrainerOptions(ParameterGroups = [ ParameterGroupRule("default", fun _ -> true) ])) "ParameterGroups"
            throwsWith<ArgumentException> [ "EvalSteps"; "no evaluation function" ] (fun () ->
                new Trainer<Batch>(model, TrainerOptions(EvalSteps = 2L), batches data 4, mseLoss model) |> ignore) |> ignore
        }

        test "a corrupt or mismatched checkpoint is an error naming the file and the tensor or option" {
            inTemp (fun folder ->
                let options = TrainerOptions(OutputFolder = folder, MaxSteps = 6L, SaveSteps = 3L, LearningRate = 1e-3)
                let _, first = regressionTrainer options 1 [] null
                using first (fun t -> t.Run() |> ignore)
                let latest = Path.Combine(folder, "checkpoint-6")
                // Resuming a finished run restores everything and trains no further: the checks all run.
                let _, fine = regressionTrainer options 2 [] null
                Expect.equal (using fine (fun t -> t.Resume().GlobalStep)) 6L "an intact checkpoint resumes"
                // Options that change the course of training must match.
                let _, otherLr = regressionTrainer (TrainerOptions(OutputFolder = folder, MaxSteps = 6L, SaveSteps = 3L, LearningRate = 2e-3)) 2 [] null
                throwsWith<CheckpointFormatException> [ "trainer_state.json"; "'learning_rate'"; "0.001"; "0.002" ] (fun () ->
                    using otherLr (fun t -> t.Resume() |> ignore)) |> ignore
                // A model whose head has another shape.
                let wide =
                    torch.nn.Sequential(
                        struct ("fc1", torch.nn.Linear(6L, 16L) :> Layer), struct ("act", torch.nn.GELU() :> Layer),
                        struct ("drop", torch.nn.Dropout(0.2) :> Layer), struct ("norm", torch.nn.LayerNorm([| 16L |]) :> Layer),
                        struct ("out", torch.nn.Linear(16L, 2L) :> Layer))
                use mismatched = new Trainer<Batch>(wide, options, batches (regressionData.Force()) 4, mseLoss wide)
                throwsWith<CheckpointMismatchException> [ latest; "out.weight"; "[2,16]"; "[1,16]" ] (fun () -> mismatched.Resume() |> ignore) |> ignore
                // A corrupt optimizer file.
                let optimizerFile = Path.Combine(latest, "optimizer.safetensors")
                let bytes = File.ReadAllBytes optimizerFile
                Array.fill bytes 0 8 0xFFuy
                File.WriteAllBytes(optimizerFile, bytes)
                let _, corrupt = regressionTrainer options 2 [] null
                throwsWith<CheckpointFormatException> [ optimizerFile; "header length" ] (fun () -> using corrupt (fun t -> t.Resume() |> ignore)) |> ignore
                // A corrupt state file.
                File.WriteAllText(Path.Combine(latest, "trainer_state.json"), "{ \"format\": ")
                let _, broken = regressionTrainer options 2 [] null
                throwsWith<CheckpointFormatException> [ Path.Combine(latest, "trainer_state.json"); "not valid JSON" ] (fun () ->
                    using broken (fun t -> t.Resume() |> ignore)) |> ignore
                // A fresh run must not silently mix with an existing run's checkpoints.
                let _, fresh = regressionTrainer options 2 [] null
                throwsWith<InvalidOperationException> [ folder; "already holds checkpoints" ] (fun () -> using fresh (fun t -> t.Run() |> ignore)) |> ignore)
        }

        test "MetricsLog.WallTime: the largest wall_time (a resumed run continues its clock); a torn last line is ignored" {
            inTemp (fun folder ->
                let path = Path.Combine(folder, MetricsLog.FileName)
                File.WriteAllText(path, "{\"step\":10,\"loss\":1.0,\"wall_time\":12.5}\n{\"step\":10,\"eval_loss\":0.9,\"wall_time\":14.0}\n{\"step\":20,\"loss\":0.8,\"wall_time\":99")
                Expect.equal (MetricsLog.WallTime path) 14.0 "the evaluation line is the latest complete one"
                File.WriteAllText(path, "{\"step\":1,\"loss\":1.0}\n")
                Expect.equal (MetricsLog.WallTime path) 0.0 "no wall_time recorded") }

        test "200 updates with evaluation, logging and checkpoints: live tensors stay flat, metrics lines hold what HF logs" {
            inTemp (fun folder ->
                let data = classificationData.Force()
                let model = classificationModel 3
                let options =
                    TrainerOptions(OutputFolder = folder, MaxSteps = 200L, LearningRate = 1e-2, WarmupRatio = 0.1, WeightDecay = 0.01,
                                   LoggingSteps = 10L, EvalSteps = 50L, SaveSteps = 50L, BestMetric = "accuracy", BestMetricMode = MetricMode.Max)
                let live = ResizeArray<int64>()
                let progress =
                    onProgress (fun p -> if p.Event = TrainingEvent.Step && p.Step >= 20L then live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount))
                use trainer = new Trainer<Batch>(model, options, batches data 10, crossEntropyLoss model, accuracyMetric model data, progress = progress)
                let result = trainer.Run()
                Expect.equal live.Count 181 "measured at every update from 20 to 200"
                Expect.equal (Seq.max live) (Seq.min live) $"live tensors flat from update 20 to 200 (min {Seq.min live}, max {Seq.max live})"
                let records = MetricsLog.Read(Path.Combine(folder, MetricsLog.FileName))
                let training = records |> Seq.filter (fun r -> r.ContainsKey "loss") |> List.ofSeq
                Expect.sequenceEqual [ for r in training -> r.["step"].GetValue<int64>() ] [ 10L .. 10L .. 200L ] "a line every 10 updates"
                for r in training do
                    for key in [ "epoch"; "loss"; "learning_rate"; "grad_norm"; "tokens_per_second"; "wall_time" ] do
                        Expect.isTrue (r.ContainsKey key) $"training line has {key}"
                    let step = r.["step"].GetValue<int64>()
                    let window = [ for s in step - 9L .. step -> result.Losses.[int s - 1] ]
                    Expect.equal (r.["loss"].GetValue<float>()) (List.fold (+) 0.0 window / 10.0) "mean loss of the interval"
                    Expect.equal (r.["learning_rate"].GetValue<float>()) (1e-2 * LearningRateSchedule.Factor(ScheduleKind.Linear, step - 1L, 20L, 200L)) "lr of that update"
                    Expect.equal (r.["epoch"].GetValue<float>()) (float step / 6.0) "fractional epoch"
                let evals = records |> Seq.filter (fun r -> r.ContainsKey "eval_accuracy") |> List.ofSeq
                Expect.sequenceEqual [ for r in evals -> r.["step"].GetValue<int64>() ] [ 50L; 100L; 150L; 200L ] "evaluations"
                Expect.isGreaterThan ((List.last evals).["eval_accuracy"].GetValue<float>()) 0.8 "the blobs are learned"
                Expect.isTrue (evals |> List.forall (fun r -> r.ContainsKey "eval_loss")) "every metric logged with the eval_ prefix")
        }
    ]
