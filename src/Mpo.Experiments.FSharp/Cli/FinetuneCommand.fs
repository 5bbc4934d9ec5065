/// `mpo finetune`: full fine-tuning of pre-trained checkpoints (by default the bundled tiny models) on classification
/// and regression tasks (by default the bundled ones); prints and writes the baselines table. Interrupted runs resume.
module Mpo.Experiments.Cli.FinetuneCommand

open System
open System.IO
open Argu
open Mpo.Data
open Mpo.Training
open Mpo.Experiments
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.FineTuning

/// A bundled model's name (tiny-bert) or a checkpoint folder.
let private modelFolder (name: string) =
    let bundled = Path.Combine(Data.Bundled.modelsFolder (), name)
    if Baselines.models |> List.contains name then bundled
    elif Directory.Exists name then name
    else invalidArg "models" (sprintf "'%s' is neither a bundled model (%s) nor a checkpoint folder" name (String.Join(", ", Baselines.models)))

let private finetuneOne (folder: string) (task: TextTask) (data: string) (settings: FineTune.Settings) (runs: string) =
    let name = FineTune.modelName folder
    let run = Path.Combine(runs, sprintf "%s-%s" name task.Name)
    let metric = FineTune.leadingMetric task
    printfn "fine-tuning %s on %s; run folder %s" name task.Name run
    let mutable total = 1.0
    let outcome =
        Terminal.ProgressBar.track (sprintf "%s/%s" name task.Name) 1.0 (fun report ->
            let progress =
                { new IProgress<TrainingProgress> with
                    member _.Report p =
                        total <- float p.TotalSteps
                        match p.Event with
                        | TrainingEvent.Step -> report (float p.Step / total) (sprintf "loss %.3f" p.Loss)
                        | TrainingEvent.Evaluation when not (Terminal.ProgressBar.interactive ()) ->
                            printfn "  step %d/%d: dev %s %.4f, %.0f s" p.Step p.TotalSteps metric p.Metrics.[metric] p.Elapsed.TotalSeconds
                        | _ -> () }
            FineTune.run folder task data settings run progress)
    let shown (scores: FineTune.Scores) = String.Join(", ", [ for KeyValue(k, v) in scores -> sprintf "%s %.4f" k v ])
    let majority = if Double.IsNaN outcome.MajorityTestAccuracy then "" else sprintf " (majority %.4f)" outcome.MajorityTestAccuracy
    printfn "%s on %s: test %s%s after %d updates (best %d) in %.1f min"
        name task.Name (shown outcome.Test) majority outcome.Steps outcome.BestStep (outcome.TrainSeconds / 60.0)
    printfn "  %O" (Mpo.Tuning.ParameterCount(outcome.TrainableParameters, outcome.Parameters))
    outcome

let run (args: ParseResults<FinetuneArgs>) =
    let root = Data.Bundled.root ()
    let folders =
        match args.GetResult(FinetuneArgs.Models, defaultValue = []) with
        | [] | [ "all" ] -> Baselines.models
        | names -> names
        |> List.map modelFolder
    let tasks =
        match args.GetResult(FinetuneArgs.Task, defaultValue = "all") with
        | "all" -> Baselines.tasks
        | name -> [ TextTasks.ByName name ]
    let dataFor (task: TextTask) =
        match args.TryGetResult FinetuneArgs.Data with
        | Some dir when tasks.Length = 1 -> dir
        | Some _ -> invalidArg "data" "--data names one task's folder; give --task too"
        | None when TextTasks.All |> Seq.contains task -> Path.Combine(root, TextTasks.Folder, task.Name)
        | None -> invalidArg "data" (sprintf "task '%s' is not bundled; give its folder with --data" task.Name)
    let d = FineTune.defaults
    let settings: FineTune.Settings =
        { d with
            Epochs = args.GetResult(FinetuneArgs.Epochs, defaultValue = d.Epochs)
            BatchSize = args.GetResult(FinetuneArgs.Batch_Size, defaultValue = d.BatchSize)
            LearningRate = args.GetResult(FinetuneArgs.Learning_Rate, defaultValue = d.LearningRate)
            MaxLength = args.GetResult(FinetuneArgs.Max_Length, defaultValue = d.MaxLength)
            Seed = args.GetResult(FinetuneArgs.Seed, defaultValue = int d.Seed) |> int64
            MaxSteps = args.TryGetResult FinetuneArgs.Steps |> Option.map int64
            TrainExamples = args.TryGetResult FinetuneArgs.Train_Examples }
    let out = args.GetResult(FinetuneArgs.Out, defaultValue = Path.Combine(root, "out", "finetune"))
    let runs = args.GetResult(FinetuneArgs.Runs, defaultValue = Path.Combine(out, "runs"))
    let outcomes = [ for folder in folders do for task in tasks -> finetuneOne folder task (dataFor task) settings runs ]
    Baselines.write out outcomes (Reports.Machine.describe ())
    printfn "\n%s\n\nwritten to %s" (Baselines.table outcomes) out
    0
