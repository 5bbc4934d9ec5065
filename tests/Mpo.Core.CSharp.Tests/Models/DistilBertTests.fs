module Mpo.Core.Tests.DistilBertTests

open System
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Models
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ModelFixtures

let spec =
    { MaskedLm = "DistilBertForMaskedLM"
      Classification = "DistilBertForSequenceClassification"
      MaskedLmClass = "DistilBertForMaskedLM"
      ClassificationClass = "DistilBertForSequenceClassification"
      ClassificationHead = [ "pre_classifier.weight"; "pre_classifier.bias"; "classifier.weight"; "classifier.bias" ]
      MaskedLmHead =
        [ "vocab_transform.weight"; "vocab_transform.bias"; "vocab_layer_norm.weight"; "vocab_layer_norm.bias"
          "vocab_projector.bias" ]
      QueryPath = "distilbert.transformer.layer.0.attention.q_lin"
      WordEmbeddingPath = "distilbert.embeddings.word_embeddings"
      SomeWeight = "distilbert.transformer.layer.1.ffn.lin1.weight"
      SomeLayerNorm = "distilbert.transformer.layer.0.sa_layer_norm.weight"
      PositionIdsBuffer = "distilbert.embeddings.position_ids"
      WidthKey = "dim"
      HeadsKey = "n_heads" }

[<Tests>]
let tests =
    testSequenced <| testList "Models.DistilBert" (encoderSuite spec @ [
        test "DistilBERT has no token types: token_type_ids are refused, naming the argument" {
            use scope = torch.NewDisposeScope()
            let d = io spec.MaskedLm
            let model, _ = load spec.MaskedLm torch.float32
            Expect.isFalse (names (model.state_dict()) |> Set.exists (fun n -> n.Contains "token_type")) "no token type table"
            throwsWith<ArgumentException> [ "token_type_ids" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"], TokenTypeIds = torch.zeros_like(d.["input_ids"]))) |> ignore) |> ignore }

        test "sinusoidal_pos_embds: the position table is sin/cos of pos / 10000^(2⌊j/2⌋/dim) and does not train" {
            use scope = torch.NewDisposeScope()
            let config = DistilBertConfig(VocabSize = 20, Dim = 8, NHeads = 2, NLayers = 1, HiddenDim = 16, MaxPositionEmbeddings = 6,
                                          SinusoidalPosEmbds = true)
            let model = new DistilBertModel(config)
            let table = model.state_dict().["embeddings.position_embeddings.weight"]
            for pos in 0 .. 5 do
                for j in 0 .. 7 do
                    let angle = float pos / Math.Pow(10000.0, float (2 * (j / 2)) / 8.0)
                    let expected = if j % 2 = 0 then sin angle else cos angle
                    expectClose 1e-6 (float (table.[int64 pos, int64 j].item<float32>())) expected $"[{pos},{j}]"
            Expect.isFalse table.requires_grad "frozen"
            Expect.isTrue (model.state_dict().["embeddings.word_embeddings.weight"].requires_grad) "the word table trains" }

        test "the bare DistilBertModel loads a masked-LM checkpoint's body and nothing is new" {
            use scope = torch.NewDisposeScope()
            let struct (model, report) = PretrainedModel.Load(folder spec.MaskedLm, "DistilBertModel")
            Expect.isEmpty report.NewlyInitialized "no pooler in DistilBERT"
            Expect.equal (Set.ofSeq report.Dropped) (Set.ofList spec.MaskedLmHead) "MLM head dropped"
            model.``to``(torch.float64) |> ignore
            let d = io spec.MaskedLm
            Expect.isLessThan (relativeError (model.forward(inputsOf d false).LastHiddenState) d.["last_hidden_state_f64"]) 1e-10 "same encoder output" }

        test "config.json keys left out take HF's DistilBertConfig defaults" {
            let json = JsonObject()
            json.["model_type"] <- JsonValue.Create("distilbert")
            json.["vocab_size"] <- JsonValue.Create(30522)
            let c = ModelRegistry.ReadConfig(json, "config.json") :?> DistilBertConfig
            Expect.equal (c.Dim, c.NLayers, c.NHeads, c.HiddenDim, c.MaxPositionEmbeddings) (768, 6, 12, 3072, 512) "sizes"
            Expect.equal (c.Activation, c.Dropout, c.AttentionDropout, c.SeqClassifDropout) ("gelu", 0.1, 0.1, 0.2) "activation, dropout"
            Expect.equal (c.SinusoidalPosEmbds, c.PadTokenId) (false, Nullable 0) "learned positions, pad 0" }

        test "impossible configurations are rejected naming the key" {
            let e = throwsWith<InvalidModelConfigException> [ "dim"; "n_heads = 4"; "30" ]
                        (fun () -> new DistilBertModel(DistilBertConfig(VocabSize = 50, Dim = 30, NHeads = 4)) |> ignore)
            Expect.equal e.Key "dim" "key"
            throwsWith<InvalidModelConfigException> [ "activation"; "tanh" ]
                (fun () -> new DistilBertModel(DistilBertConfig(VocabSize = 50, Activation = "tanh")) |> ignore) |> ignore }
    ])
