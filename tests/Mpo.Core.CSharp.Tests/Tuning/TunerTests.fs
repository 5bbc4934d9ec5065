/// MPO as a tuner on every supported family: which modules it selects (against hand-listed paths), that full bonds
/// give the model back (logits), that tied heads stay tied, GPT-2's Conv1D orientation, merging back to a Hugging
/// Face checkpoint the ordinary loader reads, lightweight fine-tuning's groups and optimizer state, and bad input.
module Mpo.Core.Tests.TunerTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

/// A fixture model (tests/fixtures/models/<Class>) in float64, as another class when asked.
let loadFixture (name: string) (architecture: string option) =
    let folder = Mpo.Core.Tests.ModelFixtures.folder name
    let struct (model, _) = PretrainedModel.Load(folder, Option.toObj architecture)
    model.``to``(torch.float64) |> ignore
    model

/// A padded batch of two rows in the model's vocabulary (T5 gets decoder ids too).
let batchFor (model: PretrainedModel) =
    use g = new torch.Generator(7UL)
    let vocab = int64 model.Config.VocabSize
    let ids = torch.randint(1L, vocab, [| 2L; 7L |], generator = g)
    let mask = torch.tensor([| 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 0L; 0L |]).reshape(2L, 7L)
    if model.Config.ModelType = "t5" then
        ModelInputs(ids, AttentionMask = mask, DecoderInputIds = torch.randint(1L, vocab, [| 2L; 5L |], generator = g))
    else ModelInputs(ids, AttentionMask = mask)

let logits (model: PretrainedModel) (inputs: ModelInputs) =
    use _ = torch.no_grad ()
    model.eval ()
    model.forward(inputs).Logits.detach().clone()

let paths (tuned: TunedModel) = [ for t in tuned.Targets -> t.Path ]

/// Every fixture family with the module paths MPOP decomposes in it, listed by hand from the layer counts.
let families =
    let bertLayer l = [ for p in [ "attention.self.query"; "attention.self.key"; "attention.self.value"; "attention.output.dense"; "intermediate.dense"; "output.dense" ] -> $"encoder.layer.{l}.{p}" ]
    [ "BertForSequenceClassification", None,
      [ "bert.embeddings.word_embeddings" ] @ [ for l in 0 .. 1 do for p in bertLayer l -> "bert." + p ] @ [ "bert.pooler.dense" ]
      "BertForSequenceClassification", Some "BertModel",   // an imported encoder folder is a bare BertModel
      [ "embeddings.word_embeddings" ] @ [ for l in 0 .. 1 do yield! bertLayer l ] @ [ "pooler.dense" ]
      "BertForMaskedLM", None,
      [ "bert.embeddings.word_embeddings" ] @ [ for l in 0 .. 1 do for p in bertLayer l -> "bert." + p ]
      "AlbertForSequenceClassification", None,
      [ "albert.embeddings.word_embeddings" ]
      @ [ for g in 0 .. 1 do for p in [ "attention.query"; "attention.key"; "attention.value"; "attention.dense"; "ffn"; "ffn_output" ] -> $"albert.encoder.albert_layer_groups.{g}.albert_layers.0.{p}" ]
      @ [ "albert.pooler" ]
      "DistilBertForSequenceClassification", None,
      [ "distilbert.embeddings.word_embeddings" ]
      @ [ for l in 0 .. 1 do for p in [ "attention.q_lin"; "attention.k_lin"; "attention.v_lin"; "attention.out_lin"; "ffn.lin1"; "ffn.lin2" ] -> $"distilbert.transformer.layer.{l}.{p}" ]
      "GPT2LMHeadModel", None,
      [ "transformer.wte" ] @ [ for l in 0 .. 1 do for p in [ "attn.c_attn"; "attn.c_proj"; "mlp.c_fc"; "mlp.c_proj" ] -> $"transformer.h.{l}.{p}" ]
      "T5ForConditionalGeneration", None,
      [ "shared" ]
      @ [ for b in 0 .. 1 do
            yield! [ for p in [ "q"; "k"; "v"; "o" ] -> $"encoder.block.{b}.layer.0.SelfAttention.{p}" ]
            yield! [ $"encoder.block.{b}.layer.1.DenseReluDense.wi"; $"encoder.block.{b}.layer.1.DenseReluDense.wo" ] ]
      @ [ for b in 0 .. 2 do
            yield! [ for p in [ "q"; "k"; "v"; "o" ] -> $"decoder.block.{b}.layer.0.SelfAttention.{p}" ]
            yield! [ for p in [ "q"; "k"; "v"; "o" ] -> $"decoder.block.{b}.layer.1.EncDecAttention.{p}" ]
            yield! [ $"decoder.block.{b}.layer.2.DenseReluDense.wi"; $"decoder.block.{b}.layer.2.DenseReluDense.wo" ] ] ]

