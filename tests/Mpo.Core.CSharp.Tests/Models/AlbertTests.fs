module Mpo.Core.Tests.AlbertTests

open System
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Models
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ModelFixtures

let spec =
    { MaskedLm = "AlbertForMaskedLM"
      Classification = "AlbertForSequenceClassification"
      MaskedLmClass = "AlbertForMaskedLM"
      ClassificationClass = "AlbertForSequenceClassification"
      ClassificationHead = [ "albert.pooler.weight"; "albert.pooler.bias"; "classifier.weight"; "classifier.bias" ]
      MaskedLmHead =
        [ "predictions.bias"; "predictions.dense.weight"; "predictions.dense.bias"
          "predictions.LayerNorm.weight"; "predictions.LayerNorm.bias" ]
      QueryPath = "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query"
      WordEmbeddingPath = "albert.embeddings.word_embeddings"
      SomeWeight = "albert.encoder.albert_layer_groups.0.albert_layers.1.ffn.weight"
      SomeLayerNorm = "albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.weight"
      PositionIdsBuffer = "albert.embeddings.position_ids"
      WidthKey = "hidden_size"
      HeadsKey = "num_attention_heads" }

let private layerNames (model: PretrainedModel) =
    model.state_dict().Keys
    |> Seq.choose (fun k ->
        let parts = k.Split('.')
        match Array.tryFindIndex ((=) "albert_layer_groups") parts with
        | Some i -> Some (int parts.[i + 1], int parts.[i + 3])
        | None -> None)
    |> Set.ofSeq

