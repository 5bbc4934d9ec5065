/// The baselines MPOP is compared against at matched trained parameters: LoRA with peft's semantics (a forward
/// computed by hand, peft's init, dropout only on the A path, merged = unmerged logits on every family, r·(in + out)
/// per target, adapters holding only trained tensors), truncated-SVD layers (Eckart–Young: the error is the discarded
/// singular values' energy; the factors are U√S and √S Vᵀ), and fine-tuning the last k layers (MPOP Table 5's
/// BERT-base counts from the configuration alone; exactly the last layers train, with optimizer state only for them).
module Mpo.Core.Tests.BaselineTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Models
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TunerTests

type Tensor = torch.Tensor

let private rows (t: Tensor) =
    let t = t.``to``(torch.float64).contiguous()
    let d = t.data<float>().ToArray()
    let c = int t.shape.[1]
    Array.init (int t.shape.[0]) (fun i -> Array.sub d (i * c) c)

/// y = x Wᵀ + b + s · (x Aᵀ) Bᵀ, written out as loops over plain arrays.
let private handLora (x: float[][]) (w: float[][]) (b: float[]) (a: float[][]) (bm: float[][]) (s: float) =
    [| for xi in x ->
        let ax = [| for ar in a -> Array.fold2 (fun acc u v -> acc + u * v) 0.0 ar xi |]
        [| for o in 0 .. w.Length - 1 ->
            let baseOut = Array.fold2 (fun acc u v -> acc + u * v) 0.0 w.[o] xi + b.[o]
            baseOut + s * Array.fold2 (fun acc u v -> acc + u * v) 0.0 bm.[o] ax |] |]

let private set2 (p: TorchSharp.Modules.Parameter) (t: Tensor) = using (torch.no_grad ()) (fun _ -> p.copy_(t) |> ignore)

/// The default LoRA targets of each fixture, or the MLP and projection Conv1Ds of GPT-2 too.
let private loraFixtures =
    [ "BertForSequenceClassification", LoraConfig(R = 2, LoraAlpha = 4.0)
      "AlbertForSequenceClassification", LoraConfig(R = 2, LoraAlpha = 4.0)
      "DistilBertForSequenceClassification", LoraConfig(R = 3, LoraAlpha = 3.0, TargetModules = [| MpoFamilies.Query; MpoFamilies.Key; MpoFamilies.FfnIn |])
      "GPT2ForSequenceClassification", LoraConfig(R = 2, LoraAlpha = 16.0, TargetModules = [| MpoFamilies.QueryKeyValue; MpoFamilies.AttentionOutput; MpoFamilies.FfnIn; MpoFamilies.FfnOut |])
      "GPT2LMHeadModel", LoraConfig(R = 2, LoraAlpha = 2.0, UseRsLora = true)
      "T5ForConditionalGeneration", LoraConfig(R = 2, LoraAlpha = 4.0, Bias = "all") ]

/// Moves every trainable parameter by seeded noise (a "trained" adapter: B no longer zero).
let private train (model: torch.nn.Module) (dtype: torch.ScalarType) =
    use _ = torch.no_grad ()
    let mutable seed = 300
    for struct (_, p) in model.named_parameters () do
        if p.requires_grad then
            seed <- seed + 1
            p.add_(gaussian seed (List.ofArray p.shape) dtype * 0.1) |> ignore

/// σ of a matrix, by LAPACK (an independent route from the tuner's decomposition).
let private sigmas (w: Tensor) = torch.linalg.svdvals(w.``to``(torch.float64)).data<float>().ToArray()

let private tail (s: float[]) (r: int) = sqrt (s |> Array.skip r |> Array.sumBy (fun v -> v * v))

/// A [m, n] matrix with singular values 2^-i (seeded orthonormal U, V): a decaying spectrum.
let private decaying (m: int) (n: int) =
    let k = min m n
    let q (seed: int) d =
        let struct (q, _) = torch.linalg.qr(gaussian seed [ int64 d; int64 k ] torch.float64)
        q
    let s = torch.tensor([| for i in 0 .. k - 1 -> Math.Pow(2.0, float -i) |], dtype = torch.float64)
    q 11 m * s.unsqueeze(0) |> fun us -> us.matmul((q 12 n).t())

let private bertBase () = ParameterCountingTests.readConfig (repoFile "data/configs/models/bert-base-uncased.json")

