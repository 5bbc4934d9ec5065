/// `mpo count`: a model's parameters from its configuration alone (no weights), plain or with a tuner applied
/// (MPOP spec §4.3's counts). Parses and calls Mpo.Tuning.ParameterCounting.
module Mpo.Experiments.Cli.CountCommand

open Argu
open Mpo.Models
open Mpo.Tuning
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Reports

let run (args: ParseResults<CountArgs>) =
    let path = args.GetResult CountArgs.Config
    let config =
        let read = ModelRegistry.ReadConfigFile path
        match args.TryGetResult CountArgs.Labels with
        | Some n when n < 1 -> invalidArg "--labels" $"--labels must be at least 1, got {n}"
        | Some n -> read.WithLabels [| for i in 0 .. n - 1 -> $"LABEL_{i}" |]
        | None -> read
    let architecture = args.GetResult(CountArgs.Architecture, defaultValue = ParameterCounting.CountedArchitecture config)
    // Structural methods, applied in order to the model built on the meta device (an MoE method adds its tuner here).
    let tuners: IStructuralTuner list =
        [ for preset in Option.toList (args.TryGetResult CountArgs.Mpo) -> MpoTuner(MpoTunerConfig.Load preset) ]
    let count = ParameterCounting.FromConfig(config, architecture, tuners)
    let labels = if count.Architecture.EndsWith "ForSequenceClassification" then $", {config.NumLabels} labels" else ""
    printfn "model: %s (%s%s) from %s: shapes only, no weights" count.Architecture count.ModelType labels path
    for tuner in tuners do
        match tuner with
        | :? MpoTuner as mpo ->
            printfn "MPO: %s, %d cores, central tensors %s" (mpo.Config.Preset |> Option.ofObj |> Option.defaultValue (args.GetResult CountArgs.Mpo))
                mpo.Config.Cores (if mpo.Config.FreezeCentral then "frozen (lightweight fine-tuning)" else "trained")
        | _ -> ()
    printfn "%s" (ParameterCounts.text count)
    0
