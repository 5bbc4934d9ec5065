module Mpo.Core.Tests.Gpt2Tests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Layers
open Mpo.Models
open Mpo.Tuning
open Mpo.Models.Blocks
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.DecoderFixtures

let architecture = "GPT2LMHeadModel"

let batch () =
    let d = io architecture
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], Labels = d.["labels"]), d

/// config.json of the fixture with one key replaced.
let configWith (key: string) (value: JsonNode) =
    let json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder architecture, "config.json"))).AsObject()
    json.[key] <- value
    json

[<Tests>]
let tests =
    testSequenced <| testList "Models.Gpt2" [
        test "float32 logits, last hidden state and loss match the reference" {
            let model, report = load architecture null
            Expect.equal report.CheckpointArchitecture architecture "same class"
            Expect.isEmpty report.NewlyInitialized "nothing fresh"
            let inputs, d = batch ()
            let out = model.forward inputs
            for name, actual in [ "logits", out.Logits; "hidden", out.LastHiddenState ] do
                expectRelative 1e-5 actual d.[$"f64.{name}"] $"{name} vs float64 reference"
                expectRelative 1e-6 actual d.[$"f32.{name}"] $"{name} vs float32 reference"
            expectClose 1e-6 (out.Loss.item<float32>() |> float) (d.["f64.loss"].item<float>()) "loss" }

        test "float64: logits, hidden state and loss to 1e-12" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, d = batch ()
            let out = model.forward inputs
            expectRelative 1e-12 out.Logits d.["f64.logits"] "logits"
            expectRelative 1e-12 out.LastHiddenState d.["f64.hidden"] "hidden"
            expectClose 1e-12 (out.Loss.item<float>()) (d.["f64.loss"].item<float>()) "loss" }

        test "loss is next-token cross-entropy with -100 ignored (independent recomputation from the logits)" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, d = batch ()
            let out = model.forward inputs
            let logp = torch.nn.functional.log_softmax(out.Logits, -1L)
            let labels = d.["labels"]
            let mutable total, count = 0.0, 0
            for b in 0L .. 1L do
                for t in 0L .. labels.shape.[1] - 2L do
                    let y = labels.[b, t + 1L].item<int64>()
                    if y <> -100L then
                        total <- total - logp.[b, t, y].item<float>()
                        count <- count + 1
            Expect.equal count 11 "8 + 3 scored positions (row 1 padded after 5)"
            expectClose 1e-12 (out.Loss.item<float>()) (total / float count) "mean NLL" }

        test "GPT2Model loads the LM checkpoint's body and returns its last hidden state" {
            let model, report = load architecture "GPT2Model"
            Expect.equal report.CheckpointArchitecture architecture "checkpoint class"
            Expect.isEmpty report.Dropped "the tied head has no tensor to drop"
            Expect.isTrue (model.state_dict().ContainsKey "wte.weight") "no 'transformer.' prefix in the bare model"
            let inputs, d = batch ()
            let out = model.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask))
            expectRelative 1e-5 out.LastHiddenState d.["f64.hidden"] "hidden" }

        test "load → save → load is bitwise; the tied lm_head and legacy buffers are not saved" {
            inTemp (fun dir ->
                let model, _ = load architecture null
                model.Save dir
                let names = savedNames dir
                Expect.isFalse (names.Contains "lm_head.weight") "tied head left out"
                Expect.isTrue (names.Contains "transformer.h.1.attn.c_attn.weight") "HF names"
                Expect.isFalse (names |> Set.exists (fun n -> n.EndsWith ".attn.bias" || n.EndsWith "masked_bias")) "no mask buffers"
                use ckpt = CheckpointFolder.Open dir
                Expect.sequenceEqual (ckpt.Info("transformer.h.0.attn.c_attn.weight").Shape) [| 32L; 96L |] "Conv1D keeps [in, out]"
                let struct (again, _) = PretrainedModel.Load dir
                expectSameState model again
                use fixture = CheckpointFolder.Open(folder architecture)
                Expect.equal names (Set.ofSeq fixture.TensorNames) "the names the reference wrote") }

        test "a checkpoint with lm_head.weight and HF's legacy attn.bias / masked_bias buffers loads and gives the same logits" {
            inTemp (fun dir ->
                editedCopy architecture (fun t ->
                    t.["lm_head.weight"] <- t.["transformer.wte.weight"].clone()
                    t.["transformer.h.0.attn.bias"] <- torch.ones(1L, 1L, 24L, 24L, dtype = torch.uint8).tril()
                    t.["transformer.h.0.attn.masked_bias"] <- torch.tensor(-1e4f)) dir
                let struct (model, _) = PretrainedModel.Load dir
                model.eval()
                let inputs, d = batch ()
                expectRelative 1e-5 (model.forward inputs).Logits d.["f64.logits"] "logits") }

        test "a checkpoint without the 'transformer.' prefix (as the hub's gpt2 stores it) loads into the LM head" {
            inTemp (fun dir ->
                editedCopy architecture (fun t ->
                    for name in List.ofSeq t.Keys do
                        let value = t.[name]
                        t.Remove name |> ignore
                        t.[name.Substring "transformer.".Length] <- value) dir
                Expect.isTrue (savedNames dir |> Set.contains "h.0.attn.c_attn.weight") "prefix-less names"
                let struct (model, _) = PretrainedModel.Load dir
                model.eval()
                let inputs, d = batch ()
                expectRelative 1e-5 (model.forward inputs).Logits d.["f64.logits"] "logits") }

        test "strict load names every missing, unexpected and mis-shaped tensor at once" {
            inTemp (fun dir ->
                editedCopy architecture (fun t ->
                    t.Remove "transformer.h.1.mlp.c_fc.bias" |> ignore
                    t.["transformer.h.0.mlp.c_gate.weight"] <- torch.zeros(2L)
                    t.["transformer.h.0.attn.c_proj.weight"] <- torch.zeros(16L, 32L)) dir
                let e = throwsWith<CheckpointMismatchException> [ "transformer.h.1.mlp.c_fc.bias"; "transformer.h.0.mlp.c_gate.weight"; "c_proj.weight" ] (fun () ->
                    PretrainedModel.Load dir |> ignore)
                Expect.sequenceEqual e.Missing [ "transformer.h.1.mlp.c_fc.bias" ] "missing"
                Expect.sequenceEqual e.Unexpected [ "transformer.h.0.mlp.c_gate.weight" ] "unexpected"
                Expect.equal e.ShapeMismatches.Count 1 "mis-shaped") }

        test "a key/value cache gives the same logits as the whole sequence, positions continuing from the cache" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, _ = batch ()
            let whole = (model.forward inputs).Logits
            use cache = (model :?> Gpt2LMHeadModel).NewCache()
            let ids, mask = inputs.InputIds, inputs.AttentionMask
            let first = (model.forward(ModelInputs(ids.narrow(1, 0, 5), AttentionMask = mask.narrow(1, 0, 5), Cache = cache))).Logits
            Expect.equal cache.Length 5L "five cached positions"
            let second = (model.forward(ModelInputs(ids.narrow(1, 5, 3), AttentionMask = mask, Cache = cache))).Logits
            Expect.equal cache.Length 8L "eight cached positions"
            expectRelative 1e-12 (torch.cat([| first; second |], 1L)) whole "prefix + continuation = whole" }

        test "dropout acts in train mode only" {
            let model, _ = load architecture null
            let inputs, d = batch ()
            model.train()
            torch.random.manual_seed 1L |> ignore
            let a = (model.forward inputs).Logits
            let b = (model.forward inputs).Logits
            Expect.isGreaterThan (relativeError a b) 1e-3 "two training passes differ"
            model.eval()
            expectRelative 1e-5 (model.forward inputs).Logits d.["f64.logits"] "eval is the reference" }

        test "gradients reach every parameter, the tied embedding through both ends" {
            let model, _ = load architecture null
            let inputs, _ = batch ()
            (model.forward inputs).Loss.backward()
            for struct (name, p) in model.named_parameters() do
                Expect.isNotNull (box p.grad) $"{name} has a gradient"
            let lm = model :?> Gpt2LMHeadModel
            // rows of wte never used as input still get a gradient through the output projection
            let used = Set.ofArray (tokens inputs.InputIds)
            let unused = [ 0L .. 95L ] |> List.find (fun i -> not (used.Contains i))
            Expect.isGreaterThan ((EmbeddingTable.Of lm.transformer.wte).grad.[unused].abs().sum().item<float32>()) 0.0f "head gradient on an unused row" }

        test "token ids, sequence length, masks, labels and token types are checked with the argument's name" {
            let model, _ = load architecture null
            let ids = torch.tensor([| 1L; 96L |]).reshape(1L, 2L)
            throwsWith<ArgumentException> [ "input_ids"; "0..95"; "96" ] (fun () -> model.forward(ModelInputs ids) |> ignore) |> ignore
            let long = torch.zeros(1L, 25L, dtype = torch.int64)
            throwsWith<ArgumentException> [ "input_ids"; "n_positions = 24"; "25" ] (fun () -> model.forward(ModelInputs long) |> ignore) |> ignore
            let ok = torch.zeros(2L, 4L, dtype = torch.int64)
            throwsWith<ArgumentException> [ "attention_mask"; "[2,4]" ] (fun () ->
                model.forward(ModelInputs(ok, AttentionMask = torch.ones(2L, 3L))) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "labels"; "-100" ] (fun () ->
                model.forward(ModelInputs(ok, Labels = torch.ones(2L, 4L, dtype = torch.int64).mul(200L.ToScalar()))) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "token_type_ids" ] (fun () ->
                model.forward(ModelInputs(ok, TokenTypeIds = ok)) |> ignore) |> ignore }

        test "config errors name the key: heads not dividing the width, unknown activation, cross-attention" {
            let read (json: JsonObject) = ModelRegistry.ReadConfig(json, "fixture/config.json") |> ignore
            throwsWith<InvalidModelConfigException> [ "fixture/config.json"; "'n_head'"; "n_embd = 32"; "n_head = 5" ] (fun () ->
                read (configWith "n_head" (JsonValue.Create 5))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'activation_function'"; "swiglu" ] (fun () ->
                read (configWith "activation_function" (JsonValue.Create "swiglu"))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'add_cross_attention'" ] (fun () ->
                read (configWith "add_cross_attention" (JsonValue.Create true))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'n_layer'"; "integer" ] (fun () ->
                read (configWith "n_layer" (JsonValue.Create 1.5))) |> ignore }

        test "config.json round trip keeps HF's keys and values" {
            let config = Gpt2Config(VocabSize = 50, NEmbd = 16, NLayer = 2, NHead = 4, NPositions = 12, NInner = Nullable 24,
                                    ScaleAttnByInverseLayerIdx = true, ActivationFunction = "relu", EosTokenId = Nullable 7)
            let json = config.ToJson "GPT2LMHeadModel"
            for key in [ "n_embd"; "n_layer"; "n_head"; "n_positions"; "n_inner"; "activation_function"; "resid_pdrop"; "embd_pdrop"
                         "attn_pdrop"; "layer_norm_epsilon"; "initializer_range"; "scale_attn_weights"; "scale_attn_by_inverse_layer_idx" ] do
                Expect.isTrue (json.ContainsKey key) $"writes {key}"
            let back = ModelRegistry.ReadConfig(json, "round trip") :?> Gpt2Config
            Expect.equal (back.ToJson("GPT2LMHeadModel").ToJsonString()) (json.ToJsonString()) "same config.json"
            Expect.equal (back.NInner, back.InnerSize, back.EosTokenId, back.BosTokenId) (Nullable 24, 24, Nullable 7, Nullable 50256) "values"
            let defaults = ModelRegistry.ReadConfig(JsonObject(dict [ "model_type", JsonValue.Create "gpt2" :> JsonNode; "vocab_size", JsonValue.Create 50257 ]), "defaults") :?> Gpt2Config
            Expect.equal (defaults.NEmbd, defaults.InnerSize, defaults.VocabSize, defaults.NPositions) (768, 3072, 50257, 1024) "HF defaults (gpt2)" }

        test "HF initialization: N(0, range²) weights, residual projections scaled by 1/√(2·n_layer), zero biases, unit norms" {
            torch.random.manual_seed 5L |> ignore
            let config = Gpt2Config(VocabSize = 512, NEmbd = 64, NLayer = 8, NHead = 4, NPositions = 64, InitializerRange = 0.05)
            use model = new Gpt2LMHeadModel(config)
            let state = model.state_dict()
            let std (name: string) = state.[name].std().item<float32>() |> float
            expectClose 0.05 (std "transformer.wte.weight") 0.05 "wte"
            expectClose 0.05 (std "transformer.h.3.attn.c_attn.weight") 0.05 "c_attn"
            expectClose 0.05 (std "transformer.h.3.mlp.c_fc.weight") 0.05 "c_fc"
            let scaled = 0.05 / sqrt 16.0
            expectClose 0.05 (std "transformer.h.3.attn.c_proj.weight") scaled "attn.c_proj"
            expectClose 0.05 (std "transformer.h.3.mlp.c_proj.weight") scaled "mlp.c_proj"
            Expect.equal (state.["transformer.h.3.mlp.c_fc.bias"].abs().sum().item<float32>()) 0.0f "zero bias"
            Expect.isTrue (state.["transformer.h.3.ln_2.weight"].eq(torch.tensor 1.0f).all().item<bool>()) "unit norm" }

        test "Conv1D is a linear map with its weight stored [in, out]; the Linear view and conversions agree" {
            torch.random.manual_seed 3L |> ignore
            use conv = new Conv1D(6L, 4L)
            use _ = torch.no_grad()
            conv.bias.normal_() |> ignore
            let names = conv.named_parameters() |> Seq.map (fun struct (n, p) -> n, List.ofArray p.shape) |> List.ofSeq
            Expect.equal names [ "weight", [ 6L; 4L ]; "bias", [ 4L ] ] "HF names and orientation"
            let x = gaussian 4 [ 2L; 3L; 6L ] torch.float32
            let expected = torch.matmul(x, conv.weight) + conv.bias
            expectRelative 1e-6 (conv.forward x) expected "x·W + b over [2,3,6]"
            Expect.sequenceEqual (conv.LinearWeight().shape) [| 4L; 6L |] "Linear orientation [out, in]"
            use linear = conv.ToLinear()
            expectRelative 1e-6 (linear.forward x) expected "ToLinear"
            use back = Conv1D.FromLinear linear
            Expect.isTrue (identical back.weight conv.weight) "FromLinear inverts ToLinear" }

        test "surgery: an MPO layer for c_attn (from the Linear-orientation weight) and a new module for mlp" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, d = batch ()
            let conv = ModuleSurgery.Find(model, "transformer.h.0.attn.c_attn") :?> Conv1D
            let mpo = MpoLinear.FromWeight(conv.LinearWeight(), conv.bias)
            let old = ModuleSurgery.Replace(model, "transformer.h.0.attn.c_attn", mpo)
            Expect.isTrue (obj.ReferenceEquals(old, conv)) "returns the Conv1D"
            Expect.isTrue (model.state_dict().ContainsKey "transformer.h.0.attn.c_attn.central") "MPO parameters under the HF path"
            expectRelative 1e-10 (model.forward inputs).Logits d.["f64.logits"] "full-bond MPO keeps the logits"
            // the whole MLP as a plain Sequential of Linear layers converted from the Conv1Ds
            let mlp = ModuleSurgery.Find(model, "transformer.h.1.mlp") :?> Gpt2Mlp
            let replacement =
                torch.nn.Sequential(
                    struct ("fc", (mlp.c_fc :?> Conv1D).ToLinear() :> torch.nn.Module<Tensor, Tensor>),
                    struct ("act", torch.nn.GELU(Modules.GELU.Approximate.tanh) :> torch.nn.Module<Tensor, Tensor>),
                    struct ("proj", (mlp.c_proj :?> Conv1D).ToLinear() :> torch.nn.Module<Tensor, Tensor>))
            ModuleSurgery.Replace(model, "transformer.h.1.mlp", replacement) |> ignore
            expectRelative 1e-10 (model.forward inputs).Logits d.["f64.logits"] "equivalent MLP keeps the logits"
            ModuleSurgery.Replace(model, "transformer.h.1.mlp", torch.nn.Identity()) |> ignore
            Expect.isGreaterThan (relativeError (model.forward inputs).Logits d.["f64.logits"]) 1e-3 "the block calls what is in the field" }
    ]
