/// MPOE's gradient mask as a trainer callback, on a tiny MPOE regression model trained by the real trainer: p_b = 0 is
/// plain training and p_b = 1 is freezing, bit for bit, in every mode; what each mode does to a step; the same masks
/// after a resume; the schedule; only the shared central tensors.
module Mpo.Core.Tests.GradientMaskTests

open System
open System.Threading
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Experts
open Mpo.Layers
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TrainingProblems
open Mpo.Core.Tests.ExpertFixtures

/// A callback made of functions.
type Probe(?afterBackward: TrainingStepContext -> unit, ?stepEnd: TrainingStepContext -> unit, ?name: string) =
    inherit TrainerCallback()
    override _.Name = defaultArg name "Probe"
    override _.OnAfterBackward c = afterBackward |> Option.iter (fun f -> f c)
    override _.OnStepEnd c = stepEnd |> Option.iter (fun f -> f c)

/// x ∈ R¹⁶, y = sin(x·w): 64 examples in batches of 8.
let data =
    lazy (
        use g = new torch.Generator(17UL)
        let x = torch.randn([| 64L; 16L |], generator = g)
        let y = torch.sin(x.matmul(torch.randn([| 16L; 1L |], generator = g)))
        { X = x; Y = y; ValX = x; ValY = y })

/// MoE(16 → 32 → 16, 3 MPO experts sharing one central tensor per matrix, top-1) → tanh → MpoLinear(16 → 16, a plain
/// MPO layer whose central tensor is not shared) → Linear(16 → 1), initialized from `seed`.
let tinyMpoe (seed: int) =
    torch.random.manual_seed(int64 seed) |> ignore
    let fc1 = torch.nn.Linear(16L, 32L)
    let fc2 = torch.nn.Linear(32L, 16L)
    let ffn = new FeedForwardView("fc1", (fun () -> fc1 :> Layer), "fc2", (fun () -> fc2 :> Layer), Func<Tensor, Tensor>(fun x -> torch.nn.functional.relu(x)))
    let options = MoeOptions(Experts = 3, Gates = GateMode.Probability)
    let moe = MoeFeedForward.Upcycle(ffn, options, ExpertKind.Mpo, MpoFactorization([| 2; 8; 2 |], [| 2; 4; 2 |]), MpoFactorization([| 2; 4; 2 |], [| 2; 8; 2 |]))
    let proj = MpoLinear.FromWeight(torch.randn(16L, 16L) * torch.tensor(0.25f), torch.zeros(16L), MpoFactorization([| 2; 4; 2 |], [| 2; 4; 2 |]))
    torch.nn.Sequential(
        struct ("moe", moe :> Layer), struct ("act", torch.nn.Tanh() :> Layer), struct ("proj", proj :> Layer),
        struct ("head", torch.nn.Linear(16L, 1L) :> Layer)), moe

let centralNames = [ "moe.fc1.central"; "moe.fc2.central" ]

let moeLoss (model: torch.nn.Module<Tensor, Tensor>) =
    Func<Batch, LossOutput>(fun (x, y) ->
        use step = MoeStep.Begin(model)
        step.AddTo(LossOutput(torch.nn.functional.mse_loss(model.forward(x), y), x.shape.[0])))

/// No warmup (a first update at learning rate 0 would move nothing), weight decay on, also on the MPO cores (which get
/// none by default, MPOP §4.2): with decay a zero gradient still moves a tensor, the case a real skip must exclude;
/// clipping that bites; checkpoints only when a folder is given (the resume test).
let options (folder: string) (steps: int64) =
    TrainerOptions(OutputFolder = folder, MaxSteps = steps, LearningRate = 2e-2, WeightDecay = 0.1, MaxGradNorm = 1.0,
                   ParameterGroups = [| ParameterGroupRule("cores.decay", (fun n -> Mpo.Layers.MpoLayer.IsCore n), WeightDecay = Nullable 0.1) |],
                   SaveSteps = (if isNull folder then 0L else 3L), Seed = Nullable 11L)

/// Trains the tiny model for `steps` updates with `callbacks`; returns the result, final parameters and the trainer's
/// AdamW step counts.
let train (steps: int64) (prepare: torch.nn.Module -> unit) (callbacks: TrainerCallback list) =
    let model, _ = tinyMpoe 3
    prepare model
    use trainer = new Trainer<Batch>(model, options null steps, batches (data.Force()) 8, moeLoss model, callbacks = callbacks)
    let result = trainer.Run()
    result, snapshot model, dict [ for KeyValue(n, s) in trainer.Optimizer.State -> n, s.Step ]

let freezeCentrals (model: torch.nn.Module) =
    for struct (_, m) in model.named_modules() do
        match m with
        | :? MpoExpertMatrices as bank -> bank.FreezeCentral()
        | _ -> ()

