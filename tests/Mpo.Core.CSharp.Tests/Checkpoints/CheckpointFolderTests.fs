module Mpo.Core.Tests.CheckpointFolderTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Core.Tests.Support

let model seed =
    torch.random.manual_seed(int64 seed) |> ignore
    torch.nn.Sequential(
        struct ("dense", torch.nn.Linear(8L, 6L) :> torch.nn.Module<torch.Tensor, torch.Tensor>),
        struct ("norm", torch.nn.LayerNorm([| 6L |]) :> torch.nn.Module<torch.Tensor, torch.Tensor>),
        struct ("out", torch.nn.Linear(6L, 4L) :> torch.nn.Module<torch.Tensor, torch.Tensor>))

let stateOf (m: torch.nn.Module) = [ for KeyValue(k, v) in m.state_dict() -> KeyValuePair(k, v) ]

let inTemp (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-ckpt-")
    try action dir.FullName finally dir.Delete true

let config = JsonObject(dict [ "model_type", JsonValue.Create("toy") :> JsonNode; "hidden_size", JsonValue.Create(6) ])

[<Tests>]
let tests =
    testSequenced <| testList "Checkpoints.Folder" [
        test "sharded save → open → load reproduces the model's outputs exactly, with an index Hugging Face can read" {
            inTemp (fun dir ->
                let source = model 1
                CheckpointFolder.Save(dir, stateOf source, config, maxShardBytes = 200L)
                Expect.isTrue (File.Exists(Path.Combine(dir, CheckpointFolder.IndexFile))) "index written"
                let shards = Directory.GetFiles(dir, "model-*-of-*.safetensors")
                Expect.isGreaterThan shards.Length 1 "several shards"
                let index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, CheckpointFolder.IndexFile)))
                Expect.equal (index.["weight_map"].AsObject().Count) 6 "every tensor mapped"
                use ckpt = CheckpointFolder.Open dir
                Expect.equal (ckpt.Config.["model_type"].GetValue<string>()) "toy" "config"
                let target = model 2
                ckpt.LoadInto target
                use x = gaussian 3 [ 5L; 8L ] torch.float32
                Expect.isTrue (source.forward(x).eq(target.forward(x)).all().item<bool>()) "bit-identical outputs") }

        test "single-file save with half-precision storage rounds to float16 and loads back" {
            inTemp (fun dir ->
                let source = model 4
                CheckpointFolder.Save(dir, stateOf source, storage = torch.float16)
                use ckpt = CheckpointFolder.Open dir
                Expect.equal (ckpt.Info("dense.weight").DType) SafeDType.F16 "stored as F16"
                let target = model 5
                ckpt.LoadInto target
                let w = (source.state_dict().["dense.weight"])
                Expect.isTrue (target.state_dict().["dense.weight"].eq(w.half().float()).all().item<bool>()) "float16-rounded values") }

        test "strict loading reports missing, unexpected and mismatched names together and copies nothing" {
            inTemp (fun dir ->
                let tensors =
                    [ KeyValuePair("dense.weight", torch.zeros(6L, 8L)); KeyValuePair("dense.bias", torch.zeros(6L))
                      KeyValuePair("norm.weight", torch.zeros(7L)); KeyValuePair("norm.bias", torch.zeros(6L))
                      KeyValuePair("out.weight", torch.zeros(4L, 6L)); KeyValuePair("pooler.dense.weight", torch.zeros(2L)) ]
                CheckpointFolder.Save(dir, tensors)
                use ckpt = CheckpointFolder.Open dir
                let target = model 6
                let before = target.state_dict().["dense.weight"].clone()
                let e = Expect.throwsC (fun () -> ckpt.LoadInto target) id
                match e with
                | :? CheckpointMismatchException as m ->
                    Expect.equal (List.ofSeq m.Missing) [ "out.bias" ] "missing"
                    Expect.equal (List.ofSeq m.Unexpected) [ "pooler.dense.weight" ] "unexpected"
                    Expect.equal m.ShapeMismatches.Count 1 "one shape mismatch"
                    Expect.stringContains m.Message "norm.weight: model [6], checkpoint [7]" "names both shapes"
                | other -> failtestf "wrong exception %O" other
                Expect.isTrue (target.state_dict().["dense.weight"].eq(before).all().item<bool>()) "nothing copied") }

        testList "bad folders name the file and tensor" [
            let broken name (mutate: string -> unit) (fragment: string) =
                test name {
                    inTemp (fun dir ->
                        // keep the module alive while its parameters are written (its finalizer frees them)
                        let source = model 7
                        CheckpointFolder.Save(dir, stateOf source, config, maxShardBytes = 200L)
                        GC.KeepAlive source
                        mutate dir
                        try
                            use _ = CheckpointFolder.Open dir
                            failtest "expected an error"
                        with :? IOException as e -> Expect.stringContains e.Message fragment "message") }
            let shards d = Directory.GetFiles(d, "model-*-of-*.safetensors") |> Array.sort
            broken "a shard listed in the index is missing" (fun d -> File.Delete (shards d).[0]) "model-00001-of-0000"
            broken "the index assigns a tensor to the wrong shard" (fun d ->
                let p = Path.Combine(d, CheckpointFolder.IndexFile)
                let index = JsonNode.Parse(File.ReadAllText p)
                index.["weight_map"].["dense.weight"] <- JsonValue.Create(Path.GetFileName (Array.last (shards d)))
                File.WriteAllText(p, index.ToJsonString())) "dense.weight"
            broken "malformed config.json" (fun d -> File.WriteAllText(Path.Combine(d, "config.json"), "{ not json")) "config.json"
            broken "no weights at all" (fun d -> for f in Directory.GetFiles(d, "model*") do File.Delete f) "neither model.safetensors nor"
        ]
    ]
