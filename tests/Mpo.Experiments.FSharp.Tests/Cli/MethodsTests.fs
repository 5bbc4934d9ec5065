/// MPOP's methods through the command line, end to end on tiny-bert with a few updates: LFA keeps every central
/// tensor bit for bit (against the hash recorded at decomposition), `mpo merge` writes a dense checkpoint that the
/// ordinary loader reads and whose logits equal the adapter model's, a squeezed run logs its trajectory and resumes
/// exactly after a kill, and bad input (§9) is refused with exit code 2 naming the module, file or argument.
module Mpo.Experiments.Tests.Cli.MethodsTests

open System
open System.Collections.Generic
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Data
open Mpo.Training
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Tests.Support
open Mpo.Experiments.Tests.FineTuning.FineTuneTests

let private tinyBert () = repoFile "models/tiny-bert"

/// Writes the separable task into <c>dir</c>/task once and returns its folder.
let private task (dir: string) =
    let data = Path.Combine(dir, "task")
    if not (Directory.Exists data) then
        Directory.CreateDirectory data |> ignore
        writeSeparableTask data
    data

/// `mpo finetune tiny-bert` on the separable task with a few short updates; returns the run and its out folder.
let private finetune (dir: string) (out: string) (args: string list) =
    let out = Path.Combine(dir, out)
    let args =
        [ "finetune"; "tiny-bert"; "--task"; "spam"; "--data"; task dir; "--learning-rate"; "1e-3"; "--batch-size"; "4"
          "--max-length"; "16"; "--train-examples"; "32"; "--out"; out ] @ args
    // generous: a shared machine runs these few updates of tiny-bert in seconds when idle and minutes when loaded
    let run = mpoWithin 1200 [] dir args
    run, out

let private record (out: string) =
    let store = Store(Path.Combine(out, "store"))
    store.LoadStrict() |> Seq.exactlyOne |> fun kv -> kv.Value

let private sha256 (t: torch.Tensor) = Convert.ToHexString(SHA256.HashData(t.contiguous().bytes)).ToLowerInvariant()

/// Token ids [2, 10] from the vocabulary, saved for `mpo forward`.
let private writeIds (dir: string) =
    let path = Path.Combine(dir, "ids.safetensors")
    use g = new torch.Generator(11UL)
    let ids = torch.randint(5L, 1000L, [| 2L; 10L |], generator = g)
    SafeTensors.Save(path, [ KeyValuePair("input_ids", ids); KeyValuePair("attention_mask", torch.ones(2L, 10L, dtype = torch.int64)) ])
    path

let private logits (file: string) =
    use f = SafeTensorsFile.Open file
    f.Load("logits").``to``(torch.float64)

let private expectBad (run: Run) (fragments: string list) =
    Expect.equal run.Code 2 $"exit code 2 for bad input; stderr: {run.Err}"
    for f in fragments do Expect.stringContains run.Err f "the error names the problem"

let private squeezeArgs = [ "--method"; "mpop"; "--steps"; "20"; "--squeeze-warmup"; "2"; "--recovery-steps"; "1"; "--max-cuts"; "3"; "--loss-gap"; "100" ]

