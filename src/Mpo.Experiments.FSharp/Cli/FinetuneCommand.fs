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

/// The method the flags name, with its hyper-parameters; flags another method has no use for are errors naming them.
/// Every method's flags are read as a spec's method object by TrialJson.readMethod (one reader: one set of defaults
/// and checks for the command line and specs, so equal settings give the same trial ID either way).
let methodOf (args: ParseResults<FinetuneArgs>) =
    let name = args.GetResult(FinetuneArgs.Method, defaultValue = "full")
    let only (methods: string list) (flags: (string * bool) list) =
        match flags |> List.tryFind (fun (_, given) -> given) with
        | Some (flag, _) when not (List.contains name methods) ->
            invalidArg "method" (sprintf "%s is for --method %s, not %s" flag (String.Join("|", methods)) name)
        | _ -> ()
    only [ "lfa"; "mpop"; "mpop-dir" ] [ "--mpo", args.Contains FinetuneArgs.Mpo ]
    only [ "lfa"; "mpop"; "mpop-dir"; "mpoe" ] [ "--mpo-lr", args.Contains FinetuneArgs.Mpo_Lr ]
    only [ "mpop" ] [ "--loss-gap", args.Contains FinetuneArgs.Loss_Gap; "--squeeze-warmup", args.Contains FinetuneArgs.Squeeze_Warmup
                      "--recovery-steps", args.Contains FinetuneArgs.Recovery_Steps; "--max-cuts", args.Contains FinetuneArgs.Max_Cuts ]
    only [ "mpop"; "mpop-dir" ] [ "--target-parameters", args.Contains FinetuneArgs.Target_Parameters ]
    only [ "lora"; "svd" ] [ "--rank", args.Contains FinetuneArgs.Rank ]
    only [ "lora" ] [ "--lora-alpha", args.Contains FinetuneArgs.Lora_Alpha ]
    only [ "last-layers" ] [ "--layers", args.Contains FinetuneArgs.Layers ]
    let experts = [ "switch"; "moe"; "mpoe" ]
    only experts [ "--experts", args.Contains FinetuneArgs.Experts; "--top-k", args.Contains FinetuneArgs.Top_K
                   "--capacity-factor", args.Contains FinetuneArgs.Capacity_Factor; "--balance-loss", args.Contains FinetuneArgs.Balance_Loss
                   "--z-loss", args.Contains FinetuneArgs.Z_Loss ]
    only [ "mpoe" ] [ "--gradient-mask", args.Contains FinetuneArgs.Gradient_Mask; "--no-share-central", args.Contains FinetuneArgs.No_Share_Central ]
    if not (List.contains name TrialJson.methodNames) then
        invalidArg "method" (sprintf "--method '%s' is not a method (known: %s)" name (String.Join(", ", TrialJson.methodNames)))
    // required values, named by their flag rather than by the spec's field
    if name = "mpop-dir" && not (args.Contains FinetuneArgs.Target_Parameters) then
        invalidArg "target-parameters" "--method mpop-dir needs --target-parameters N (the size to truncate to before fine-tuning)"
    if name = "svd" && not (args.Contains FinetuneArgs.Rank) then
        invalidArg "rank" "--method svd needs --rank R (the rank of each target matrix's factors)"
    let node (v: 'a) = Text.Json.Nodes.JsonValue.Create v :> Text.Json.Nodes.JsonNode
    let objectOf (fields: (string * Text.Json.Nodes.JsonNode option) list) =
        let o = Text.Json.Nodes.JsonObject()
        for key, value in fields do value |> Option.iter (fun v -> o.[key] <- v)
        o
    let mpo = [ "mpo", args.TryGetResult FinetuneArgs.Mpo |> Option.map node; "mpo_learning_rate", args.TryGetResult FinetuneArgs.Mpo_Lr |> Option.map node ]
    // (a node has one parent: each object gets its own)
    let target () = args.TryGetResult FinetuneArgs.Target_Parameters |> Option.map node
    let squeeze () =
        objectOf [ "loss_gap", args.TryGetResult FinetuneArgs.Loss_Gap |> Option.map node
                   "warmup_steps", args.TryGetResult FinetuneArgs.Squeeze_Warmup |> Option.map node
                   "recovery_steps", args.TryGetResult FinetuneArgs.Recovery_Steps |> Option.map node
                   "target_parameters", target ()
                   "max_cuts", args.TryGetResult FinetuneArgs.Max_Cuts |> Option.map node ]
    let fields =
        match name with
        | "lfa" -> mpo
        | "mpop" ->
            let squeeze = squeeze ()
            mpo @ [ "squeeze", (if squeeze.Count = 0 then None else Some(squeeze :> Text.Json.Nodes.JsonNode)) ]
        | "mpop-dir" -> mpo @ [ "target_parameters", target () ]
        | "lora" -> [ "r", args.TryGetResult FinetuneArgs.Rank |> Option.map node; "lora_alpha", args.TryGetResult FinetuneArgs.Lora_Alpha |> Option.map node ]
        | "svd" -> [ "rank", args.TryGetResult FinetuneArgs.Rank |> Option.map node ]
        | "last-layers" -> [ "layers", args.TryGetResult FinetuneArgs.Layers |> Option.map node ]
        | "switch" | "moe" | "mpoe" ->
            [ "experts", args.TryGetResult FinetuneArgs.Experts |> Option.map node
              "top_k", args.TryGetResult FinetuneArgs.Top_K |> Option.map node
              "capacity_factor", args.TryGetResult FinetuneArgs.Capacity_Factor |> Option.map node
              "gradient_mask", args.TryGetResult FinetuneArgs.Gradient_Mask |> Option.map node
              "share_central", (if args.Contains FinetuneArgs.No_Share_Central then Some(node false) else None)
              "balance_loss", args.TryGetResult FinetuneArgs.Balance_Loss |> Option.map node
              "z_loss", args.TryGetResult FinetuneArgs.Z_Loss |> Option.map node
              "mpo_learning_rate", args.TryGetResult FinetuneArgs.Mpo_Lr |> Option.map node ]
        | _ -> []   // full: no hyper-parameters of its own
    TrialJson.readMethod "--method" (objectOf (("name", Some(node name)) :: fields))

/// A run's folder: `<model>-<task>` for full fine-tuning (as before methods existed), `<model>-<task>-<method>` otherwise.
let runFolderName (model: string) (task: string) (m: Trial.Method) =
    match m with
    | Trial.Method.Full -> sprintf "%s-%s" model task
    | other -> sprintf "%s-%s-%s" model task other.Name

let run (args: ParseResults<FinetuneArgs>) =
    let method = methodOf args
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
    let d = Trial.defaultTraining
    let training: Trial.Training =
        { d with
            Epochs = args.GetResult(FinetuneArgs.Epochs, defaultValue = d.Epochs)
            BatchSize = args.GetResult(FinetuneArgs.Batch_Size, defaultValue = d.BatchSize)
            LearningRate = { d.LearningRate with Peak = args.GetResult(FinetuneArgs.Learning_Rate, defaultValue = d.LearningRate.Peak) }
            MaxLength = args.GetResult(FinetuneArgs.Max_Length, defaultValue = d.MaxLength)
            MaxSteps = args.TryGetResult FinetuneArgs.Steps |> Option.map int64
            TrainExamples = args.TryGetResult FinetuneArgs.Train_Examples
            DevExamples = args.TryGetResult FinetuneArgs.Dev_Examples
            TestExamples = args.TryGetResult FinetuneArgs.Test_Examples }
    // the base trial: the flags' settings; the grid sets model and task
    let baseTrial =
        Grid.baseOf { Trial.create "" "" with Data = data; Method = method; Training = training; Seed = int64 (args.GetResult(FinetuneArgs.Seed, defaultValue = int Trial.defaultSeed)) }
    baseTrial.Remove "model" |> ignore
    baseTrial.Remove "task" |> ignore
    let trials = Grid.expand baseTrial (Baselines.grid models [ for t in tasks -> t.Name ])
    for id, t in trials do Execute.checkPaths id t
    let out = args.GetResult(FinetuneArgs.Out, defaultValue = Path.Combine(root, "out", "finetune"))
    let runs = args.GetResult(FinetuneArgs.Runs, defaultValue = Path.Combine(out, "runs"))
    // run folders keep their <model>-<task> names for full fine-tuning (one per pair in this grid), <model>-<task>-<method> otherwise
    let folders = Map.ofList [ for id, t in trials -> id, Path.Combine(runs, runFolderName (FineTune.modelName (Execute.modelFolder t.Model)) (TextTasks.ByName t.Task).Name method) ]
    let store = Store(Path.Combine(out, "store"), runFolder = fun id -> folders.[id])
    printfn "fine-tuning (%s) %d model/task pairs; store %s, run folders under %s" method.Name trials.Length store.Folder runs
    let summary = Runner.inProcess "mpo finetune" store trials
    if not summary.Skipped.IsEmpty then printfn "already finished in the store: %s" (String.Join(", ", summary.Skipped))
    match summary.Errors with
    | (_, e) :: _ -> raise e   // every other trial ran and is stored; the first failure is the command's error
    | [] -> ()
    let contents = store.LoadStrict()
    // finished rows of other models and tasks already in the store stay: the table grows run by run
    let ids = set [ for id, _ in trials -> id ]
    // (of this method: each method's table is its own, in <out> for full fine-tuning and <out>/<method> otherwise)
    let sameMethod (r: Record) =
        match r.Trial.["method"] with
        | :? Text.Json.Nodes.JsonObject as m -> (match m.["name"] with null -> false | n -> n.ToString() = method.Name)
        | _ -> false
    let earlier = [ for KeyValue(id, r) in contents do if r.Status = Finished && not (ids.Contains id) && sameMethod r then yield r ]
    let records = earlier @ [ for id, _ in trials -> contents.[id] ]
    let tables = match method with Trial.Method.Full -> out | other -> Path.Combine(out, other.Name)
    Directory.CreateDirectory tables |> ignore
    Baselines.write tables records (Reports.Machine.describe ())
    for id, _ in trials do
        let adapter = Methods.adapterFolder folders.[id]
        if Directory.Exists adapter then printfn "adapter: %s" adapter
    printfn "\n%s\n\nwritten to %s" (Baselines.table records) tables
    0