let mpop = MpoTuner(MpoPresets.Get "mpop")

[<Tests>]
let tests =
    testList "Tuning.Tuner" [
        for name, architecture, expected in families do
            let label = name + (architecture |> Option.map (fun a -> " as " + a) |> Option.defaultValue "")
            test $"{label}: decomposes exactly MPOP's matrices, and at full bonds gives the same logits" {
                use model = loadFixture name architecture
                let inputs = batchFor model
                use before = logits model inputs
                use tuned = mpop.Apply model
                Expect.equal (set (paths tuned)) (set expected) "the modules"
                Expect.equal (paths tuned).Length expected.Length "each once"
                for t in tuned.Targets do
                    Expect.isFalse (tuned.Layer t).Central.requires_grad $"{t.Path}: central tensor frozen (LFA)"
                    Expect.equal (List.ofArray t.Bonds) (List.ofArray (t.Factorization.FullBonds())) $"{t.Path}: full bonds"
                use after = logits model inputs
                Expect.isLessThan (relativeError after before) 1e-9 "full-rank MPOs: the same logits" }

        test "tied heads stay tied: BERT's MLM decoder, GPT-2's lm_head and T5's lm_head read the MPO embedding" {
            for name in [ "BertForMaskedLM"; "GPT2LMHeadModel"; "T5ForConditionalGeneration" ] do
                use dense = loadFixture name None
                use model = loadFixture name None
                let inputs = batchFor model
                use tuned = mpop.Apply model
                let embedding = tuned.Targets |> Seq.find (fun t -> t.Family = MpoFamilies.WordEmbedding)
                // Scaling one core scales the whole table: input lookups and the tied output head must both see it,
                // as they see a doubled table in the dense model.
                using (torch.no_grad ()) (fun _ -> (tuned.Layer embedding).Cores.[0].mul_(torch.tensor(2.0)) |> ignore)
                let table = (dense.named_parameters () |> Seq.find (fun struct (n, _) -> n.EndsWith "word_embeddings.weight" || n.EndsWith "wte.weight" || n = "shared.weight") |> fun struct (_, p) -> p)
                using (torch.no_grad ()) (fun _ -> table.mul_(torch.tensor(2.0)) |> ignore)
                Expect.isLessThan (relativeError (logits model inputs) (logits dense inputs)) 1e-9 $"{name}: both ends of the tie follow"
                Expect.isFalse (model.state_dict().Keys |> Seq.exists (fun k -> k.Contains "decoder.weight" || k = "lm_head.weight")) $"{name}: no untied copy" }

        test "GPT-2's Conv1D stores [in, out]: the MPO holds the [out, in] map and merges back into a Conv1D" {
            use model = loadFixture "GPT2LMHeadModel" None
            use tuned = mpop.Apply model
            let cAttn = tuned.Targets |> Seq.find (fun t -> t.Family = MpoFamilies.QueryKeyValue)
            Expect.equal cAttn.Kind DenseKind.Conv1D "recorded as Conv1D"
            Expect.equal (cAttn.Factorization.Rows, cAttn.Factorization.Cols) (96, 32) "rows = 3·n_embd outputs, columns = n_embd inputs"
            let merged = tuned.Merge()
            let conv = ModuleSurgery.Find(merged, cAttn.Path) :?> Mpo.Models.Blocks.Conv1D
            Expect.equal (List.ofArray conv.weight.shape) [ 32L; 96L ] "HF's [in, out] layout again" }

        test "merge: a Hugging Face folder the ordinary loader reads, whose logits equal the (truncated, trained) MPO model's" {
            for name in [ "BertForSequenceClassification"; "GPT2LMHeadModel"; "T5ForConditionalGeneration"; "AlbertForSequenceClassification"; "DistilBertForSequenceClassification" ] do
                use model = loadFixture name None
                let inputs = batchFor model
                let config = MpoTunerConfig(Truncation = readOnlyDict [ "attention", TruncationSpec.MaxBond 3 :> TruncationSpec; MpoFamilies.WordEmbedding, TruncationSpec.MaxBond 4 ])
                let tuned = MpoTuner(config).Apply model
                // "training": every auxiliary tensor moves
                using (torch.no_grad ()) (fun _ ->
                    for struct (n, p) in model.named_parameters () do
                        if MpoLayer.IsAuxiliary n then p.add_(gaussian (n.GetHashCode() &&& 0xffff) (List.ofArray p.shape) torch.float64 * 0.01) |> ignore)
                use mpoLogits = logits model inputs
                let merged = tuned.Merge()
                Mpo.Core.Tests.ModelFixtures.inTemp (fun dir ->
                    merged.Save(dir)
                    let struct (reloaded, report) = PretrainedModel.Load(dir)
                    use reloaded = reloaded
                    reloaded.``to``(torch.float64) |> ignore
                    Expect.isEmpty report.NewlyInitialized $"{name}: every tensor came from the merged folder"
                    // the ordinary loader builds float32 parameters: the float64 merged weights pass through float32
                    Expect.isLessThan (relativeError (logits reloaded inputs) mpoLogits) 1e-6 $"{name}: merged logits = MPO logits")
                merged.Dispose() }

        test "merge keeps padding_idx: the merged word embedding sends no gradient to the pad token's row" {
            use model = loadFixture "BertForSequenceClassification" None
            let tuned = mpop.Apply model
            let embedding = tuned.Targets |> Seq.find (fun t -> t.Family = MpoFamilies.WordEmbedding)
            Expect.equal embedding.PaddingIdx (Nullable 0L) "BERT's pad token (config pad_token_id 0)"
            let merged = tuned.Merge()
            let table = ModuleSurgery.Find(merged, embedding.Path) :?> Modules.Embedding
            table.forward(torch.tensor([| 0L; 5L |])).sum().backward()
            Expect.equal (table.weight.grad.select(0L, 0L).abs().sum().item<float>()) 0.0 "no gradient for the padding row"
            merged.Dispose() }

        test "lightweight fine-tuning: centrals frozen and without optimizer state, cores at mpo_lr without decay, HF's groups for the rest" {
            use model = loadFixture "BertForSequenceClassification" None
            use tuned = mpop.Apply model
            let inputs = batchFor model
            let labels = torch.tensor([| 0L; 2L |])
            let centralsBefore = [ for t in tuned.Targets -> (tuned.Layer t).Central.detach().clone() ]
            let options = TrainerOptions(LearningRate = 1e-3, WeightDecay = 0.01, MaxSteps = 3L, WarmupSteps = 0L, LoggingSteps = 1L,
                                         ParameterGroups = MpoTuner.ParameterGroupRules(Nullable 2e-4))
            let source = BatchSource.Create(1, fun _ _ -> ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, Labels = labels))
            use trainer = new Trainer<ModelInputs>(model, options, source, fun b -> LossOutput(model.forward(b).Loss))
            trainer.Run() |> ignore
            let trainable = set [ for struct (n, p) in model.named_parameters () do if p.requires_grad then yield n ]
            Expect.equal (set trainer.Optimizer.State.Keys) trainable "state for exactly the trained parameters"
            Expect.isFalse (trainable |> Set.exists MpoLayer.IsCentral) "no central tensor among them"
            let groups = dict [ for g in trainer.Optimizer.Groups -> g.Name, g ]
            let members (g: ParameterGroup) = set [ for struct (n, _) in g.Parameters -> n ]
            Expect.equal (members groups.["mpo"]) (trainable |> Set.filter MpoLayer.IsAuxiliary) "the mpo group: every auxiliary tensor"
            Expect.equal (groups.["mpo"].LearningRate, groups.["mpo"].WeightDecay) (2e-4, 0.0) "mpo_lr, no decay"
            Expect.isTrue (members groups.["default"] |> Set.forall (fun n -> n.EndsWith ".weight" && not (n.Contains "LayerNorm"))) "decayed: dense weights only"
            Expect.equal groups.["default"].WeightDecay 0.01 "the trainer's decay"
            Expect.isTrue (members groups.["default.no_decay"] |> Set.forall (fun n -> n.EndsWith "bias" || n.Contains "LayerNorm")) "no decay: biases and LayerNorms"
            Expect.equal (members groups.["default"] + members groups.["default.no_decay"] + members groups.["mpo"]) trainable "every trained parameter in one group"
            for t, before in List.zip (List.ofSeq tuned.Targets) centralsBefore do
                Expect.isTrue ((tuned.Layer t).Central.eq(before).all().item<bool>()) $"{t.Path}: central tensor bit-identical" }

        testList "bad input names the family, module, factors or field" [
            test "a family the model lacks" {
                use model = loadFixture "BertForMaskedLM" None
                throwsWith<ArgumentException> [ "'pooler'"; "matches no module" ] (fun () ->
                    MpoTuner(MpoTunerConfig(TargetModules = [| "pooler" |])).Apply(model) |> ignore) |> ignore
                throwsWith<ArgumentException> [ "gpt2"; "'query'" ] (fun () ->
                    use gpt2 = loadFixture "GPT2LMHeadModel" None
                    MpoTuner(MpoTunerConfig(TargetModules = [| "query" |])).Apply(gpt2) |> ignore) |> ignore }
            test "factors that do not fit a module" {
                use model = loadFixture "BertForSequenceClassification" None
                throwsWith<ArgumentException> [ "[6,8,10,8,8]x[4,4,4,4,3]"; "'word_embedding'"; "bert.embeddings.word_embeddings"; "[99 x 32]" ] (fun () ->
                    MpoTuner(MpoPresets.Get "mpop-bert").Apply(model) |> ignore) |> ignore
                let queries = MpoTunerConfig.FromJson(JsonNode.Parse("""{"preset": "mpop-bert", "target_modules": ["query"]}""").AsObject(), "q.json")
                throwsWith<ArgumentException> [ "[3,4,4,4,4]x[4,4,4,4,3]"; "'query'"; "bert.encoder.layer.0.attention.self.query"; "[32 x 32]" ] (fun () ->
                    MpoTuner(queries).Apply(model) |> ignore) |> ignore
                Expect.isTrue (ModuleSurgery.Find(model, "bert.embeddings.word_embeddings") :? Modules.Embedding) "nothing was swapped before the error" }
            test "tuner configuration fields" {
                let bad (json: string) (fragments: string list) =
                    throwsWith<InvalidTunerConfigException> ("config.json" :: fragments) (fun () ->
                        MpoTunerConfig.FromJson(JsonNode.Parse(json).AsObject(), "config.json") |> ignore) |> ignore
                bad """{"cores": 1}""" [ "'cores'"; "at least 2" ]
                bad """{"target_module": ["query"]}""" [ "'target_module'"; "unknown field" ]
                bad """{"target_modules": ["querry"]}""" [ "'target_modules'"; "querry" ]
                bad """{"truncation": {"ffn": {"max_bond": 0}}}""" [ "truncation.ffn.max_bond" ]
                bad """{"truncation": {"ffn": {"cap": 4}}}""" [ "truncation.ffn.cap" ]
                bad """{"factorizations": {"attention": [{"rows": [4, 4], "cols": [4, 4]}]}}""" [ "factorizations.attention"; "cores is 5" ]
                bad """{"preset": "mpop-roberta"}""" [ "'preset'"; "mpop-albert" ]
                bad """{"peft_type": "LORA"}""" [ "'peft_type'" ] }
        ]

        test "configuration JSON round-trips, and a preset with overrides merges per key" {
            let config = MpoTunerConfig.FromJson(JsonNode.Parse("""{"preset": "mpop-albert", "truncation": {"word_embedding": {"max_bond": 240}, "ffn": {"bonds": [12, 192, 256, 16]}}, "freeze_central": false}""").AsObject(), "x")
            Expect.equal (config.TruncationFor MpoFamilies.WordEmbedding) (TruncationSpec.MaxBond 240 :> TruncationSpec) "override"
            Expect.equal (string (config.TruncationFor MpoFamilies.FfnOut)) "PerBond { Bonds = [12,192,256,16] }" "group key"
            Expect.equal (config.FactorizationsFor MpoFamilies.Query |> Seq.head |> string) "[3,4,4,4,4]x[4,4,4,4,3]" "preset's attention shape kept"
            Expect.isFalse config.FreezeCentral "freeze_central overridden"
            let again = MpoTunerConfig.FromJson(config.ToJson(), "round trip")
            Expect.equal (again.ToJson().ToJsonString()) (config.ToJson().ToJsonString()) "ToJson ∘ FromJson = id" }
    ]
