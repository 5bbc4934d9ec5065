module Mpo.Core.Tests.BertTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Models
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ModelFixtures

let spec =
    { MaskedLm = "BertForMaskedLM"
      Classification = "BertForSequenceClassification"
      MaskedLmClass = "BertForMaskedLM"
      ClassificationClass = "BertForSequenceClassification"
      ClassificationHead = [ "bert.pooler.dense.weight"; "bert.pooler.dense.bias"; "classifier.weight"; "classifier.bias" ]
      MaskedLmHead =
        [ "cls.predictions.bias"; "cls.predictions.transform.dense.weight"; "cls.predictions.transform.dense.bias"
          "cls.predictions.transform.LayerNorm.weight"; "cls.predictions.transform.LayerNorm.bias" ]
      QueryPath = "bert.encoder.layer.0.attention.self.query"
      WordEmbeddingPath = "bert.embeddings.word_embeddings"
      SomeWeight = "bert.encoder.layer.1.attention.self.key.weight"
      SomeLayerNorm = "bert.encoder.layer.0.output.LayerNorm.weight"
      PositionIdsBuffer = "bert.embeddings.position_ids"
      WidthKey = "hidden_size"
      HeadsKey = "num_attention_heads" }

[<Tests>]
let tests =
    testSequenced <| testList "Models.Bert" (encoderSuite spec @ [
        fixtureTests "BertForSequenceClassification-regression"

        test "one label is regression: MSE against float targets, as HF" {
            use scope = torch.NewDisposeScope()
            let d = io "BertForSequenceClassification-regression"
            let model, _ = load "BertForSequenceClassification-regression" torch.float64
            Expect.isTrue model.Config.IsRegression "inferred from num_labels = 1"
            let out = model.forward(inputsOf d true)
            Expect.equal out.Logits.shape [| 3L; 1L |] "[batch, 1]"
            let mse = (out.Logits.squeeze(1L) - d.["labels"].``to``(torch.float64)).square().mean()
            Expect.isLessThan (relativeError out.Loss mse) 1e-14 "mean squared error" }

        test "float multi-hot labels give HF's multi-label loss (BCE with logits)" {
            use scope = torch.NewDisposeScope()
            let d = io spec.Classification
            let model, _ = load spec.Classification torch.float64
            let out = model.forward(ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], TokenTypeIds = d.["token_type_ids"],
                                                Labels = d.["multi_labels"]))
            Expect.isLessThan (relativeError out.Loss d.["loss_multi_label_f64"]) 1e-12 "matches the reference" }

        test "token_type_ids are used, default to zeros, and are range-checked" {
            use scope = torch.NewDisposeScope()
            let d = io spec.Classification
            let model, _ = load spec.Classification torch.float32
            let withTypes = model.forward(inputsOf d false).Logits
            let without = model.forward(ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"])).Logits
            let zeros = model.forward(ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], TokenTypeIds = torch.zeros_like(d.["input_ids"]))).Logits
            Expect.isTrue (bitwiseEqual without zeros) "absent = zeros"
            Expect.isGreaterThan (relativeError without withTypes) 1e-3 "segments change the output"
            let types = d.["token_type_ids"].clone()
            types.[1L, 1L] <- torch.tensor(2L)
            throwsWith<ArgumentException> [ "token_type_ids"; "0..1"; "type_vocab_size" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"], TokenTypeIds = types)) |> ignore) |> ignore }

        test "the bare BertModel loads the body of a masked-LM checkpoint; its pooler is new" {
            use scope = torch.NewDisposeScope()
            let struct (model, report) = PretrainedModel.Load(folder spec.MaskedLm, "BertModel")
            Expect.equal (Set.ofSeq report.NewlyInitialized) (set [ "pooler.dense.weight"; "pooler.dense.bias" ]) "pooler"
            Expect.equal (Set.ofSeq report.Dropped) (Set.ofList spec.MaskedLmHead) "MLM head dropped"
            Expect.isTrue (model.state_dict().ContainsKey "encoder.layer.0.attention.self.query.weight") "no prefix on the bare body"
            model.``to``(torch.float64) |> ignore
            let d = io spec.MaskedLm
            let out = model.forward(inputsOf d false)
            Expect.isLessThan (relativeError out.LastHiddenState d.["last_hidden_state_f64"]) 1e-10 "same encoder output"
            Expect.isTrue (obj.ReferenceEquals(out.Logits, out.LastHiddenState)) "logits of the bare model = hidden state" }

        test "a bert-base style checkpoint (BertForMaskedLM saved with BertForPreTraining's pooler and NSP head) loads, reporting them dropped" {
            let extras = [ "bert.pooler.dense.weight", [ 32L; 32L ]; "bert.pooler.dense.bias", [ 32L ]
                           "cls.seq_relationship.weight", [ 2L; 32L ]; "cls.seq_relationship.bias", [ 2L ] ]
            let report = loadWithExtras spec.MaskedLm extras
            Expect.equal (Set.ofSeq report.Dropped) (extras |> List.map fst |> Set.ofList) "dropped, as HF's unused-weights warning"
            Expect.isEmpty report.NewlyInitialized "nothing new"
            Expect.throwsT<Mpo.Checkpoints.CheckpointMismatchException>
                (fun () -> loadWithExtras spec.MaskedLm [ "cls.seq_relationship_typo.weight", [ 2L ] ] |> ignore) "other extras stay errors" }

        test "config.json keys left out take HF's BertConfig defaults" {
            let json = JsonObject()
            json.["model_type"] <- JsonValue.Create("bert")
            json.["vocab_size"] <- JsonValue.Create(30522)
            let c = ModelRegistry.ReadConfig(json, "config.json") :?> BertConfig
            Expect.equal (c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize) (768, 12, 12, 3072) "sizes"
            Expect.equal (c.HiddenAct, c.HiddenDropoutProb, c.AttentionProbsDropoutProb) ("gelu", 0.1, 0.1) "activation, dropout"
            Expect.equal (c.MaxPositionEmbeddings, c.TypeVocabSize, c.LayerNormEps, c.InitializerRange) (512, 2, 1e-12, 0.02) "tables, eps"
            Expect.equal (c.PadTokenId, c.ClassifierDropout, c.NumLabels) (Nullable 0, Nullable(), 2) "pad, classifier dropout, labels" }

        test "impossible configurations are rejected at construction, naming the key" {
            let e = throwsWith<InvalidModelConfigException> [ "hidden_size"; "num_attention_heads = 4"; "30" ]
                        (fun () -> new BertForMaskedLM(BertConfig(VocabSize = 50, HiddenSize = 30, NumAttentionHeads = 4)) |> ignore)
            Expect.equal e.Key "hidden_size" "key"
            throwsWith<InvalidModelConfigException> [ "position_embedding_type"; "relative_key" ]
                (fun () -> new BertModel(BertConfig(VocabSize = 50, PositionEmbeddingType = "relative_key")) |> ignore) |> ignore
            throwsWith<InvalidModelConfigException> [ "hidden_act"; "swishy" ]
                (fun () -> new BertModel(BertConfig(VocabSize = 50, HiddenAct = "swishy")) |> ignore) |> ignore
            throwsWith<InvalidModelConfigException> [ "hidden_dropout_prob"; "1.5" ]
                (fun () -> new BertModel(BertConfig(VocabSize = 50, HiddenDropoutProb = 1.5)) |> ignore) |> ignore }

        test "fresh models start from HF's initialization" {
            use scope = torch.NewDisposeScope()
            torch.random.manual_seed(7L) |> ignore
            let config = BertConfig(VocabSize = 500, HiddenSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 128,
                                    MaxPositionEmbeddings = 64, InitializerRange = 0.05)
            let model = new BertForMaskedLM(config)
            let state = model.state_dict()
            let mutable matrices = []
            for KeyValue(name, t) in state do
                if name.Contains "LayerNorm.weight" then Expect.isTrue (allEqual 1.0 t) $"{name} = 1"
                elif name.EndsWith ".bias" then Expect.isTrue (allEqual 0.0 t) $"{name} = 0"
                else
                    matrices <- t.flatten() :: matrices
                    if t.numel() >= 4000L then expectClose 0.1 (float (t.std().item<float32>())) 0.05 $"{name}: std = initializer_range"
            let all = torch.cat(List.toArray matrices)
            expectClose 0.02 (float (all.std().item<float32>())) 0.05 "all weights: std = initializer_range"
            expectClose 0.002 (float (all.mean().item<float32>())) 0.0 "mean 0"
            let word = state.["bert.embeddings.word_embeddings.weight"]
            Expect.isTrue (allEqual 0.0 (word.select(0, 0L))) "the padding row is zero"
            Expect.isTrue (model.training) "a fresh model trains (dropout on), as in PyTorch" }
    ])
