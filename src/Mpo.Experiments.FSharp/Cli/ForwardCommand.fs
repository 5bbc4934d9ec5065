/// `mpo forward`: run any supported checkpoint on given token ids and write its outputs, so a model can be checked
/// against another implementation (Hugging Face `transformers`, the reference scripts under tools/reference).
module Mpo.Experiments.Cli.ForwardCommand

open System
open System.Collections.Generic
open System.IO
open Argu
open TorchSharp
open Mpo.Checkpoints
open Mpo.Models
open Mpo.Experiments.Cli.Arguments

/// Input tensor names (HF argument names) and whether they are required.
let inputNames = [ "input_ids", true; "attention_mask", false; "token_type_ids", false; "decoder_input_ids", false; "decoder_attention_mask", false ]

/// Reads the batch; every tensor must be an integer [batch, seq] tensor, names as HF's forward arguments.
let readInputs (path: string) =
    use file = SafeTensorsFile.Open path
    let known = inputNames |> List.map fst |> set
    for t in file.Tensors do
        if not (known.Contains t.Name) then
            raise (CheckpointFormatException(path, sprintf "unknown input; expected some of: %s" (String.Join(", ", inputNames |> List.map fst)), t.Name))
    let load name =
        if file.Tensors |> Seq.exists (fun t -> t.Name = name) then
            let t = file.Load(name)
            if t.dtype <> torch.int64 && t.dtype <> torch.int32 && t.dtype <> torch.int16 && t.dtype <> torch.uint8 then
                raise (CheckpointFormatException(path, sprintf "token ids and masks must be integers, got %A" t.dtype, name))
            if t.dim() <> 2L then
                raise (CheckpointFormatException(path, sprintf "must be [batch, seq], got [%s]" (String.Join(",", (t: torch.Tensor).shape)), name))
            Some (t.``to``(torch.int64))
        else None
    let ids = load "input_ids" |> Option.defaultWith (fun () -> raise (CheckpointFormatException(path, "no 'input_ids' tensor")))
    let mask, types = load "attention_mask", load "token_type_ids"
    for (name, t) in [ "attention_mask", mask; "token_type_ids", types ] do
        match t with
        | Some (t: torch.Tensor) when t.shape <> ids.shape ->
            raise (CheckpointFormatException(path, sprintf "shape [%s] differs from input_ids [%s]" (String.Join(",", (t: torch.Tensor).shape)) (String.Join(",", ids.shape)), name))
        | _ -> ()
    ModelInputs(ids, AttentionMask = Option.toObj mask, TokenTypeIds = Option.toObj types,
                DecoderInputIds = Option.toObj (load "decoder_input_ids"), DecoderAttentionMask = Option.toObj (load "decoder_attention_mask"))

let run (args: ParseResults<ForwardArgs>) =
    let folder = Mpo.Experiments.Models.ModelFolders.resolve (args.GetResult ForwardArgs.Model)
    let dtype =
        match args.TryGetResult ForwardArgs.Dtype with
        | None | Some "f32" -> torch.float32
        | Some "f64" -> torch.float64
        | Some other -> raise (ArgumentException(sprintf "--dtype: expected f32 or f64, got '%s'" other))
    let model =
        match args.TryGetResult ForwardArgs.Adapter with
        | Some adapter ->
            // the base decomposed again and the adapter loaded onto it (refused on the wrong base, naming the file)
            if args.Contains ForwardArgs.Architecture then invalidArg "architecture" "--architecture and --adapter exclude each other: the adapter records its class"
            (Mpo.Tuning.MpoAdapter.Load(folder, adapter)).Model
        | None ->
            let struct (model, report) = PretrainedModel.Load(folder, ?architecture = args.TryGetResult ForwardArgs.Architecture)
            if report.NewlyInitialized.Count > 0 then
                eprintfn "mpo: warning: %d parameters of %s are not in the checkpoint (a %s) and were initialized at random: %s"
                    report.NewlyInitialized.Count model.Architecture report.CheckpointArchitecture (String.Join(", ", report.NewlyInitialized))
            model
    use model = model
    model.``to``(dtype) |> ignore
    model.eval()
    use scope = torch.NewDisposeScope()
    let inputs = readInputs (args.GetResult ForwardArgs.Input)
    let outputs =
        use _ = torch.no_grad()
        model.forward inputs
    let tensors = Dictionary<string, torch.Tensor>()
    tensors["logits"] <- outputs.Logits
    tensors["last_hidden_state"] <- outputs.LastHiddenState
    if not (isNull outputs.EncoderLastHiddenState) then tensors["encoder_last_hidden_state"] <- outputs.EncoderLastHiddenState
    let out = args.GetResult ForwardArgs.Out
    match Path.GetDirectoryName(Path.GetFullPath out) with
    | null -> ()
    | dir -> Directory.CreateDirectory dir |> ignore
    let metadata = readOnlyDict [ "model", Path.GetFullPath folder; "architecture", model.Architecture; "dtype", string dtype ]
    SafeTensors.Save(out, tensors, metadata)
    for KeyValue(name, t) in tensors do
        printfn "%s [%s]" name (String.Join(",", (t: torch.Tensor).shape))
    printfn "wrote %s" out
    0
