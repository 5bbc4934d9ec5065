/// Files that ship with Mpo (data/), found from the program's folder or the working directory.
module Mpo.Experiments.Data.Bundled

open System
open System.IO

/// The repository's data folder: walks up from the executable, then from the working directory.
let dataFolder () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then None
        elif Directory.Exists(Path.Combine(dir.FullName, "data", "bundled")) then Some(Path.Combine(dir.FullName, "data"))
        else up dir.Parent
    match up (DirectoryInfo AppContext.BaseDirectory) |> Option.orElse (up (DirectoryInfo(Directory.GetCurrentDirectory()))) with
    | Some d -> d
    | None -> failwith "cannot find Mpo's data/ folder (data/bundled) above the program or the working directory"

/// The repository root (the folder holding data/).
let root () = Path.GetDirectoryName(dataFolder ())

/// The bundled pre-trained tiny models (models/<name>, Hugging Face layout).
let modelsFolder () = Path.Combine(root (), "models")

/// The synthetic BERT-base-sized FFN matrix of the decomposition walkthrough: see data/bundled/README.md.
let ffnMatrixFile () = Path.Combine(dataFolder (), "bundled", "ffn-3072x768.safetensors")
let ffnMatrixTensor = "synthetic.ffn.intermediate.weight"
