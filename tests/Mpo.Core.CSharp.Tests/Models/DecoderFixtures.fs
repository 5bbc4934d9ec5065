/// The GPT-2 and T5 fixtures written by tools/reference/models/decoders_reference.py, and helpers the decoder tests share.
module Mpo.Core.Tests.DecoderFixtures

open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Models
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

let folder (architecture: string) =
    Path.GetDirectoryName(repoFile $"tests/fixtures/models/{architecture}/config.json")

/// Inputs and expected outputs of a fixture (names as the reference script writes them).
let io architecture = SafeTensors.LoadAll(Path.Combine(folder architecture, "io.safetensors"))

/// The fixture checkpoint loaded as `asClass` (null: the class config.json names), in eval mode.
let load architecture (asClass: string) =
    let struct (model, report) = PretrainedModel.Load(folder architecture, asClass)
    model.eval()
    model, report

let inTemp (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-models-")
    try action dir.FullName finally dir.Delete true

/// A copy of the fixture checkpoint in `dir` with its tensors edited (entries added, removed, reshaped).
let editedCopy architecture (edit: Dictionary<string, Tensor> -> unit) dir =
    let tensors = SafeTensors.LoadAll(Path.Combine(folder architecture, CheckpointFolder.SingleFile))
    edit tensors
    SafeTensors.Save(Path.Combine(dir, CheckpointFolder.SingleFile), tensors)
    File.Copy(Path.Combine(folder architecture, CheckpointFolder.ConfigFile), Path.Combine(dir, CheckpointFolder.ConfigFile))

let tokens (t: Tensor) = t.``to``(torch.int64).data<int64>().ToArray()

/// Tensor names of a saved checkpoint folder.
let savedNames dir =
    use ckpt = CheckpointFolder.Open dir
    Set.ofSeq ckpt.TensorNames

/// Same shape, dtype and values (Tensor.equal is element-wise in TorchSharp).
let identical (a: Tensor) (b: Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.eq(b).all().item<bool>()

/// Every state-dict entry of `a` equals `b`'s exactly.
let expectSameState (a: torch.nn.Module) (b: torch.nn.Module) =
    let sa, sb = a.state_dict(), b.state_dict()
    Expect.equal (Set.ofSeq sa.Keys) (Set.ofSeq sb.Keys) "same names"
    for KeyValue(name, t) in sa do
        Expect.isTrue (identical t sb.[name]) $"{name} equal"

let expectRelative (tolerance: float) (actual: Tensor) (expected: Tensor) what =
    let e = relativeError actual expected
    Expect.isLessThan e tolerance $"{what}: relative error {e:E2}"
