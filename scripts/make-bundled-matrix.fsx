// Writes data/bundled/ffn-3072x768.safetensors, the decomposition walkthrough's synthetic FFN matrix (recipe and why:
// src/Mpo.Experiments.FSharp/Data/SyntheticWeights.fs). Deterministic: re-running reproduces the committed file.
//   ./scripts/fsi scripts/make-bundled-matrix.fsx
#load "references.fsx"

open System.Collections.Generic
open System.IO
open TorchSharp
open Mpo.Checkpoints
open Mpo.Experiments.Data

let target =
    if References.quick then Path.Combine(References.outputFolder "bundled", "ffn-3072x768.safetensors")
    else Path.Combine(__SOURCE_DIRECTORY__, "..", "data", "bundled", "ffn-3072x768.safetensors")
let w = SyntheticWeights.ffnLike 20210601 3072 768
SafeTensors.Save(
    target,
    [ KeyValuePair(Bundled.ffnMatrixTensor, w.``to``(torch.float16)) ],
    readOnlyDict [
        "description", "synthetic FFN-like weight (MPO-structured + low-rank + noise), see SyntheticWeights.fs"
        "seed", "20210601"
        "generator", "scripts/make-bundled-matrix.fsx" ])
printfn "wrote %s: [%d x %d], std %.4f" target w.shape.[0] w.shape.[1] (w.std().item<float32>())