[<Tests>]
let tests =
    testSequenced <| testList "Cli.Methods" [
        test "lfa: the adapter folder, central tensors bit-identical after training, trained = all − central parameters" {
            inTempDir (fun dir ->
                let run, out = finetune dir "out" [ "--method"; "lfa"; "--steps"; "4"; "--mpo-lr"; "1e-3" ]
                Expect.equal run.Code 0 $"finetune succeeds; stderr: {run.Err}"
                let runFolder = Path.Combine(out, "runs", "tiny-bert-spam-lfa")
                let adapter = Path.Combine(runFolder, "adapter")
                for f in [ "adapter_config.json"; "adapter_model.safetensors" ] do
                    Expect.isTrue (File.Exists(Path.Combine(adapter, f))) $"{f} written"
                let config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))
                let recorded = dict [ for t in config.["targets"].AsArray() -> t.["path"].GetValue<string>(), t.["central_sha256"].GetValue<string>() ]
                // the trainer's last checkpoint holds every parameter as trained
                let last = Directory.GetDirectories(runFolder, "checkpoint-*") |> Array.maxBy (fun d -> int (Path.GetFileName(d).Substring 11))
                use weights = SafeTensorsFile.Open(Path.Combine(last, "model.safetensors"))
                let centrals = [ for t in weights.Tensors do if t.Name.EndsWith ".central" then t.Name ]
                Expect.equal centrals.Length recorded.Count "one central tensor per decomposed module"
                for name in centrals do
                    let path = name.Substring(0, name.Length - ".central".Length)
                    use c = weights.Load name
                    Expect.equal (sha256 c) recorded.[path] $"{name}: the bytes it was decomposed into"
                let r = record out
                let central = centrals |> List.sumBy (fun n -> weights.Tensors |> Seq.find (fun t -> t.Name = n) |> fun t -> Array.fold (*) 1L t.Shape)
                Expect.equal (int64 r.Metrics.["trainable_parameters"]) (int64 r.Metrics.["parameters"] - central) "LFA trains everything but the central tensors"
                use saved = SafeTensorsFile.Open(Path.Combine(adapter, "adapter_model.safetensors"))
                Expect.isFalse (saved.Tensors |> Seq.exists (fun t -> t.Name.EndsWith ".central")) "no central tensor in an unsqueezed adapter") }

        test "mpop: the squeezing trajectory in the record, squeezed central tensors in the adapter; merge equals the adapter model; the wrong base is refused" {
            inTempDir (fun dir ->
                let run, out = finetune dir "out" squeezeArgs
                Expect.equal run.Code 0 $"finetune succeeds; stderr: {run.Err}"
                let r = record out
                let sizes = r.Series.[Keys.squeezeParameters]
                Expect.equal sizes.Length 4 "before squeezing and after each of 3 cuts"
                Expect.isTrue (sizes |> List.pairwise |> List.forall (fun (a, b) -> b < a)) "every cut shrinks the model"
                Expect.equal sizes.[0] (r.Metrics.["parameters_before_squeezing"]) "starts at the decomposed size"
                Expect.equal (List.last sizes) r.Metrics.["parameters"] "ends at the record's size"
                for key in [ Keys.squeezeMetric "loss"; Keys.squeezeMetric "dev.accuracy" ] do
                    Expect.equal r.Series.[key].Length 4 $"{key} per cut"
                let adapter = Path.Combine(out, "runs", "tiny-bert-spam-mpop", "adapter")
                let config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))
                let squeezed = [ for t in config.["targets"].AsArray() do
                                   if t.["bonds"].ToJsonString() <> t.["trained_bonds"].ToJsonString() then t.["path"].GetValue<string>() ]
                Expect.isNonEmpty squeezed "some module was squeezed"
                use saved = SafeTensorsFile.Open(Path.Combine(adapter, "adapter_model.safetensors"))
                for p in squeezed do
                    Expect.isTrue (saved.Tensors |> Seq.exists (fun t -> t.Name = p + ".central")) $"{p}: its squeezed central tensor is saved"
                // merge, then run both: the adapter on its base, and the merged folder through the ordinary loader
                let merged = Path.Combine(dir, "merged")
                let m = mpo dir [ "merge"; "--base"; tinyBert (); "--adapter"; adapter; "--out"; merged ]
                Expect.equal m.Code 0 $"merge succeeds; stderr: {m.Err}"
                Expect.isTrue (File.Exists(Path.Combine(merged, "vocab.txt"))) "the tokenizer travels along"
                let ids = writeIds dir
                let a = mpo dir [ "forward"; "--model"; tinyBert (); "--adapter"; adapter; "--input"; ids; "--out"; "a.safetensors" ]
                Expect.equal a.Code 0 a.Err
                let b = mpo dir [ "forward"; "--model"; merged; "--input"; ids; "--out"; "b.safetensors" ]
                Expect.equal b.Code 0 b.Err
                use la = logits (Path.Combine(dir, "a.safetensors"))
                use lb = logits (Path.Combine(dir, "b.safetensors"))
                Expect.equal la.shape [| 2L; 2L |] "two classes"
                let gap = (la - lb).abs().max().item<float>()
                Expect.isLessThan gap (1e-4 * max 1.0 (la.abs().max().item<float>())) $"merged logits equal the MPO model's (gap {gap})"
                // the adapter on another base (the merged folder: same class, other weights), and merging into a full folder
                expectBad (mpo dir [ "forward"; "--model"; merged; "--adapter"; adapter; "--input"; ids; "--out"; "c.safetensors" ]) [ "adapter_config.json"; "not the base it was trained on" ]
                Expect.isFalse (File.Exists(Path.Combine(dir, "c.safetensors"))) "nothing written"
                expectBad (mpo dir [ "merge"; "--base"; merged; "--adapter"; adapter; "--out"; Path.Combine(dir, "m2") ]) [ "adapter_config.json"; "not the base" ]
                Expect.isFalse (Directory.Exists(Path.Combine(dir, "m2"))) "no merged folder on the wrong base"
                expectBad (mpo dir [ "merge"; "--base"; tinyBert (); "--adapter"; adapter; "--out"; merged ]) [ "--out"; "not empty" ]) }

        test "mpop: a run killed during squeezing resumes to the uninterrupted run's trajectory and adapter, bit for bit" {
            inTempDir (fun dir ->
                let data = task dir
                let trial =
                    { Trial.create "tiny-bert" "spam" with
                        Method = Trial.Method.Mpop(Trial.defaultMpoTuning, { Trial.defaultSqueeze with WarmupSteps = 2; RecoverySteps = 2; MaxCuts = Some 3; LossGap = 100.0 })
                        Training = { Trial.defaultTraining with BatchSize = 4; MaxLength = 16; TrainExamples = Some 32; MaxSteps = Some 20L; LearningRate = { Trial.defaultTraining.LearningRate with Peak = 1e-3 } } }
                let settings = FineTune.settingsOf trial.Training trial.Seed
                let run folder (progress: IProgress<TrainingProgress>) =
                    let trial = trial
                    FineTune.run trial.Method (tinyBert ()) TextTasks.Spam data settings folder progress
                let quiet = { new IProgress<TrainingProgress> with member _.Report _ = () }
                let whole = run (Path.Combine(dir, "a")) quiet
                // 8 batches an epoch: checkpoints every 4 updates; cuts at updates 2, 4, 6; killed at update 5, in the second
                // cut's recovery (the last checkpoint is update 4's, just after that cut), then resumed
                let kill = { new IProgress<TrainingProgress> with member _.Report p = if p.Step >= 5L then raise (OperationCanceledException "killed") }
                Expect.throwsT<OperationCanceledException> (fun () -> run (Path.Combine(dir, "b")) kill |> ignore) "killed"
                Expect.isFalse (Directory.Exists(Path.Combine(dir, "b", "adapter"))) "no adapter from the killed run"
                let resumed = run (Path.Combine(dir, "b")) quiet
                Expect.equal resumed.Series whole.Series "the same trajectory: sizes, losses, dev metrics"
                let scores (d: Collections.Generic.IReadOnlyDictionary<string, float>) = [ for KeyValue(k, v) in d -> k, v ] |> List.sort
                Expect.equal (scores resumed.Dev) (scores whole.Dev) "the same dev scores"
                use x = SafeTensorsFile.Open(Path.Combine(dir, "a", "adapter", "adapter_model.safetensors"))
                use y = SafeTensorsFile.Open(Path.Combine(dir, "b", "adapter", "adapter_model.safetensors"))
                Expect.sequenceEqual [ for t in y.Tensors -> t.Name ] [ for t in x.Tensors -> t.Name ] "the same tensors"
                for t in x.Tensors do
                    use u = x.Load t.Name
                    use v = y.Load t.Name
                    Expect.isTrue (u.shape = v.shape && u.eq(v).all().item<bool>()) $"{t.Name}: bitwise equal") }

        testList "bad input (§9): exit code 2 naming the module, file or argument" [
            test "a tuner whose target families match nothing in the model" {
                inTempDir (fun dir ->
                    File.WriteAllText(Path.Combine(dir, "tuner.json"), """{ "target_modules": ["query_key_value"] }""")
                    let run, _ = finetune dir "out" [ "--method"; "lfa"; "--steps"; "2"; "--mpo"; "tuner.json" ]
                    expectBad run [ "query_key_value" ]) }
            test "factors that do not fit a module" {
                inTempDir (fun dir ->
                    File.WriteAllText(Path.Combine(dir, "tuner.json"), """{ "cores": 2, "factorizations": { "ffn_in": [ { "rows": [2, 2], "cols": [3, 3] } ] } }""")
                    let run, _ = finetune dir "out" [ "--method"; "lfa"; "--steps"; "2"; "--mpo"; "tuner.json" ]
                    expectBad run [ "factorizations"; "ffn_in"; "intermediate" ]) }
            test "a tuner file that does not exist, a flag of another method" {
                inTempDir (fun dir ->
                    expectBad (fst (finetune dir "out" [ "--method"; "lfa"; "--mpo"; "nope.json" ])) [ "nope.json" ]
                    expectBad (fst (finetune dir "out" [ "--method"; "lfa"; "--loss-gap"; "0.1" ])) [ "--loss-gap"; "mpop" ]
                    expectBad (fst (finetune dir "out" [ "--method"; "mpop-dir" ])) [ "--target-parameters" ]) }
            test "a squeeze or truncation target below what is possible" {
                inTempDir (fun dir ->
                    expectBad (fst (finetune dir "out" [ "--method"; "mpop"; "--steps"; "4"; "--target-parameters"; "10" ])) [ "TargetParameters"; "below what squeezing can reach" ]
                    expectBad (fst (finetune dir "out" [ "--method"; "mpop-dir"; "--steps"; "4"; "--target-parameters"; "10" ])) [ "target_parameters"; "below what truncation can reach" ]) }
            test "a NaN loss while squeezing: the run stops naming the step, the last good state stays on disk" {
                inTempDir (fun dir ->
                    // update 1 has learning rate 0 (warmup): p and the last good state; later updates blow the weights up
                    let run, out = finetune dir "out" [ "--method"; "mpop"; "--steps"; "50"; "--squeeze-warmup"; "1"; "--recovery-steps"; "5"; "--learning-rate"; "1e38"; "--mpo-lr"; "1e38" ]
                    expectBad run [ "diverged"; "step" ]
                    Expect.isTrue (File.Exists(Path.Combine(out, "runs", "tiny-bert-spam-mpop", "squeeze", "last-good.safetensors"))) "the last good state is kept"
                    Expect.equal (record out).Status Failed "the failure is recorded") }
        ]
    ]
