/// The cross-framework model fixtures (tests/fixtures/models/<Class>/, written by
/// tools/reference/models/encoders_reference.py) and the checks every encoder family must pass against them.
module Mpo.Core.Tests.ModelFixtures

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Layers
open Mpo.Models
open Mpo.Tuning
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

/// The fixture folder of one HF class (config.json + model.safetensors + io.safetensors).
let folder (name: string) = Path.GetDirectoryName(repoFile $"tests/fixtures/models/{name}/config.json")

/// Inputs and expected outputs of a fixture: input_ids, attention_mask, token_type_ids, labels, and
/// logits/last_hidden_state/loss with suffix _f64 (float64 reference) and _f32.
let io (name: string) = SafeTensors.LoadAll(Path.Combine(folder name, "io.safetensors"))

let private tryGet (d: Dictionary<string, Tensor>) key = match d.TryGetValue key with | true, t -> t | _ -> null

/// The fixture batch as model inputs (labels included when asked).
let inputsOf (d: Dictionary<string, Tensor>) withLabels =
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], TokenTypeIds = tryGet d "token_type_ids",
                Labels = (if withLabels then d.["labels"] else null))

/// Loads a fixture folder in the given dtype (eval mode, as Load leaves it).
let load (name: string) (dtype: torch.ScalarType) =
    let struct (model, report) = PretrainedModel.Load(folder name)
    model.``to``(dtype) |> ignore
    model, report

let inTemp (action: string -> 'T) =
    let dir = Directory.CreateTempSubdirectory("mpo-models-")
    try action dir.FullName finally dir.Delete true

let names (d: IEnumerable<KeyValuePair<string, Tensor>>) = d |> Seq.map (fun kv -> kv.Key) |> Set.ofSeq

let bitwiseEqual (a: Tensor) (b: Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.eq(b).all().item<bool>()

/// Every element equals `value`.
let allEqual (value: float) (t: Tensor) = t.eq(torch.tensor(value, dtype = t.dtype)).all().item<bool>()

/// A checkpoint folder holding `tensors` with a fixture's config.json.
let writeFolder (dir: string) (configFrom: string) (tensors: KeyValuePair<string, Tensor> seq) =
    let config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder configFrom, "config.json"))).AsObject()
    CheckpointFolder.Save(dir, tensors, config)

/// Loads the masked-LM fixture plus `extras` (name, shape) saved under the same class name, as published checkpoints
/// saved from a pre-training class are; returns the load report.
let loadWithExtras (maskedLm: string) (extras: (string * int64 list) list) =
    let mutable report = Unchecked.defaultof<LoadReport>
    inTemp (fun dir ->
        use scope = torch.NewDisposeScope()
        let original = SafeTensors.LoadAll(Path.Combine(folder maskedLm, "model.safetensors"))
        let added = [ for name, shape in extras -> KeyValuePair(name, torch.ones(List.toArray shape)) ]
        writeFolder dir maskedLm (Seq.append [ for kv in original -> kv ] added)
        let model, _ = load maskedLm torch.float32
        use ckpt = CheckpointFolder.Open dir
        report <- model.LoadWeights ckpt)
    report

/// The last hidden state row `row` of a padded batch, for its first `length` positions.
let rows (t: Tensor) (row: int64) (length: int64) = t.select(0, row).narrow(0, 0L, length)

/// What one encoder family gives the shared checks.
type EncoderSpec =
    { /// Fixture folders (= HF class names, plus a suffix for variants) with a masked-LM and a classification head.
      MaskedLm: string
      Classification: string
      /// Class names of the two heads.
      MaskedLmClass: string
      ClassificationClass: string
      /// Parameters the classification class adds to a masked-LM checkpoint, and the masked-LM head's own entries.
      ClassificationHead: string list
      MaskedLmHead: string list
      /// Dotted paths (in the classification model) of a query projection, and (in the masked-LM model) of the word
      /// embedding that the MLM decoder is tied to.
      QueryPath: string
      WordEmbeddingPath: string
      /// A checkpoint entry to drop and one LayerNorm weight to mis-shape in the strict-load test.
      SomeWeight: string
      SomeLayerNorm: string
      /// Legacy buffer name older HF versions saved.
      PositionIdsBuffer: string
      /// The width and head-count keys Validate must name when heads do not divide the width.
      WidthKey: string
      HeadsKey: string }

