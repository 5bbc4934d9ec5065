/// `mpo embed`: sentence embeddings from an encoder checkpoint, pooled as its sentence-transformers files say.
module Mpo.Experiments.Cli.EmbedCommand

open System
open System.IO
open Argu
open TorchSharp
open Mpo.Checkpoints
open Mpo.SentenceEmbedding
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Models
open Mpo.Experiments.Reports

let run (args: ParseResults<EmbedArgs>) =
    let folder = ModelFolders.resolve (args.GetResult EmbedArgs.Model)
    let texts = args.GetResults EmbedArgs.Text
    use encoder = SentenceEncoder.Load folder
    use scope = torch.NewDisposeScope()
    let vectors = encoder.Encode(ResizeArray texts)
    printfn "%s: %d × %d (%s)" folder vectors.shape.[0] vectors.shape.[1] (encoder.Pooling.Describe())
    for i, text in List.indexed texts do
        let v = vectors.[int64 i].data<float32>().ToArray()
        let head = v |> Array.truncate 6 |> Array.map (fun x -> x.ToString("0.0000", Globalization.CultureInfo.InvariantCulture))
        printfn "[%d] %s  [%s, …]  ‖v‖ = %.4f" i text (String.Join(", ", head)) (vectors.[int64 i].norm().item<float32>())
    if texts.Length > 1 then
        let cosines = vectors.matmul(vectors.t()).div(vectors.norm(1, keepdim = true).matmul(vectors.norm(1, keepdim = true).t()))
        printfn "\ncosine similarity\n%s"
            (Tables.markdown ("" :: [ for i in 0 .. texts.Length - 1 -> sprintf "[%d]" i ])
                 [ for i in 0 .. texts.Length - 1 ->
                     sprintf "[%d]" i :: [ for j in 0 .. texts.Length - 1 -> Tables.ratio (cosines.[int64 i, int64 j].item<float32>() |> float) ] ])
    match args.TryGetResult EmbedArgs.Out with
    | Some out ->
        match Path.GetDirectoryName(Path.GetFullPath out) with
        | null -> ()
        | dir -> Directory.CreateDirectory dir |> ignore
        SafeTensors.Save(out, dict [ "embeddings", vectors ], readOnlyDict [ "model", Path.GetFullPath folder; "pooling", encoder.Pooling.Describe() ])
        printfn "wrote %s" out
    | None -> ()
    0
