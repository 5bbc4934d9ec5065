/// `mpo merge`: an MPO adapter merged into its base (peft's merge_and_unload): the base is decomposed again, the
/// adapter loaded onto it (refused on the wrong base, naming the file), every MPO layer contracted back into the dense
/// module it came from, and the result written as an ordinary Hugging Face checkpoint (with the base's tokenizer
/// files) whose logits equal the MPO model's. The folder appears whole or not at all.
module Mpo.Experiments.Cli.MergeCommand

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Tuning
open Mpo.Experiments.Cli.Arguments

/// Writes the merged checkpoint of <c>adapter</c> on <c>baseFolder</c> into <c>out</c> (staged beside it, then one
/// rename); returns peft's parameter line of the merged model.
let merge (baseFolder: string) (adapter: string) (out: string) =
    if Directory.Exists out && not (Seq.isEmpty (Directory.EnumerateFileSystemEntries out)) then
        invalidArg "out" (sprintf "--out %s exists and is not empty; merge writes a fresh folder" out)
    use tuned = MpoAdapter.Load(baseFolder, adapter)
    let merged = tuned.Merge()
    let staged = AtomicFolder.Stage out
    try
        merged.Save staged
        // the tokenizer and any other non-weight file of the base travel along (the merged folder runs on its own)
        use checkpoint = CheckpointFolder.Open baseFolder
        let weights = set [ for f in checkpoint.Files -> Path.GetFullPath f ]
        for file in Directory.GetFiles baseFolder do
            let name = Path.GetFileName file
            if name <> "config.json" && not (weights.Contains(Path.GetFullPath file)) && not (name.EndsWith ".safetensors.index.json")
               && not (File.Exists(Path.Combine(staged, name))) then
                File.Copy(file, Path.Combine(staged, name))
        AtomicFolder.Publish(staged, out)
    with _ ->
        AtomicFolder.Discard staged
        reraise ()
    ParameterCounting.Count merged

let run (args: ParseResults<MergeArgs>) =
    let baseFolder = Mpo.Experiments.Models.ModelFolders.resolve (args.GetResult MergeArgs.Base)
    let out = args.GetResult MergeArgs.Out
    let count = merge baseFolder (args.GetResult MergeArgs.Adapter) out
    printfn "merged %s onto %s: %O" (args.GetResult MergeArgs.Adapter) baseFolder count
    printfn "wrote %s" out
    0