let private expectRelative (tolerance: float) (actual: Tensor) (expected: Tensor) what =
    let e = relativeError actual expected
    if not (e <= tolerance) then failtestf "%s: relative error %g > %g" what e tolerance

/// A fixture's outputs match the reference, and the checkpoint round-trips.
let fixtureTests (name: string) =
    testList name [
        test "logits, last hidden state and loss match the float64 reference (float32 ≤ 1e-5, float64 ≤ 1e-10)" {
            use scope = torch.NewDisposeScope()
            let d = io name
            for dtype, suffix, tolerance in [ torch.float32, "f32", 1e-5; torch.float64, "f64", 1e-10 ] do
                let model, _ = load name dtype
                let out = model.forward(inputsOf d true)
                Expect.equal out.Logits.dtype dtype $"{suffix}: logits dtype"
                expectRelative tolerance out.Logits d.["logits_f64"] $"{suffix} logits"
                expectRelative tolerance out.LastHiddenState d.["last_hidden_state_f64"] $"{suffix} last hidden state"
                expectRelative tolerance out.Loss d.["loss_f64"] $"{suffix} loss"
                // PyTorch's own float32 run is as far from the float64 reference as ours.
                expectRelative 1e-5 out.Logits d.["logits_f32"] $"{suffix} vs PyTorch float32" }

        test "load → save → load keeps every tensor bit for bit and writes the same config.json twice" {
            inTemp (fun dir ->
                use scope = torch.NewDisposeScope()
                let first, second = Path.Combine(dir, "a"), Path.Combine(dir, "b")
                let model, _ = load name torch.float32
                model.Save(first)
                let reloaded, report = PretrainedModel.Load(first) |> fun struct (m, r) -> m, r
                Expect.isEmpty report.NewlyInitialized "nothing new"
                reloaded.Save(second)
                let original = SafeTensors.LoadAll(Path.Combine(folder name, "model.safetensors"))
                for dirName in [ first; second ] do
                    let saved = SafeTensors.LoadAll(Path.Combine(dirName, "model.safetensors"))
                    Expect.equal (names saved) (names original) "same tensor names (tied copies left out, as HF)"
                    for KeyValue(k, v) in original do
                        Expect.isTrue (bitwiseEqual saved.[k] v) $"{k} bit for bit"
                let text path = File.ReadAllText(Path.Combine(path, "config.json"))
                Expect.equal (text second) (text first) "config.json identical after a second round"
                let written = JsonNode.Parse(text first).AsObject()
                let reference = JsonNode.Parse(File.ReadAllText(Path.Combine(folder name, "config.json"))).AsObject()
                for KeyValue(key, value) in reference do
                    let mine = written.[key]
                    match value with
                    | null -> Expect.isNull mine $"{key} stays null"
                    | :? JsonValue as v when v.GetValueKind() = Text.Json.JsonValueKind.Number ->
                        Expect.equal (mine.GetValue<double>()) (v.GetValue<double>()) $"{key}"
                    | _ -> Expect.isTrue (JsonNode.DeepEquals(mine, value)) $"{key}: {mine} vs {value}"
                let d = io name
                let a = model.forward(inputsOf d false).Logits
                let b = reloaded.forward(inputsOf d false).Logits
                Expect.isTrue (bitwiseEqual a b) "same outputs") }
    ]

