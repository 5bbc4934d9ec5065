/// `mpo finetune`: full fine-tuning of pre-trained checkpoints (by default the bundled tiny models) on classification
/// and regression tasks (by default the bundled ones) — a `full` grid of models × tasks run into the result store
/// `<out>/store`, then the baselines table and figure drawn from its records. Finished trials are not run again;
/// interrupted runs resume in `<runs>/<model>-<task>`.
module Mpo.Experiments.Cli.FinetuneCommand

open System
open System.IO
open Argu
open Mpo.Data
open Mpo.Experiments
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Runs
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore

/// The method of --method with its flags, read as a spec's method object (one reader, the spec's defaults and checks).
let methodOf (args: ParseResults<FinetuneArgs>) =
    let name = args.GetResult(FinetuneArgs.Method, defaultValue = "full")
    let o = Text.Json.Nodes.JsonObject()
    o.["name"] <- Text.Json.Nodes.JsonValue.Create name
    let flag (key: string) (value: Text.Json.Nodes.JsonNode option) =
        match value with
        | Some v -> o.[key] <- v
        | None -> ()
    let num (x: float) = Text.Json.Nodes.JsonValue.Create x :> Text.Json.Nodes.JsonNode
    let int (x: int) = Text.Json.Nodes.JsonValue.Create x :> Text.Json.Nodes.JsonNode
    flag "experts" (args.TryGetResult FinetuneArgs.Experts |> Option.map int)
    flag "top_k" (args.TryGetResult FinetuneArgs.Top_K |> Option.map int)
    flag "capacity_factor" (args.TryGetResult FinetuneArgs.Capacity_Factor |> Option.map num)
    flag "gradient_mask" (args.TryGetResult FinetuneArgs.Gradient_Mask |> Option.map num)
    flag "balance_loss" (args.TryGetResult FinetuneArgs.Balance_Loss |> Option.map num)
    flag "z_loss" (args.TryGetResult FinetuneArgs.Z_Loss |> Option.map num)
    if name = "full" && o.Count > 1 then
        invalidArg "--method" "--experts, --top-k, --capacity-factor, --gradient-mask, --balance-loss and --z-loss are for --method switch|moe|mpoe"
    TrialJson.readMethod "--method" o

let run (args: ParseResults<FinetuneArgs>) =
    let root = Data.Bundled.root ()
    let models =
        match args.GetResult(FinetuneArgs.Models, defaultValue = []) with
        | [] -> Baselines.models
        | [ "all" ] -> Baselines.models @ Models.ModelFolders.encoders
        | names -> names
    for m in models do Execute.modelFolder m |> ignore
    let tasks =
        match args.GetResult(FinetuneArgs.Task, defaultValue = "all") with
        | "all" -> Baselines.tasks
        | name -> [ TextTasks.ByName name ]
    let data =
        match args.TryGetResult FinetuneArgs.Data with
        | Some dir when tasks.Length = 1 -> Some dir
        | Some _ -> invalidArg "data" "--data names one task's folder; give --task too"
        | None ->
            match tasks |> List.tryFind (fun t -> not (TextTasks.All |> Seq.contains t)) with
            | Some t -> invalidArg "data" (sprintf "task '%s' is not bundled; give its folder with --data" t.Name)
            | None -> None
    for t in tasks do
        if t.Kind = TaskKind.LanguageModeling then
            invalidArg "task" (sprintf "task '%s' is language modelling; fine-tuning covers classification and regression tasks" t.Name)
    let d = Trial.defaultTraining
    let training: Trial.Training =
        { d with
            Epochs = args.GetResult(FinetuneArgs.Epochs, defaultValue = d.Epochs)
            BatchSize = args.GetResult(FinetuneArgs.Batch_Size, defaultValue = d.BatchSize)
            LearningRate = { d.LearningRate with Peak = args.GetResult(FinetuneArgs.Learning_Rate, defaultValue = d.LearningRate.Peak) }
            MaxLength = args.GetResult(FinetuneArgs.Max_Length, defaultValue = d.MaxLength)
            MaxSteps = args.TryGetResult FinetuneArgs.Steps |> Option.map int64
            TrainExamples = args.TryGetResult FinetuneArgs.Train_Examples }
    let method = methodOf args
    // the base trial: the flags' settings; the grid sets model and task
    let baseTrial =
        Grid.baseOf { Trial.create "" "" with Data = data; Training = training; Method = method
                                              Seed = int64 (args.GetResult(FinetuneArgs.Seed, defaultValue = int Trial.defaultSeed)) }
    baseTrial.Remove "model" |> ignore
    baseTrial.Remove "task" |> ignore
    let trials = Grid.expand baseTrial (Baselines.grid models [ for t in tasks -> t.Name ])
    for id, t in trials do Execute.checkPaths id t
    let out = args.GetResult(FinetuneArgs.Out, defaultValue = Path.Combine(root, "out", "finetune"))
    let runs = args.GetResult(FinetuneArgs.Runs, defaultValue = Path.Combine(out, "runs"))
    // run folders keep their <model>-<task> names (one per pair in this grid)
    let folders =
        let prefix = match method with Trial.Method.Full -> "" | m -> m.Name + "-"
        Map.ofList [ for id, t in trials -> id, Path.Combine(runs, sprintf "%s%s-%s" prefix (FineTune.modelName (Execute.modelFolder t.Model)) (TextTasks.ByName t.Task).Name) ]
    let store = Store(Path.Combine(out, "store"), runFolder = fun id -> folders.[id])
    printfn "fine-tuning %d model/task pairs; store %s, run folders under %s" trials.Length store.Folder runs
    let summary = Runner.inProcess "mpo finetune" store trials
    if not summary.Skipped.IsEmpty then printfn "already finished in the store: %s" (String.Join(", ", summary.Skipped))
    match summary.Errors with
    | (_, e) :: _ -> raise e   // every other trial ran and is stored; the first failure is the command's error
    | [] -> ()
    let contents = store.LoadStrict()
    // finished rows of other models and tasks already in the store stay: the table grows run by run
    let ids = set [ for id, _ in trials -> id ]
    let earlier = [ for KeyValue(id, r) in contents do if r.Status = Finished && not (ids.Contains id) then yield r ]
    let records = earlier @ [ for id, _ in trials -> contents.[id] ]
    Baselines.write out records (Reports.Machine.describe ())
    printfn "\n%s\n\nwritten to %s" (Baselines.table records) out
    0
