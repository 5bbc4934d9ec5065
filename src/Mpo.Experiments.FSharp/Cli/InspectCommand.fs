/// `mpo inspect`: what a safetensors file or checkpoint folder holds.
module Mpo.Experiments.Cli.InspectCommand

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Reports

let private files (path: string) =
    if File.Exists path then [ path ]
    elif Directory.Exists path then
        match Directory.GetFiles(path, "*.safetensors") |> Array.sort |> List.ofArray with
        | [] -> raise (FileNotFoundException($"{path}: the folder holds no *.safetensors file", path))
        | found -> found
    else raise (FileNotFoundException($"{path}: no such file or folder", path))

let run (args: ParseResults<InspectArgs>) =
    let mutable total = 0L
    for path in files (args.GetResult Path) do
        use file = SafeTensorsFile.Open path
        let rows =
            [ for t in file.Tensors ->
                let count = t.Shape |> Array.fold (*) 1L
                total <- total + count
                [ t.Name; string t.DType; "[" + String.Join(",", t.Shape) + "]"; Tables.int64s count; Tables.int64s (t.End - t.Begin) ] ]
        printfn "%s: %d tensors" path file.Tensors.Count
        for KeyValue(k, v) in file.Metadata do printfn "  metadata %s = %s" k v
        printfn "%s\n" (Tables.markdown [ "tensor"; "dtype"; "shape"; "elements"; "bytes" ] rows)
    printfn "total elements: %s" (Tables.int64s total)
    0