[<Tests>]
let tests =
    testSequenced <| testList "Tuning.Baselines" [
        test "LoRA forward = x Wᵀ + b + (α/r)·B A x, computed by hand, for a Linear and for GPT-2's Conv1D ([in, out])" {
            use linear = torch.nn.Linear(4L, 3L, dtype = torch.float64)
            set2 linear.weight (gaussian 1 [ 3L; 4L ] torch.float64)
            set2 linear.bias (gaussian 2 [ 3L ] torch.float64)
            let w, b = rows linear.weight, (linear.bias.data<float>().ToArray())
            use conv = Conv1D.FromLinear linear
            for baseLayer in [ linear :> torch.nn.Module<Tensor, Tensor>; conv :> _ ] do
                let layer = new LoraLinear(baseLayer, 2, 5.0 / 2.0)
                set2 layer.A (gaussian 3 [ 2L; 4L ] torch.float64)
                set2 layer.B (gaussian 4 [ 3L; 2L ] torch.float64)
                let x = gaussian 5 [ 6L; 4L ] torch.float64
                let expected = handLora (rows x) w b (rows layer.A) (rows layer.B) 2.5
                let actual = rows (layer.forward x)
                for i in 0 .. 5 do
                    for o in 0 .. 2 do expectClose 1e-12 actual.[i].[o] expected.[i].[o] $"{baseLayer.GetType().Name} [{i},{o}]"
                use merged = layer.Merge()
                Expect.equal (merged.GetType()) (baseLayer.GetType()) "merged into the same kind of module"
                Expect.isLessThan (relativeError (merged.forward x) (layer.forward x)) 1e-12 "merged = unmerged" }

        test "LoRA init as peft: A ~ U(−1/√in, 1/√in) (Kaiming-uniform, a = √5), B = 0, base frozen" {
            torch.manual_seed 5L |> ignore
            use linear = torch.nn.Linear(400L, 30L)
            let layer = new LoraLinear(linear, 16, 1.0)
            let a = layer.A.data<float32>().ToArray() |> Array.map float
            let bound = 1.0 / sqrt 400.0
            Expect.isTrue (a |> Array.forall (fun v -> abs v <= bound)) "within the bound"
            let std = sqrt ((a |> Array.sumBy (fun v -> v * v)) / float a.Length)
            Expect.isLessThan (abs (std / (bound / sqrt 3.0) - 1.0)) 0.05 "the uniform distribution's spread, bound/√3"
            Expect.isTrue (layer.B.data<float32>().ToArray() |> Array.forall ((=) 0.0f)) "B starts at zero"
            Expect.isFalse linear.weight.requires_grad "base weight frozen"
            Expect.isFalse linear.bias.requires_grad "base bias frozen" }

        test "LoRA dropout acts on the input of the A path only: each row's update is 0 or 1/(1−p) times the undropped one" {
            torch.manual_seed 9L |> ignore
            use linear = torch.nn.Linear(1L, 3L, dtype = torch.float64)
            let layer = new LoraLinear(linear, 2, 1.0, dropout = 0.5)
            set2 layer.B (gaussian 4 [ 3L; 2L ] torch.float64)
            let x = gaussian 6 [ 200L; 1L ] torch.float64
            let full = rows ((layer.A.t().matmul(layer.B.t())).detach())   // [1, 3]: the update per unit input
            layer.train ()
            let delta = rows ((layer.forward x - linear.forward x).detach())
            let xs = rows x
            let mutable dropped = 0
            for i in 0 .. 199 do
                let kept = [| for o in 0 .. 2 -> 2.0 * xs.[i].[0] * full.[0].[o] |]
                if delta.[i] |> Array.forall (fun v -> abs v < 1e-14) then dropped <- dropped + 1
                else for o in 0 .. 2 do expectClose 1e-10 delta.[i].[o] kept.[o] $"row {i}"
            Expect.isTrue (dropped > 60 && dropped < 140) $"about half the rows dropped ({dropped})"
            layer.eval ()
            let evalDelta = rows ((layer.forward x - linear.forward x).detach())
            expectClose 1e-10 evalDelta.[3].[1] (xs.[3].[0] * full.[0].[1]) "no dropout in eval" }

        test "LoRA on every family: starts as the base; trained, merged logits = unmerged; trainable = r·(in + out) per target + head (+ biases)" {
            for name, config in loraFixtures do
                torch.manual_seed 1L |> ignore
                use model = loadFixture name None
                let inputs = batchFor model
                use before = logits model inputs
                let tuner = LoraTuner(config)
                let targets = tuner.Select model
                let loraParams = targets |> Seq.sumBy (fun t -> let struct (r, c) = t.MatrixShape in int64 config.R * int64 (r + c))
                let prefixes = [ "classifier."; "pre_classifier."; "score." ]
                let named = [ for struct (n, p) in model.named_parameters () -> n, p.numel () ]
                let head = named |> List.filter (fun (n, _) -> prefixes |> List.exists (fun h -> n.StartsWith h || n.Contains("." + h))) |> List.sumBy snd
                let biases = if config.Bias = "all" then named |> List.filter (fun (n, _) -> n.EndsWith ".bias") |> List.sumBy snd else 0L
                let total = ParameterCounting.Count(model).Total
                let lora = tuner.Apply model
                Expect.equal (lora.Count()) (ParameterCount(loraParams + head + biases, total + loraParams)) $"{name}: counts"
                Expect.isLessThan (relativeError (logits model inputs) before) 1e-12 $"{name}: B = 0, the base's logits"
                train model torch.float64
                use adapted = logits model inputs
                Expect.isGreaterThan (relativeError adapted before) 1e-4 $"{name}: the update changes the logits"
                let merged = lora.Merge()
                Expect.isFalse (merged.named_modules () |> Seq.exists (fun struct (_, m) -> m :? LoraLinear)) $"{name}: no LoRA layer left"
                Expect.isLessThan (relativeError (logits merged inputs) adapted) 1e-10 $"{name}: merged = unmerged"
                Mpo.Core.Tests.ModelFixtures.inTemp (fun dir ->
                    merged.Save dir
                    let struct (reloaded, report) = PretrainedModel.Load dir
                    use reloaded = reloaded
                    reloaded.``to``(torch.float64) |> ignore
                    Expect.isEmpty report.NewlyInitialized $"{name}: a complete Hugging Face checkpoint"
                    Expect.isLessThan (relativeError (logits reloaded inputs) adapted) 1e-6 $"{name}: reloaded dense = LoRA model") }

        test "LoRA adapter: only the trained tensors under peft's prefix, peft's config fields; loaded onto its base it gives the same logits; the wrong base is refused" {
            let baseFolder = AdapterTests.baseFolder
            let struct (model, _) = PretrainedModel.Load baseFolder
            use lora = LoraTuner(LoraConfig(R = 4, LoraAlpha = 8.0, LoraDropout = 0.1)).Apply model
            train model torch.float32
            let inputs = batchFor model
            use expected = logits model inputs
            AdapterTests.inTemp (fun dir ->
                let adapter = Path.Combine(dir, "adapter")
                LoraAdapter.Save(lora, adapter, baseFolder)
                let trained = set [ for struct (n, p) in model.named_parameters () do if p.requires_grad then yield LoraAdapter.KeyPrefix + n ]
                Expect.equal (AdapterTests.tensorNames (Path.Combine(adapter, AdapterFiles.WeightsFile))) trained "exactly the trained tensors"
                Expect.equal trained.Count (2 * 2 * 2 + 2) "A and B of query and value in two layers, the classifier's weight and bias"
                let json = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, AdapterFiles.ConfigFile))).AsObject()
                for field, value in [ "peft_type", "\"LORA\""; "r", "4"; "lora_alpha", "8"; "lora_dropout", "0.1"; "bias", "\"none\"" ] do
                    Expect.equal (json.[field].ToJsonString()) value $"peft's {field}"
                use loaded = LoraAdapter.Load(baseFolder, adapter)
                Expect.isLessThan (relativeError (logits loaded.Model inputs) expected) 1e-6 "same logits"
                let other = Path.Combine(dir, "other-base")
                use checkpoint = CheckpointFolder.Open baseFolder
                let tensors = [ for n in checkpoint.TensorNames -> Collections.Generic.KeyValuePair(n, (if n.EndsWith "pooler.dense.bias" then checkpoint.Load(n) + 1.0f else checkpoint.Load(n))) ]
                CheckpointFolder.Save(other, tensors, checkpoint.Config)
                throwsWith<InvalidTunerConfigException> [ AdapterFiles.ConfigFile; "checkpoint_sha256"; "not the base it was trained on" ] (fun () ->
                    LoraAdapter.Load(other, adapter) |> ignore) |> ignore) }

        test "LoRA configuration: peft's JSON round trip; unknown fields, bad values and embeddings are refused by name" {
            let c = LoraConfig(R = 16, LoraAlpha = 32.0, LoraDropout = 0.05, TargetModules = [| "query"; "value" |], Bias = "lora_only", ModulesToSave = [| "classifier" |])
            Expect.equal (LoraConfig.FromJson(c.ToJson(), "test")) c "round trip"
            for json, field in [ """{"r": 8, "lora_alfa": 16}""", "lora_alfa"; """{"r": 0}""", "r"; """{"lora_dropout": 1.0}""", "lora_dropout"
                                 """{"bias": "some"}""", "bias"; """{"target_modules": ["word_embedding"]}""", "target_modules"
                                 """{"target_modules": ["querry"]}""", "target_modules"; """{"peft_type": "MPO"}""", "peft_type" ] do
                let e = throwsWith<InvalidTunerConfigException> [ "spec.json"; field ] (fun () -> LoraConfig.FromJson(JsonNode.Parse(json).AsObject(), "spec.json") |> ignore)
                Expect.equal e.Field field $"{json}: the field" }

        test "SVD factors are U_r√S_r and √S_r V_rᵀ; the error is the discarded singular values' energy (Eckart–Young), the best any rank r reaches" {
            let w = decaying 12 9
            let s = sigmas w
            let f = FormatBudget.SvdFactorization(12, 9)
            use full = MpoDecomposer.Decompose(w, f)
            for r in [ 1; 3; 5 ] do
                use cut = full.TruncateMeasured(TruncationSpec.MaxBond r, w)
                let rowFactor = cut.Mpo.Cores.[0].reshape(12L, int64 r)
                let colFactor = cut.Mpo.Cores.[1].reshape(int64 r, 9L)
                let diag = torch.diag(torch.tensor(Array.sub s 0 r, dtype = torch.float64))
                Expect.isLessThan (relativeError (rowFactor.t().matmul rowFactor) diag) 1e-10 $"r={r}: (U√S)ᵀ(U√S) = S"
                Expect.isLessThan (relativeError (colFactor.matmul(colFactor.t())) diag) 1e-10 $"r={r}: (√S Vᵀ)(√S Vᵀ)ᵀ = S"
                expectClose 1e-9 cut.Report.ActualError.Value (tail s r) $"r={r}: ‖W − W_r‖ = √(Σ_{{i>r}} σ_i²)"
                expectClose 1e-9 cut.Report.ErrorBound (tail s r) $"r={r}: the reported bound is that energy"
                // any other rank-r matrix does worse: a perturbed factor pair
                let other = (rowFactor + gaussian (20 + r) [ 12L; int64 r ] torch.float64 * 0.01).matmul colFactor
                Expect.isGreaterThan ((w - other).norm().item<float>()) (tail s r) $"r={r}: Eckart–Young" }

        test "SVD tuner on BERT: rank from a budget (SvdRank), per-target error = discarded energy of the pre-trained weight, r·(rows + cols) per target, merge = SVD model" {
            use model = loadFixture "BertForSequenceClassification" None
            let inputs = batchFor model
            let weights =
                dict [ for struct (n, p) in model.named_parameters () do
                         if n.EndsWith "query.weight" || n.EndsWith "value.weight" || n.EndsWith "intermediate.dense.weight" then
                             yield n.Replace(".weight", ""), p.detach().clone() ]
            let totalBefore = ParameterCounting.Count(model).Total
            // query/value are 32 x 32, the FFN's input 64 x 32: 200 parameters give ranks 3 and 2
            let tuner = SvdTuner(SvdTunerConfig(TargetModules = [| "query"; "value"; "ffn_in" |], Budget = 200L))
            use tuned = tuner.Apply model
            Expect.equal tuned.Targets.Count 6 "query, value, FFN input in two layers"
            let mutable factors = 0L
            for t in tuned.Targets do
                let expectedRank = if t.Family = MpoFamilies.FfnIn then 2 else 3
                Expect.equal (FormatBudget.SvdRank(t.Factorization.Rows, t.Factorization.Cols, 200L)) expectedRank $"{t.Path}: floor(200 / (rows + cols))"
                Expect.equal t.Bonds.[1] expectedRank $"{t.Path}: bond = rank"
                let s = sigmas weights.[t.Path]
                expectClose 1e-6 t.Report.ActualError.Value (tail s expectedRank) $"{t.Path}: error = discarded energy"
                factors <- factors + int64 expectedRank * int64 (t.Factorization.Rows + t.Factorization.Cols)
                Expect.isTrue ((tuned.Layer t).CentralTrainable) $"{t.Path}: both factors train"
            let dense = weights.Values |> Seq.sumBy (fun w -> w.numel ())
            Expect.equal (tuned.Count().Total) (totalBefore - dense + factors) "each matrix replaced by r·(rows + cols) factor entries"
            train model torch.float64
            use svd = logits model inputs
            let merged = tuned.Merge()
            Expect.isLessThan (relativeError (logits merged inputs) svd) 1e-10 "merged = SVD model"
            let query = merged.named_parameters () |> Seq.find (fun struct (n, _) -> n.EndsWith "layer.0.attention.self.query.weight") |> fun struct (_, p) -> p
            Expect.isLessThan (sigmas query).[3] 1e-10 "the merged query has rank 3"
            throwsWith<ArgumentException> [ "budget"; "allow no rank"; "query" ] (fun () ->
                use fresh = loadFixture "BertForSequenceClassification" None
                SvdTuner(SvdTunerConfig(TargetModules = [| "query" |], Budget = 10L)).Apply fresh |> ignore) |> ignore
            throwsWith<InvalidTunerConfigException> [ "rank"; "exactly one" ] (fun () -> SvdTunerConfig.FromJson(JsonNode.Parse("""{"target_modules": ["query"]}""").AsObject(), "s") |> ignore) |> ignore }

        test "last k layers on BERT-base from its configuration alone: MPOP Table 5's #Pr, 45.7 M / 38.6 M / 31.5 M for BERT_10-12 / 11-12 / 12" {
            // hand count: embeddings 23,837,184; a layer 7,087,872; pooler 590,592; a two-label classifier 1,538
            for k, expected in [ 3, 45_692_930L; 2, 38_605_058L; 1, 31_517_186L ] do
                let count = ParameterCounting.FromConfig(bertBase (), "BertForSequenceClassification", [ LastLayersTuner(LastLayersConfig(Layers = k)) :> IStructuralTuner ])
                Expect.equal count.Parameters.Trainable expected $"k={k}"
                Expect.equal count.Parameters.Total 109_483_778L "all of BERT-base"
                Expect.equal (Math.Round(float expected / 1e6, 1)) ([ 45.7; 38.6; 31.5 ].[3 - k]) "Table 5, as printed" }

        test "last k layers on every family: exactly the last k layers (of each T5 stack), the top and the head train; the optimizer holds state for them only" {
            let cases =
                [ "BertForSequenceClassification", 1, [ "bert.encoder.layer.1."; "bert.pooler."; "classifier." ]
                  "DistilBertForSequenceClassification", 1, [ "distilbert.transformer.layer.1."; "pre_classifier."; "classifier." ]
                  "AlbertForSequenceClassification", 1, [ "albert.encoder.albert_layer_groups.1."; "albert.pooler."; "classifier." ]
                  "GPT2ForSequenceClassification", 2, [ "transformer.h.0."; "transformer.h.1."; "transformer.ln_f."; "score." ]
                  "T5ForConditionalGeneration", 1, [ "encoder.block.1."; "decoder.block.2."; "encoder.final_layer_norm."; "decoder.final_layer_norm." ] ]
            for name, k, prefixes in cases do
                use model = loadFixture name None
                LastLayersTuner(LastLayersConfig(Layers = k, TrainEmbeddings = false)).Apply model |> ignore
                for struct (n, p) in model.named_parameters () do
                    Expect.equal p.requires_grad (prefixes |> List.exists n.StartsWith) $"{name}: {n}"
                let trainable = model.parameters () |> Seq.filter (fun p -> p.requires_grad) |> Seq.sumBy (fun p -> p.numel ())
                let groups = ParameterGroups.Build(model, 1e-3, 0.01)
                Expect.equal (groups |> Seq.sumBy (fun g -> g.Parameters |> Seq.sumBy (fun struct (_, p) -> p.numel ()))) trainable $"{name}: optimizer groups = trainable"
            use bert = loadFixture "BertForSequenceClassification" None
            throwsWith<ArgumentException> [ "layers"; "3"; "only 2" ] (fun () -> LastLayersTuner(LastLayersConfig(Layers = 3)).Apply bert |> ignore) |> ignore }
    ]