let modes =
    [ "skip step", (fun p -> GradientMaskCallback(GradientMaskSchedule.Constant p, GradientMaskMode.SkipStep))
      "mask update", (fun p -> GradientMaskCallback(GradientMaskSchedule.Constant p, GradientMaskMode.MaskUpdate))
      "mask update, rescaled", (fun p -> GradientMaskCallback(GradientMaskSchedule.Constant p, GradientMaskMode.MaskUpdate, rescale = true))
      "mask gradient, rescaled", (fun p -> GradientMaskCallback(GradientMaskSchedule.Constant p, GradientMaskMode.MaskGradient, rescale = true)) ]

let value (snap: (string * Tensor) list) name = snap |> List.find (fun (n, _) -> n = name) |> snd

[<Tests>]
let tests =
    testSequenced <| testList "Experts.GradientMask" [
        test "p_b = 0 is plain training and p_b = 1 is freezing the shared central tensors, bit for bit, in every mode" {
            let plainResult, plain, _ = train 4L ignore []
            let frozenResult, frozen, frozenSteps = train 4L freezeCentrals []
            let initial = snapshot (fst (tinyMpoe 3))
            for name in centralNames do
                Expect.isTrue (bitwise (value frozen name) (value initial name)) $"{name} frozen"
                Expect.isFalse (bitwise (value plain name) (value initial name)) $"{name} trains without the mask"
                Expect.isFalse (frozenSteps.ContainsKey name) $"{name}: no state when frozen"
            for label, make in modes do
                let r0, p0, _ = train 4L ignore [ make 0.0 ]
                Expect.sequenceEqual r0.Losses plainResult.Losses $"{label}, p_b = 0: same losses"
                Expect.isTrue (bitwiseEqual p0 plain) $"{label}, p_b = 0: same parameters as plain training"
                let callback = make 1.0
                let r1, p1, steps1 = train 4L ignore [ callback ]
                Expect.sequenceEqual r1.Losses frozenResult.Losses $"{label}, p_b = 1: same losses as frozen"
                Expect.isTrue (bitwiseEqual p1 frozen) $"{label}, p_b = 1: same parameters as freezing"
                for name in centralNames do Expect.isFalse (steps1.ContainsKey name) $"{label}: no moments, no step count for {name}"
                Expect.equal callback.SkippedUpdates 8L $"{label}: 2 tensors × 4 updates skipped"
            // Why the skip must be real: a zeroed gradient still decays (and, after a real update, moves by momentum).
            let zeroing = Probe(afterBackward = fun c -> for struct (n, p) in c.TrainableParameters do if List.contains n centralNames then p.grad.zero_() |> ignore)
            let _, zeroed, _ = train 4L ignore [ zeroing ]
            for name in centralNames do
                Expect.isFalse (bitwise (value zeroed name) (value frozen name)) $"{name}: a zero gradient is not a skip under AdamW"
        }

        test "per-step skip at p_b = 0.5: a skipped step leaves the tensor and its moments exactly as they were, and its step count counts only real updates" {
            let callback = GradientMaskCallback(GradientMaskSchedule.Constant 0.5)
            let before = Collections.Generic.Dictionary<string, Tensor>()
            let skipped = Collections.Generic.Dictionary<string, int>()
            let record =
                Probe((fun c ->
                          for struct (n, p) in c.TrainableParameters do
                              if List.contains n centralNames then before.[n] <- p.detach().clone().DetachFromDisposeScope()),
                      (fun c ->
                          for n in centralNames do
                              let p = c.TrainableParameters |> Seq.find (fun struct (m, _) -> m = n) |> fun struct (_, p) -> p
                              if c.Skipped.Contains n then
                                  skipped.[n] <- (match skipped.TryGetValue n with | true, k -> k | _ -> 0) + 1
                                  Expect.isTrue (bitwise p before.[n]) $"step {c.Step}: {n} untouched when skipped"
                              else Expect.isFalse (bitwise p before.[n]) $"step {c.Step}: {n} updated"),
                      "Record")
            let _, _, steps = train 12L ignore [ callback; record ]
            for n in centralNames do
                let s = match skipped.TryGetValue n with | true, k -> k | _ -> 0
                Expect.isTrue (s > 0 && s < 12) $"{n}: skipped on some of 12 steps ({s})"
                Expect.equal steps.[n] (12L - int64 s) $"{n}: AdamW's step count = updates made"
            Expect.equal callback.SkippedUpdates (int64 (skipped.Values |> Seq.sum)) "the callback counts them"
        }

        test "element-wise, MaskUpdate: masked elements do not move (parameter and moments), kept gradients are rescaled by 1/(1−p_b)" {
            let p = 0.3
            let callback = GradientMaskCallback(GradientMaskSchedule.Constant p, GradientMaskMode.MaskUpdate, rescale = true)
            let grads, masked = Collections.Generic.Dictionary<string, Tensor>(), Collections.Generic.Dictionary<string, Tensor>()
            let before, moments = Collections.Generic.Dictionary<string, Tensor>(), Collections.Generic.Dictionary<string, Tensor * Tensor>()
            let keep (t: Tensor) = t.detach().clone().DetachFromDisposeScope()
            let first =
                Probe((fun c ->
                          for struct (n, q) in c.TrainableParameters do
                              if List.contains n centralNames then
                                  grads.[n] <- keep q.grad
                                  before.[n] <- keep q
                                  match c.Optimizer.State.TryGetValue n with
                                  | true, s -> moments.[n] <- (keep s.ExpAvg, keep s.ExpAvgSq)
                                  | _ -> moments.Remove n |> ignore), name = "First")
            let checkStep =
                Probe((fun c ->
                          for struct (n, q) in c.TrainableParameters do
                              if List.contains n centralNames then masked.[n] <- keep q.grad),
                      (fun c ->
                          for struct (n, q) in c.TrainableParameters do
                              if List.contains n centralNames then
                                  let g, g' = grads.[n], masked.[n]
                                  let m = g'.eq(torch.tensor(0.0f)).logical_and(g.ne(torch.tensor(0.0f)))
                                  let fraction = m.``to``(torch.float64).mean().ToDouble()
                                  Expect.isTrue (abs (fraction - p) < 5.0 * sqrt (p * (1.0 - p) / float (g.numel()))) $"step {c.Step}: {n} masked fraction {fraction:F3} ≈ {p}"
                                  let kept = m.logical_not()
                                  let scaled = g * torch.tensor(1.0 / (1.0 - p), dtype = torch.float32)
                                  Expect.isLessThan (relativeError (g'.masked_select(kept)) (scaled.masked_select(kept))) 1e-6 "kept gradient / (1 − p_b)"
                                  Expect.isTrue (bitwise (q.masked_select(m)) (before.[n].masked_select(m))) $"step {c.Step}: masked elements did not move"
                                  Expect.isFalse (bitwise (q.masked_select(kept)) (before.[n].masked_select(kept))) "kept elements did"
                                  let s = c.Optimizer.State.[n]
                                  match moments.TryGetValue n with
                                  | true, (m1, m2) ->
                                      Expect.isTrue (bitwise (s.ExpAvg.masked_select(m)) (m1.masked_select(m))) "first moment kept where masked"
                                      Expect.isTrue (bitwise (s.ExpAvgSq.masked_select(m)) (m2.masked_select(m))) "second moment kept where masked"
                                  | _ -> Expect.isTrue (s.ExpAvg.masked_select(m).eq(torch.tensor(0.0f)).all().item<bool>()) "first update: moments stay 0 where masked"),
                      "Check")
            train 4L ignore [ first; callback; checkStep ] |> ignore
            Expect.isGreaterThan callback.MaskedElements 0L "elements were masked"
        }

        test "element-wise, MaskGradient (Child-Tuning): the optimizer sees zeros where masked, and AdamW still moves those elements" {
            let callback = GradientMaskCallback(GradientMaskSchedule.Constant 0.3, GradientMaskMode.MaskGradient)
            let before, masked = Collections.Generic.Dictionary<string, Tensor>(), Collections.Generic.Dictionary<string, Tensor>()
            let mutable movedWhileMasked = 0L
            let probe =
                Probe((fun c ->
                          for struct (n, q) in c.TrainableParameters do
                              if List.contains n centralNames then
                                  before.[n] <- q.detach().clone().DetachFromDisposeScope()
                                  masked.[n] <- q.grad.eq(torch.tensor(0.0f)).DetachFromDisposeScope()),
                      (fun c ->
                          for struct (n, q) in c.TrainableParameters do
                              if List.contains n centralNames && c.Step > 1L then
                                  movedWhileMasked <- movedWhileMasked + q.ne(before.[n]).logical_and(masked.[n]).sum().item<int64>()),
                      "Probe")
            train 4L ignore [ callback; probe ] |> ignore
            Expect.isGreaterThan callback.MaskedElements 0L "elements were masked"
            Expect.isGreaterThan movedWhileMasked 0L "masked elements still moved (momentum and decay): the documented difference from MaskUpdate"
        }

        test "the masks after a resume are those of the uninterrupted run: same decisions per step, same final parameters, counters restored" {
            for label, make in [ "skip step", (fun () -> GradientMaskCallback(GradientMaskSchedule.Constant 0.5))
                                 "mask update", (fun () -> GradientMaskCallback(GradientMaskSchedule.Linear(0.1, 0.6, 6L), GradientMaskMode.MaskUpdate)) ] do
                let run folder (cancelAt: int64 option) resume =
                    let model, _ = tinyMpoe 3
                    let callback = make ()
                    let decisions = Collections.Generic.Dictionary<int64, string>()
                    let log = Probe(stepEnd = (fun c -> decisions.[c.Step] <- String.Join(";", [ for KeyValue(n, f) in callback.LastStep -> $"{n}={f:R}" ])), name = "Log")
                    use cancel = new CancellationTokenSource()
                    let progress = onProgress (fun p -> if Some p.Step = cancelAt && p.Event = TrainingEvent.Step then cancel.Cancel())
                    use trainer = new Trainer<Batch>(model, options folder 9L, batches (data.Force()) 8, moeLoss model, callbacks = [ callback; log ], progress = progress)
                    let result = if resume then trainer.Resume(null, cancel.Token) else trainer.Run(cancel.Token)
                    result, snapshot model, callback, decisions
                inTemp (fun a ->
                    inTemp (fun b ->
                        let whole, final, callback, decisions = run a None false
                        let stopped, _, _, _ = run b (Some 4L) false
                        Expect.equal stopped.GlobalStep 4L "stopped at 4"
                        let resumed, resumedFinal, resumedCallback, resumedDecisions = run b None true
                        Expect.equal resumed.ResumedFromStep (Nullable 4L) "resumed from 4"
                        for s in 5L .. 9L do Expect.equal resumedDecisions.[s] decisions.[s] $"{label}: step {s} masked as in the uninterrupted run"
                        Expect.isTrue (bitwiseEqual resumedFinal final) $"{label}: final parameters bit for bit"
                        Expect.equal (resumedCallback.SkippedUpdates, resumedCallback.MaskedElements, resumedCallback.SeenElements)
                                     (callback.SkippedUpdates, callback.MaskedElements, callback.SeenElements) $"{label}: counters restored"
                        Expect.sequenceEqual (Seq.append stopped.Losses resumed.Losses) whole.Losses $"{label}: losses"))
        }

        test "the p_b schedule ramps linearly and is honoured per step; bad probabilities name the argument" {
            let s = GradientMaskSchedule.Linear(0.0, 1.0, 10L)
            for step, expected in [ 1L, 0.0; 6L, 0.5; 11L, 1.0; 50L, 1.0 ] do expectClose 1e-12 (s.At step) expected $"p_b at {step}"
            Expect.equal ((GradientMaskSchedule.Constant 0.25).At 99L) 0.25 "constant"
            for bad in [ -0.1; 1.5; nan ] do
                let e = throwsWith<ArgumentOutOfRangeException> [ "p_b" ] (fun () -> GradientMaskSchedule.Constant bad |> ignore)
                Expect.equal e.ParamName "start" "names the argument"
            let callback = GradientMaskCallback(GradientMaskSchedule.Linear(0.0, 1.0, 4L))
            let skippedAt = Collections.Generic.List<int64 * bool>()
            let log = Probe(stepEnd = fun c -> skippedAt.Add((c.Step, c.Skipped.Contains "moe.fc1.central")))
            train 6L ignore [ callback; log ] |> ignore
            Expect.isFalse (snd skippedAt.[0]) "p_b = 0 at the first update"
            for step, skipped in skippedAt do if step >= 5L then Expect.isTrue skipped $"p_b = 1 from update 5 (update {step})"
            throwsWith<ArgumentException> [ "rescal" ] (fun () -> GradientMaskCallback(GradientMaskSchedule.Constant 0.5, GradientMaskMode.SkipStep, rescale = true) |> ignore) |> ignore
        }

        test "only the shared central tensors of MPO experts are masked (a plain MPO layer's central tensor is not); a model without any is an error" {
            let callback = GradientMaskCallback(GradientMaskSchedule.Constant 1.0)
            let skippedNames = Collections.Generic.HashSet<string>()
            let log = Probe(stepEnd = fun c -> for n in c.Skipped do skippedNames.Add n |> ignore)
            let _, final, _ = train 3L ignore [ callback; log ]
            Expect.equal (set skippedNames) (set centralNames) "exactly the two shared central tensors"
            let initial = snapshot (fst (tinyMpoe 3))
            Expect.isFalse (bitwise (value final "proj.central") (value initial "proj.central")) "the plain MPO layer's central tensor trains"
            let plain = regressionModel 1 0.0
            inTemp (fun folder ->
                use trainer = new Trainer<Batch>(plain, TrainerOptions(MaxSteps = 1L), batches (regressionData.Force()) 8, mseLoss plain,
                                                 callbacks = [ GradientMaskCallback(GradientMaskSchedule.Constant 0.5) ])
                throwsWith<InvalidOperationException> [ "no shared central tensor"; "select" ] (fun () -> trainer.Run() |> ignore) |> ignore)
        }
    ]