/// Every check that does not depend on the family's internals (run them sequenced: they load models and write folders).
let encoderSuite (spec: EncoderSpec) =
    [
        fixtureTests spec.MaskedLm
        fixtureTests spec.Classification

        test "strict loading reports missing, unexpected and mis-shaped names together; legacy buffers and tied copies pass" {
            inTemp (fun dir ->
                use scope = torch.NewDisposeScope()
                let original = SafeTensors.LoadAll(Path.Combine(folder spec.MaskedLm, "model.safetensors"))
                let broken =
                    [ for KeyValue(k, v) in original do
                        if k = spec.SomeLayerNorm then yield KeyValuePair(k, torch.ones(v.shape.[0] + 1L))
                        elif k <> spec.SomeWeight then yield KeyValuePair(k, v)
                      yield KeyValuePair(spec.SomeWeight + ".typo", original.[spec.SomeWeight]) ]
                writeFolder dir spec.MaskedLm broken
                let model, _ = load spec.MaskedLm torch.float32
                use ckpt = CheckpointFolder.Open dir
                let e = Expect.throwsC (fun () -> model.LoadWeights ckpt |> ignore) id
                match e with
                | :? CheckpointMismatchException as m ->
                    Expect.equal (List.ofSeq m.Missing) [ spec.SomeWeight ] "missing"
                    Expect.equal (List.ofSeq m.Unexpected) [ spec.SomeWeight + ".typo" ] "unexpected"
                    Expect.equal m.ShapeMismatches.Count 1 "one shape mismatch"
                    Expect.stringContains m.ShapeMismatches.[0] spec.SomeLayerNorm "names the mis-shaped tensor"
                | other -> failtestf "wrong exception %O" other)
            inTemp (fun dir ->
                use scope = torch.NewDisposeScope()
                let original = SafeTensors.LoadAll(Path.Combine(folder spec.MaskedLm, "model.safetensors"))
                let model, _ = load spec.MaskedLm torch.float32
                let tied = model.TiedParameters
                Expect.isNonEmpty tied "the MLM decoder is tied"
                let extra =
                    [ yield KeyValuePair(spec.PositionIdsBuffer, torch.arange(40L).unsqueeze(0L))
                      for KeyValue(copy, source) in tied -> KeyValuePair(copy, original.[source]) ]
                writeFolder dir spec.MaskedLm (Seq.append [ for kv in original -> kv ] extra)
                use ckpt = CheckpointFolder.Open dir
                let report = model.LoadWeights ckpt
                Expect.isEmpty report.NewlyInitialized "same class: nothing new"
                Expect.isEmpty report.Dropped "legacy buffer and tied copies are not reported as dropped") }

        test "a masked-LM checkpoint loads into the classification class: its head is new, the MLM head dropped" {
            use scope = torch.NewDisposeScope()
            let struct (model, report) = PretrainedModel.Load(folder spec.MaskedLm, spec.ClassificationClass, [| "a"; "b"; "c" |])
            Expect.equal model.Architecture spec.ClassificationClass "class"
            Expect.equal report.CheckpointArchitecture spec.MaskedLmClass "checkpoint class"
            Expect.equal (Set.ofSeq report.NewlyInitialized) (Set.ofList spec.ClassificationHead) "newly initialized"
            Expect.equal (Set.ofSeq report.Dropped) (Set.ofList spec.MaskedLmHead) "dropped"
            let original = SafeTensors.LoadAll(Path.Combine(folder spec.MaskedLm, "model.safetensors"))
            let state = model.state_dict()
            for KeyValue(k, v) in original do
                if state.ContainsKey k then Expect.isTrue (bitwiseEqual state.[k] v) $"{k} copied"
            Expect.equal (state.["classifier.weight"].shape) [| 3L; state.["classifier.weight"].shape.[1] |] "three labels"
            let d = io spec.MaskedLm
            let logits = model.forward(inputsOf d false).Logits
            Expect.equal logits.shape [| 3L; 3L |] "[batch, labels]" }

        test "eval mode is deterministic; train mode applies dropout" {
            use scope = torch.NewDisposeScope()
            let d = io spec.Classification
            let model, _ = load spec.Classification torch.float32
            let run () = model.forward(inputsOf d false).LastHiddenState
            Expect.isTrue (bitwiseEqual (run ()) (run ())) "eval: identical"
            model.train()
            let a, b = run (), run ()
            Expect.isFalse (bitwiseEqual a b) "train: two passes differ"
            Expect.isGreaterThan (relativeError a d.["last_hidden_state_f64"]) 1e-3 "train: differs from the eval reference"
            model.eval()
            expectRelative 1e-5 (run ()) d.["last_hidden_state_f64"] "eval again: reference" }

        test "padding changes nothing at real positions: a padded row equals the row alone, whatever the pad ids" {
            use scope = torch.NewDisposeScope()
            let d = io spec.Classification
            let model, _ = load spec.Classification torch.float64
            let batch = model.forward(inputsOf d false)
            let length = d.["attention_mask"].select(0, 2L).sum().item<int64>()
            Expect.isLessThan length (d.["input_ids"].shape.[1]) "row 2 is padded"
            let slice (t: Tensor) = if isNull t then null else t.narrow(0, 2L, 1L).narrow(1, 0L, length)
            let alone = model.forward(ModelInputs(slice d.["input_ids"], AttentionMask = slice d.["attention_mask"], TokenTypeIds = slice (tryGet d "token_type_ids")))
            expectRelative 1e-12 (alone.LastHiddenState.select(0, 0L)) (rows batch.LastHiddenState 2L length) "hidden states"
            expectRelative 1e-12 (alone.Logits.select(0, 0L)) (batch.Logits.select(0, 2L)) "classification logits"
            let ids = d.["input_ids"].clone()
            let pads = d.["attention_mask"].eq(torch.tensor(0L))
            ids.masked_fill_(pads, Scalar.op_Implicit 7L) |> ignore
            let other = model.forward(ModelInputs(ids, AttentionMask = d.["attention_mask"], TokenTypeIds = tryGet d "token_type_ids"))
            for row in 0L .. 2L do
                let n = d.["attention_mask"].select(0, row).sum().item<int64>()
                expectRelative 1e-12 (rows other.LastHiddenState row n) (rows batch.LastHiddenState row n) $"row {row}"
            expectRelative 1e-12 other.Logits batch.Logits "logits" }

        test "bad batches fail naming the argument and the allowed range" {
            use scope = torch.NewDisposeScope()
            let d = io spec.MaskedLm
            let model, _ = load spec.MaskedLm torch.float32
            let vocab = int64 model.Config.VocabSize
            let maxPositions = int64 model.Config.MaxPositions.Value
            let ids = d.["input_ids"].clone()
            ids.[0L, 1L] <- torch.tensor(vocab)
            throwsWith<ArgumentException> [ "input_ids"; $"0..{vocab - 1L}"; $"{vocab}" ] (fun () -> model.forward(ModelInputs(ids)) |> ignore) |> ignore
            ids.[0L, 1L] <- torch.tensor(-1L)
            throwsWith<ArgumentException> [ "input_ids"; "-1" ] (fun () -> model.forward(ModelInputs(ids)) |> ignore) |> ignore
            let long = torch.ones(1L, maxPositions + 1L, dtype = torch.int64)
            throwsWith<ArgumentException> [ "input_ids"; "max_position_embeddings"; $"{maxPositions}"; $"{maxPositions + 1L}" ]
                (fun () -> model.forward(ModelInputs(long)) |> ignore) |> ignore
            Expect.equal (model.forward(ModelInputs(torch.ones(1L, maxPositions, dtype = torch.int64))).Logits.shape.[1]) maxPositions "the longest allowed runs"
            throwsWith<ArgumentException> [ "attention_mask" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"], AttentionMask = torch.ones(3L, 2L))) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "input_ids"; "int64" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"].``to``(torch.int32))) |> ignore) |> ignore
            let labels = d.["labels"].clone()
            labels.[0L, 0L] <- torch.tensor(vocab)
            throwsWith<ArgumentException> [ "labels"; $"0..{vocab - 1L}" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"], Labels = labels)) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "decoder_input_ids" ]
                (fun () -> model.forward(ModelInputs(d.["input_ids"], DecoderInputIds = d.["input_ids"])) |> ignore) |> ignore
            let classifier, _ = load spec.Classification torch.float32
            let n = int64 classifier.Config.NumLabels
            let classes = torch.tensor([| 0L; 1L; n |])
            throwsWith<ArgumentException> [ "labels"; $"0..{n - 1L}" ]
                (fun () -> classifier.forward(ModelInputs(d.["input_ids"], Labels = classes)) |> ignore) |> ignore }

        test "config.json with heads not dividing the width is rejected naming the file and the key" {
            let json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder spec.Classification, "config.json"))).AsObject()
            json.[spec.WidthKey] <- JsonValue.Create(30)
            let e = throwsWith<InvalidModelConfigException> [ "my/config.json"; spec.WidthKey; spec.HeadsKey; "30" ]
                        (fun () -> ModelRegistry.ReadConfig(json, "my/config.json") |> ignore)
            Expect.equal e.Key spec.WidthKey "key"
            let json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder spec.Classification, "config.json"))).AsObject()
            json.[spec.WidthKey] <- JsonValue.Create("wide")
            throwsWith<InvalidModelConfigException> [ spec.WidthKey; "integer" ] (fun () -> ModelRegistry.ReadConfig(json, "c.json") |> ignore) |> ignore
            let json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder spec.Classification, "config.json"))).AsObject()
            json.["pad_token_id"] <- JsonValue.Create(1000)
            throwsWith<InvalidModelConfigException> [ "pad_token_id"; "1000" ] (fun () -> ModelRegistry.ReadConfig(json, "c.json") |> ignore) |> ignore }

        test "an MPO query projection (full bonds) leaves the logits unchanged and trains through its cores" {
            use scope = torch.NewDisposeScope()
            let d = io spec.Classification
            let model, _ = load spec.Classification torch.float32
            let before = model.forward(inputsOf d false).Logits
            let dense = ModuleSurgery.Find(model, spec.QueryPath) :?> Modules.Linear
            let mpo = MpoLinear.FromLinear(dense)
            let old = ModuleSurgery.Replace(model, spec.QueryPath, mpo)
            Expect.isTrue (obj.ReferenceEquals(old, dense)) "the dense layer came out"
            Expect.isTrue (obj.ReferenceEquals(ModuleSurgery.Find(model, spec.QueryPath), mpo)) "the MPO layer is in"
            let names = model.named_parameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq
            Expect.contains names (spec.QueryPath + ".central") "the cores are the model's parameters"
            Expect.isFalse (names.Contains(spec.QueryPath + ".weight")) "the dense weight is gone"
            let out = model.forward(inputsOf d true)
            expectRelative 1e-5 out.Logits before "logits"
            out.Loss.backward()
            for core in mpo.Cores do
                Expect.isNotNull (box core.grad) "gradient reaches the core"
                Expect.isGreaterThan (core.grad.abs().sum().item<float32>()) 0.0f "non-zero" }

        test "an MPO word embedding keeps the tied MLM decoder tied (it reads the reconstructed table)" {
            use scope = torch.NewDisposeScope()
            let d = io spec.MaskedLm
            let model, _ = load spec.MaskedLm torch.float32
            let before = model.forward(inputsOf d true)
            let dense = ModuleSurgery.Find(model, spec.WordEmbeddingPath) :?> Modules.Embedding
            let mpo = MpoEmbedding.FromWeight(dense.weight)
            ModuleSurgery.Replace(model, spec.WordEmbeddingPath, mpo) |> ignore
            let after = model.forward(inputsOf d true)
            expectRelative 1e-5 after.Logits before.Logits "logits"
            after.Loss.backward()
            Expect.isGreaterThan (mpo.Central.grad.abs().sum().item<float32>()) 0.0f "input and output uses both train the cores" }
    ]
