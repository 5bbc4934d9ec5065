/// The machine a result was measured on, as reports and model cards state it.
module Mpo.Experiments.Reports.Machine

open System
open System.IO
open TorchSharp

/// "2 cores (CPU model), torch threads 2".
let describe () =
    let cpu =
        try File.ReadLines "/proc/cpuinfo" |> Seq.tryFind (fun l -> l.StartsWith "model name") |> Option.map (fun l -> l.Split(':').[1].Trim())
        with _ -> None
    sprintf "%d cores (%s), torch threads %d" Environment.ProcessorCount (defaultArg cpu "unknown CPU") (torch.get_num_threads ())
