module Mpo.Core.Tests.T5Tests

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

let architecture = "T5ForConditionalGeneration"

let batch () =
    let d = io architecture
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], Labels = d.["labels"]), d

let configWith (key: string) (value: JsonNode) =
    let json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder architecture, "config.json"))).AsObject()
    json.[key] <- value
    json

let buckets (relative: int64 list) bidirectional numBuckets maxDistance =
    use r = torch.tensor(Array.ofList relative)
    tokens (RelativePositionBuckets.Bucket(r, bidirectional, numBuckets, maxDistance)) |> List.ofArray

[<Tests>]
let tests =
    testSequenced <| testList "Models.T5" [
        test "float32 logits, decoder and encoder hidden states and loss match the reference" {
            let model, report = load architecture null
            Expect.equal report.CheckpointArchitecture architecture "same class"
            let inputs, d = batch ()
            let out = model.forward inputs
            for name, actual in [ "logits", out.Logits; "hidden", out.LastHiddenState; "encoder_hidden", out.EncoderLastHiddenState ] do
                expectRelative 1e-5 actual d.[$"f64.{name}"] $"{name} vs float64 reference"
                expectRelative 1e-6 actual d.[$"f32.{name}"] $"{name} vs float32 reference"
            expectClose 1e-6 (out.Loss.item<float32>() |> float) (d.["f64.loss"].item<float>()) "loss" }

        test "float64: logits, hidden states and loss to 1e-12" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, d = batch ()
            let out = model.forward inputs
            expectRelative 1e-12 out.Logits d.["f64.logits"] "logits"
            expectRelative 1e-12 out.LastHiddenState d.["f64.hidden"] "decoder hidden"
            expectRelative 1e-12 out.EncoderLastHiddenState d.["f64.encoder_hidden"] "encoder hidden"
            expectClose 1e-12 (out.Loss.item<float>()) (d.["f64.loss"].item<float>()) "loss" }

        test "labels shift right into the decoder input (start token first, -100 → pad); explicit decoder ids give the same outputs" {
            let model, _ = load architecture null
            let t5 = model :?> T5ForConditionalGeneration
            let inputs, d = batch ()
            let shifted = t5.ShiftRight d.["labels"]
            Expect.sequenceEqual (tokens shifted) (tokens d.["decoder_input_ids"]) "reference shift"
            Expect.sequenceEqual (tokens (T5PreTrainedModel.ShiftRight(torch.tensor([| 5L; -100L; 7L |]).reshape(1L, 3L), 2, 0))) [| 2L; 5L; 0L |] "by hand"
            let viaLabels = model.forward inputs
            let explicitIds = model.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, DecoderInputIds = shifted, Labels = d.["labels"]))
            Expect.isTrue (identical viaLabels.Logits explicitIds.Logits) "same logits"
            Expect.isTrue (identical viaLabels.Loss explicitIds.Loss) "same loss" }

        test "T5Model and T5EncoderModel load the same checkpoint; the encoder model drops the decoder and says so" {
            let inputs, d = batch ()
            let bare, report = load architecture "T5Model"
            Expect.isEmpty report.Dropped "T5Model uses every tensor"
            let out = bare.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, DecoderInputIds = d.["decoder_input_ids"]))
            expectRelative 1e-5 out.LastHiddenState d.["f64.hidden"] "decoder hidden"
            expectRelative 1e-5 out.EncoderLastHiddenState d.["f64.encoder_hidden"] "encoder hidden"
            let encoder, report = load architecture "T5EncoderModel"
            Expect.isNonEmpty report.Dropped "decoder tensors dropped"
            Expect.isTrue (report.Dropped |> Seq.forall (fun n -> n.StartsWith "decoder.")) "only decoder tensors"
            expectRelative 1e-5 (encoder.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask))).LastHiddenState d.["f64.encoder_hidden"] "encoder only" }

        test "load → save → load is bitwise; shared is saved once, the tied copies never" {
            inTemp (fun dir ->
                let model, _ = load architecture null
                model.Save dir
                let names = savedNames dir
                for tied in [ "lm_head.weight"; "encoder.embed_tokens.weight"; "decoder.embed_tokens.weight" ] do
                    Expect.isFalse (names.Contains tied) $"{tied} left out"
                Expect.isTrue (names.Contains "shared.weight") "shared"
                Expect.isTrue (names.Contains "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight") "block 0's bias"
                Expect.isFalse (names.Contains "decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") "no bias in later blocks"
                Expect.isTrue (names.Contains "decoder.block.2.layer.2.DenseReluDense.wo.weight") "decoder FFN at layer.2"
                use fixture = CheckpointFolder.Open(folder architecture)
                Expect.equal names (Set.ofSeq fixture.TensorNames) "the names the reference wrote"
                let struct (again, _) = PretrainedModel.Load dir
                expectSameState model again) }

        test "a checkpoint holding the tied copies (older HF) loads and gives the same logits" {
            inTemp (fun dir ->
                editedCopy architecture (fun t ->
                    for copy in [ "lm_head.weight"; "encoder.embed_tokens.weight"; "decoder.embed_tokens.weight" ] do
                        t.[copy] <- t.["shared.weight"].clone()) dir
                let struct (model, _) = PretrainedModel.Load dir
                model.eval()
                let inputs, d = batch ()
                expectRelative 1e-5 (model.forward inputs).Logits d.["f64.logits"] "logits") }

        test "strict load names missing and unexpected tensors" {
            inTemp (fun dir ->
                editedCopy architecture (fun t ->
                    t.Remove "decoder.block.2.layer.1.EncDecAttention.k.weight" |> ignore
                    t.["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] <- torch.zeros(8L, 4L)) dir
                let e = throwsWith<CheckpointMismatchException> [ "decoder.block.2.layer.1.EncDecAttention.k.weight"; "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" ] (fun () ->
                    PretrainedModel.Load dir |> ignore)
                Expect.sequenceEqual e.Missing [ "decoder.block.2.layer.1.EncDecAttention.k.weight" ] "missing"
                Expect.sequenceEqual e.Unexpected [ "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" ] "unexpected") }

        test "relative position buckets against values worked out by hand" {
            let rel = [ -200L; -128L; -20L; -16L; -9L; -8L; -7L; -1L; 0L; 1L; 7L; 8L; 9L; 16L; 20L; 128L; 200L ]
            // t5-small (32 buckets, max distance 128), encoder: 16 per direction, 8 exact, then 8 + ⌊2·log2(n/8)⌋ capped at 15; keys after the query +16
            Expect.equal (buckets rel true 32 128) [ 15L; 15L; 10L; 10L; 8L; 8L; 7L; 1L; 0L; 17L; 23L; 24L; 24L; 26L; 26L; 31L; 31L ] "bidirectional"
            // decoder: 16 exact, then 16 + ⌊16·log(n/16)/log 8⌋ capped at 31; the future is bucket 0
            Expect.equal (buckets rel false 32 128) [ 31L; 31L; 17L; 16L; 9L; 8L; 7L; 1L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L; 0L ] "causal"
            // the fixture's (8 buckets, max distance 6): encoder 2 exact per side, 2 + ⌊2·log(n/2)/log 3⌋ capped at 3
            Expect.equal (buckets [ -5L .. 5L ] true 8 6) [ 3L; 3L; 2L; 2L; 1L; 0L; 5L; 6L; 6L; 7L; 7L ] "fixture encoder (saturates at |n| ≥ 4)"
            // decoder 4 exact, 4 + ⌊4·log(n/4)/log 1.5⌋ capped at 7
            Expect.equal (buckets [ -7L .. 2L ] false 8 6) [ 7L; 7L; 6L; 4L; 3L; 2L; 1L; 0L; 0L; 0L ] "fixture decoder (saturates at n ≥ 6)"
            throwsWith<ArgumentException> [ "maxDistance" ] (fun () -> buckets [ 1L ] false 8 4 |> ignore) |> ignore }

        test "incremental decoding with a cache equals the whole decoder sequence" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let t5 = model :?> T5ForConditionalGeneration
            let inputs, d = batch ()
            let decoderIds = d.["decoder_input_ids"]
            let whole = (model.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, DecoderInputIds = decoderIds))).Logits
            let encoded = t5.Encode(inputs.InputIds, inputs.AttentionMask)
            use cache = t5.NewCache()
            let steps =
                [| for t in 0L .. decoderIds.shape.[1] - 1L ->
                    (model.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, DecoderInputIds = decoderIds.narrow(1, t, 1L),
                                               Cache = cache, EncoderHiddenState = encoded))).Logits |]
            Expect.equal cache.Length decoderIds.shape.[1] "every position cached"
            expectRelative 1e-12 (torch.cat(steps, 1L)) whole "step by step = whole" }

        test "dropout acts in train mode only" {
            let model, _ = load architecture null
            let inputs, d = batch ()
            model.train()
            torch.random.manual_seed 2L |> ignore
            let a = (model.forward inputs).Logits
            let b = (model.forward inputs).Logits
            Expect.isGreaterThan (relativeError a b) 1e-3 "two training passes differ"
            model.eval()
            expectRelative 1e-5 (model.forward inputs).Logits d.["f64.logits"] "eval is the reference" }

        test "inputs are checked with the argument's name" {
            let model, _ = load architecture null
            let ok = torch.ones(1L, 3L, dtype = torch.int64)
            let bad = torch.tensor([| 1L; 96L |]).reshape(1L, 2L)
            throwsWith<ArgumentException> [ "input_ids"; "0..95" ] (fun () -> model.forward(ModelInputs(bad, DecoderInputIds = ok)) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "decoder_input_ids"; "0..95" ] (fun () -> model.forward(ModelInputs(ok, DecoderInputIds = bad)) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "decoder_input_ids"; "labels" ] (fun () -> model.forward(ModelInputs ok) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "labels"; "-100" ] (fun () -> model.forward(ModelInputs(ok, Labels = torch.tensor([| 1L; -5L |]).reshape(1L, 2L))) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "attention_mask" ] (fun () -> model.forward(ModelInputs(ok, AttentionMask = torch.ones(1L, 4L), DecoderInputIds = ok)) |> ignore) |> ignore }

        test "config errors name the key; T5 v1.1 (gated FFN, untied head) is refused as such" {
            let read (json: JsonObject) = ModelRegistry.ReadConfig(json, "fixture/config.json") |> ignore
            throwsWith<InvalidModelConfigException> [ "'feed_forward_proj'"; "gated-gelu"; "T5 v1.1 is unsupported" ] (fun () ->
                read (configWith "feed_forward_proj" (JsonValue.Create "gated-gelu"))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'feed_forward_proj'"; "mish" ] (fun () ->
                read (configWith "feed_forward_proj" (JsonValue.Create "mish"))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'tie_word_embeddings'"; "T5 v1.1" ] (fun () ->
                read (configWith "tie_word_embeddings" (JsonValue.Create false))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'relative_attention_max_distance'" ] (fun () ->
                read (configWith "relative_attention_max_distance" (JsonValue.Create 4))) |> ignore
            throwsWith<InvalidModelConfigException> [ "'num_heads'" ] (fun () ->
                read (configWith "num_heads" (JsonValue.Create 0))) |> ignore }

        test "config.json round trip; num_decoder_layers defaults to num_layers, decoder start to the pad id" {
            let config = T5Config(VocabSize = 40, DModel = 16, DKv = 4, DFf = 24, NumLayers = 2, NumDecoderLayers = 3, NumHeads = 2,
                                  RelativeAttentionNumBuckets = 8, RelativeAttentionMaxDistance = 10)
            let json = config.ToJson "T5ForConditionalGeneration"
            let back = ModelRegistry.ReadConfig(json, "round trip") :?> T5Config
            Expect.equal (back.ToJson("T5ForConditionalGeneration").ToJsonString()) (json.ToJsonString()) "same config.json"
            let minimal = JsonObject(dict [ "model_type", JsonValue.Create "t5" :> JsonNode; "vocab_size", JsonValue.Create 32128
                                            "num_layers", JsonValue.Create 4; "pad_token_id", JsonValue.Create 3 ])
            let read = ModelRegistry.ReadConfig(minimal, "minimal") :?> T5Config
            Expect.equal (read.NumDecoderLayers, read.DecoderStartTokenId, read.EosTokenId, read.DModel) (4, 3, Nullable 1, 512) "HF fallbacks" }

        test "HF (Mesh TensorFlow) initialization scales" {
            torch.random.manual_seed 6L |> ignore
            let f = 0.5
            let config = T5Config(VocabSize = 300, DModel = 64, DKv = 16, DFf = 128, NumLayers = 2, NumDecoderLayers = 1, NumHeads = 4, InitializerFactor = f)
            use model = new T5ForConditionalGeneration(config)
            let state = model.state_dict()
            let std (name: string) = state.[name].std().item<float32>() |> float
            let a = "encoder.block.1.layer.0.SelfAttention."
            expectClose 0.06 (std "shared.weight") f "shared"
            expectClose 0.06 (std (a + "q.weight")) (f / sqrt (64.0 * 16.0)) "q"
            expectClose 0.06 (std (a + "k.weight")) (f / sqrt 64.0) "k"
            expectClose 0.06 (std (a + "o.weight")) (f / sqrt 64.0) "o (heads·d_kv = 64)"
            expectClose 0.06 (std "encoder.block.1.layer.1.DenseReluDense.wi.weight") (f / sqrt 64.0) "wi"
            expectClose 0.06 (std "encoder.block.1.layer.1.DenseReluDense.wo.weight") (f / sqrt 128.0) "wo"
            Expect.isTrue (state.["decoder.final_layer_norm.weight"].eq(torch.tensor(float32 f)).all().item<bool>()) "norms = factor" }

        test "surgery: an MPO layer for q and a new module for DenseReluDense" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let inputs, d = batch ()
            let path = "encoder.block.0.layer.0.SelfAttention.q"
            let q = ModuleSurgery.Find(model, path) :?> Modules.Linear
            ModuleSurgery.Replace(model, path, MpoLinear.FromLinear q) |> ignore
            expectRelative 1e-10 (model.forward inputs).Logits d.["f64.logits"] "full-bond MPO keeps the logits"
            let ffPath = "decoder.block.2.layer.2.DenseReluDense"
            let ff = ModuleSurgery.Find(model, ffPath) :?> T5DenseReluDense
            let replacement =
                torch.nn.Sequential(
                    struct ("wi", ff.wi), struct ("relu", torch.nn.ReLU() :> torch.nn.Module<Tensor, Tensor>), struct ("wo", ff.wo))
            ModuleSurgery.Replace(model, ffPath, replacement) |> ignore
            Expect.isTrue (model.state_dict().ContainsKey(ffPath + ".wo.weight")) "the replacement's names under the HF path"
            expectRelative 1e-10 (model.forward inputs).Logits d.["f64.logits"] "equivalent FFN keeps the logits"
            ModuleSurgery.Replace(model, ffPath, torch.nn.Identity()) |> ignore
            Expect.isGreaterThan (relativeError (model.forward inputs).Logits d.["f64.logits"]) 1e-3 "the layer calls what is in the field"
            // the shared table read through the stacks and the head: an MPO embedding in its place keeps the logits
            let model2, _ = load architecture null
            model2.``to``(torch.float64) |> ignore
            ModuleSurgery.Replace(model2, "shared", MpoEmbedding.FromWeight((ModuleSurgery.Find(model2, "shared") :?> Modules.Embedding).weight)) |> ignore
            expectRelative 1e-10 (model2.forward inputs).Logits d.["f64.logits"] "MPO shared embedding, tied everywhere" }
    ]