[<Tests>]
let tests =
    testSequenced <| testList "Models.Albert" (encoderSuite spec @ [
        test "cross-layer sharing: the checkpoint holds groups × inner layers, however many layers run" {
            use scope = torch.NewDisposeScope()
            let mlm, _ = load spec.MaskedLm torch.float32
            let c = mlm.Config :?> AlbertConfig
            Expect.equal (c.NumHiddenLayers, c.NumHiddenGroups, c.InnerGroupNum) (3, 1, 2) "fixture: 3 layers, 1 group of 2"
            Expect.equal (layerNames mlm) (set [ 0, 0; 0, 1 ]) "one group, two inner layers"
            let cls, _ = load spec.Classification torch.float32
            Expect.equal (layerNames cls) (set [ 0, 0; 1, 0 ]) "two groups of one layer for four layers"
            // the same parameters applied 6 times instead of 3: same tensors, a different function
            let json = c.ToJson("AlbertForMaskedLM")
            json.["num_hidden_layers"] <- JsonValue.Create(6)
            let deeper = new AlbertForMaskedLM(ModelRegistry.ReadConfig(json, "deeper") :?> AlbertConfig)
            Expect.equal (names (deeper.state_dict())) (names (mlm.state_dict())) "depth adds no parameters" }

        test "layer i runs group int(i / (layers / groups)), HF's rule, uneven splits included" {
            let groups layers g = [ for i in 0 .. layers - 1 -> AlbertConfig(NumHiddenLayers = layers, NumHiddenGroups = g).GroupOf i ]
            Expect.equal (groups 12 1) (List.replicate 12 0) "one group"
            Expect.equal (groups 4 2) [ 0; 0; 1; 1 ] "4 / 2"
            Expect.equal (groups 6 3) [ 0; 0; 1; 1; 2; 2 ] "6 / 3"
            Expect.equal (groups 5 2) [ 0; 0; 0; 1; 1 ] "5 / 2 = 2.5 per group"
            Expect.equal (groups 3 2) [ 0; 0; 1 ] "3 / 2" }

        test "every application of a shared group uses its parameters: perturbing the second inner layer moves every output" {
            use scope = torch.NewDisposeScope()
            let d = io spec.MaskedLm
            let model, _ = load spec.MaskedLm torch.float64
            let before = model.forward(inputsOf d false).LastHiddenState
            let gain = model.state_dict().["albert.encoder.albert_layer_groups.0.albert_layers.1.full_layer_layer_norm.weight"]
            use _ = torch.no_grad()
            gain.mul_(torch.tensor(2.0, dtype = torch.float64)) |> ignore
            let after = model.forward(inputsOf d false).LastHiddenState
            // the last application ends in that LayerNorm, so a doubled gain would double the output if it ran once
            // at the end only; run three times, the change compounds and is not a plain doubling
            Expect.isGreaterThan (relativeError after before) 0.1 "output changed"
            Expect.isGreaterThan (relativeError after (before * 2.0)) 1e-3 "not just the last layer" }

        test "factorized embeddings: tables of embedding_size, mapped to the hidden width; the MLM head maps back" {
            use scope = torch.NewDisposeScope()
            let model, _ = load spec.MaskedLm torch.float32
            let state = model.state_dict()
            Expect.equal (state.["albert.embeddings.word_embeddings.weight"].shape) [| 99L; 16L |] "word table [vocab, E]"
            Expect.equal (state.["albert.embeddings.LayerNorm.weight"].shape) [| 16L |] "LayerNorm over E"
            Expect.equal (state.["albert.encoder.embedding_hidden_mapping_in.weight"].shape) [| 32L; 16L |] "E → H"
            Expect.equal (state.["predictions.dense.weight"].shape) [| 16L; 32L |] "H → E"
            Expect.equal (state.["predictions.LayerNorm.weight"].shape) [| 16L |] "head LayerNorm over E" }

        test "the bare AlbertModel loads the body of a masked-LM checkpoint; its pooler is new" {
            use scope = torch.NewDisposeScope()
            let struct (model, report) = PretrainedModel.Load(folder spec.MaskedLm, "AlbertModel")
            Expect.equal (Set.ofSeq report.NewlyInitialized) (set [ "pooler.weight"; "pooler.bias" ]) "pooler"
            Expect.equal (Set.ofSeq report.Dropped) (Set.ofList spec.MaskedLmHead) "MLM head dropped"
            model.``to``(torch.float64) |> ignore
            let d = io spec.MaskedLm
            Expect.isLessThan (relativeError (model.forward(inputsOf d false).LastHiddenState) d.["last_hidden_state_f64"]) 1e-10 "same encoder output" }

        test "an albert-base style checkpoint (AlbertForMaskedLM saved with the pooler) loads, reporting it dropped" {
            let extras = [ "albert.pooler.weight", [ 32L; 32L ]; "albert.pooler.bias", [ 32L ] ]
            let report = loadWithExtras spec.MaskedLm extras
            Expect.equal (Set.ofSeq report.Dropped) (extras |> List.map fst |> Set.ofList) "dropped"
            Expect.throwsT<Mpo.Checkpoints.CheckpointMismatchException>
                (fun () -> loadWithExtras spec.MaskedLm [ "albert.poolers.weight", [ 2L ] ] |> ignore) "other extras stay errors" }

        test "config.json keys left out take HF's AlbertConfig defaults" {
            let json = JsonObject()
            json.["model_type"] <- JsonValue.Create("albert")
            json.["vocab_size"] <- JsonValue.Create(30000)
            let c = ModelRegistry.ReadConfig(json, "config.json") :?> AlbertConfig
            Expect.equal (c.EmbeddingSize, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize) (128, 4096, 64, 16384) "sizes"
            Expect.equal (c.NumHiddenLayers, c.NumHiddenGroups, c.InnerGroupNum) (12, 1, 1) "sharing"
            Expect.equal (c.HiddenAct, c.HiddenDropoutProb, c.AttentionProbsDropoutProb, c.ClassifierDropoutProb) ("gelu_new", 0.0, 0.0, 0.1) "activation, dropout"
            Expect.equal (c.PadTokenId, c.BosTokenId, c.EosTokenId) (Nullable 0, Nullable 2, Nullable 3) "special tokens" }

        test "impossible configurations are rejected naming the key" {
            let e = throwsWith<InvalidModelConfigException> [ "hidden_size"; "num_attention_heads = 4" ]
                        (fun () -> new AlbertModel(AlbertConfig(VocabSize = 50, HiddenSize = 30, NumAttentionHeads = 4)) |> ignore)
            Expect.equal e.Key "hidden_size" "key"
            throwsWith<InvalidModelConfigException> [ "num_hidden_groups"; "0" ]
                (fun () -> new AlbertModel(AlbertConfig(VocabSize = 50, HiddenSize = 32, NumAttentionHeads = 4, NumHiddenGroups = 0)) |> ignore) |> ignore
            throwsWith<InvalidModelConfigException> [ "embedding_size" ]
                (fun () -> new AlbertModel(AlbertConfig(VocabSize = 50, HiddenSize = 32, NumAttentionHeads = 4, EmbeddingSize = 0)) |> ignore) |> ignore }
    ])
