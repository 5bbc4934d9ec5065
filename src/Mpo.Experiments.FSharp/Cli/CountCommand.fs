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
    // Structural methods, applied in order to the model built on the meta device: MPO layers, then MoE layers.
    let moe =
        match args.TryGetResult CountArgs.Moe, args.TryGetResult CountArgs.Experts with
        | None, Some _ -> invalidArg "--experts" "--experts needs --moe mpoe|switch|moe"
        | None, None when args.Contains CountArgs.No_Share_Central -> invalidArg "--no-share-central" "--no-share-central needs --moe mpoe"
        | None, None -> None
        | Some _, Some n when n < 1 -> invalidArg "--experts" $"--experts must be at least 1, got {n}"
        | Some kind, n ->
            let kind =
                try MoeTunerConfig.KindNamed(kind, "--moe", "--moe")
                with :? InvalidTunerConfigException -> invalidArg "--moe" $"--moe: '{kind}' is not an MoE method (mpoe, switch, moe)"
            let share = not (args.Contains CountArgs.No_Share_Central)
            if not share && kind <> MoeKind.Mpoe then
                invalidArg "--no-share-central" $"--no-share-central is for --moe mpoe; {MoeTunerConfig.NameOf kind} has dense experts"
            Some(MoeTunerConfig.Of(kind, defaultArg n 8, shareCentral = share))
    let tuners: IStructuralTuner list =
        match args.TryGetResult CountArgs.Mpo, moe with
        | None, None -> []
        | Some preset, None -> [ MpoTuner(MpoTunerConfig.Load preset) ]
        | Some preset, Some moe -> [ MpoTuner((MpoTunerConfig.Load preset).WithMoe moe) ]
        | None, Some moe -> [ MpoTuner(MpoTunerConfig.ForMoe moe) ]
    let count = ParameterCounting.FromConfig(config, architecture, tuners)
    let labels = if count.Architecture.EndsWith "ForSequenceClassification" then $", {config.NumLabels} labels" else ""
    printfn "model: %s (%s%s) from %s: shapes only, no weights" count.Architecture count.ModelType labels path
    for tuner in tuners do
        match tuner with
        | :? MpoTuner as mpo when not (isNull mpo.Config.Moe) ->
            let moe = mpo.Config.Moe
            printfn "MoE: %s, %d experts per layer, top-%d%s" (MoeTunerConfig.NameOf moe.Kind) moe.Options.Experts moe.Options.TopK
                (if moe.ExpertKind = Mpo.Experts.ExpertKind.Mpo && moe.ShareCentral then sprintf ", MPO experts sharing one central tensor per FFN matrix (%d cores)" mpo.Config.Cores
                 elif moe.ExpertKind = Mpo.Experts.ExpertKind.Mpo then sprintf ", MPO experts each owning its central tensor (%d cores; no sharing)" mpo.Config.Cores
                 else ", dense experts")
        | :? MpoTuner as mpo ->
            printfn "MPO: %s, %d cores, central tensors %s" (mpo.Config.Preset |> Option.ofObj |> Option.defaultValue (args.GetResult CountArgs.Mpo))
                mpo.Config.Cores (if mpo.Config.FreezeCentral then "frozen (lightweight fine-tuning)" else "trained")
        | _ -> ()
    printfn "%s" (ParameterCounts.text count)
    0
