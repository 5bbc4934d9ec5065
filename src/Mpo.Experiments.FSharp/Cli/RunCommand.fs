/// `mpo run SPEC`: expands an experiment spec into trials and runs the unfinished ones into its result store — in
/// worker processes here, on Slurm as one job array (`--slurm`), or one trial by ID (`--trial`, what workers and array
/// tasks run); `--status` shows where each trial stands, `--list` what the grid holds.
module Mpo.Experiments.Cli.RunCommand

open System
open System.IO
open Argu
open TorchSharp
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Reports
open Mpo.Experiments.Runs
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore

/// The store a spec's results go to: --store, else the spec's "store", else out/experiments/<name>.
let storeOf (args: ParseResults<RunArgs>) (spec: SpecJson.Spec) =
    match args.TryGetResult RunArgs.Store, spec.Store with
    | Some s, _ -> Store s
    | None, Some s -> Store s
    | None, None -> Store(Path.Combine("out", "experiments", spec.Name))

let private positive (name: string) (value: int) =
    if value < 1 then invalidArg name (sprintf "--%s must be at least 1, got %d" name value)
    value

let run (args: ParseResults<RunArgs>) =
    let specFile =
        match args.TryGetResult RunArgs.Spec with
        | Some f -> f
        | None -> invalidArg "spec" "give the experiment's spec file: mpo run SPEC.json (see mpo run --help)"
    let spec = SpecJson.read specFile
    let trials = SpecJson.trials spec
    let store = storeOf args spec
    args.TryGetResult RunArgs.Threads |> Option.iter (fun n -> torch.set_num_threads (positive "threads" n))
    if not (args.Contains RunArgs.Slurm) then
        [ args.Contains RunArgs.Partition, "partition"; args.Contains RunArgs.Time, "time"; args.Contains RunArgs.Gpus, "gpus"
          args.Contains RunArgs.Throttle, "throttle"; args.Contains RunArgs.Cpus_Per_Task, "cpus-per-task" ]
        |> List.tryFind fst
        |> Option.iter (fun (_, flag) -> invalidArg flag (sprintf "--%s is an sbatch option: give --slurm too" flag))
    match args.TryGetResult RunArgs.Trial with
    | Some id ->
        // one trial, here: what a worker process and a Slurm array task run
        let trial =
            match trials |> List.tryFind (fun (i, _) -> i = id) with
            | Some (_, t) -> t
            | None -> invalidArg "trial" (sprintf "%s has no trial %s (its %d trials: mpo run %s --list)" specFile id trials.Length specFile)
        Execute.checkPaths id trial
        let labels =
            match Environment.GetEnvironmentVariable "SLURM_ARRAY_JOB_ID", Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_ID" with
            | null, _ | _, null -> Map.empty
            | job, task -> Map.ofList [ "slurm_job", sprintf "%s_%s" job task ]
        match store.TryRead id with
        | Some r when r.Status = Finished ->
            printfn "%s is finished in %s; nothing to do" id store.Folder
            0
        | _ ->
            let r = Execute.run store id trial labels (Runner.workerProgress ())
            printfn "%s" (Runner.describe r)
            if r.Status = Finished then 0 else 1
    | None when args.Contains RunArgs.List ->
        let contents = store.Load()
        let rows =
            [ for id, t in trials ->
                let state =
                    match Map.tryFind id contents.Records with
                    | Some r when r.Status = Finished -> "finished"
                    | Some _ -> "failed"
                    | None -> "–"
                [ id; t.Model; t.Task; t.Method.Name; string t.Seed; state ] ]
        printfn "%s: %d trials, store %s\n\n%s" specFile trials.Length store.Folder
            (Tables.markdown [ "trial"; "model"; "task"; "method"; "seed"; "in store" ] rows)
        for file, problem in contents.Corrupt do eprintfn "mpo: warning: unreadable store entry %s: %s" file problem
        0
    | None when args.Contains RunArgs.Status ->
        let states, corrupt = Slurm.status store trials
        let rows = [ for s in states -> [ s.Trial; defaultArg s.Task "–"; s.State; s.Detail ] ]
        printfn "%s: %d trials, store %s\n\n%s" specFile trials.Length store.Folder (Tables.markdown [ "trial"; "array task"; "state"; "detail" ] rows)
        let counts = states |> List.countBy (fun s -> s.State) |> List.map (fun (s, n) -> sprintf "%d %s" n s)
        printfn "\n%s" (String.Join(", ", counts))
        for file, problem in corrupt do eprintfn "mpo: error: unreadable store entry %s: %s" file problem
        if corrupt.IsEmpty then 0 else 2
    | None ->
        for id, t in trials do Execute.checkPaths id t
        if args.Contains RunArgs.Slurm then
            let options: Slurm.Options =
                { Partition = args.TryGetResult RunArgs.Partition
                  Time = args.TryGetResult RunArgs.Time
                  Gpus = args.TryGetResult RunArgs.Gpus |> Option.map (positive "gpus")
                  Throttle = args.TryGetResult RunArgs.Throttle |> Option.map (positive "throttle")
                  CpusPerTask = args.TryGetResult RunArgs.Cpus_Per_Task |> Option.map (positive "cpus-per-task") }
            let s = Slurm.submit spec.Name store specFile options trials
            match s.Submission with
            | Some sub ->
                printfn "submitted job %s: an array of %d tasks (%d trials finished, %d still queued); store %s"
                    sub.JobId sub.Trials.Length s.Finished.Length s.Queued.Length store.Folder
                printfn "script %s; follow it with: mpo run %s --status" sub.Script specFile
            | None ->
                printfn "nothing to submit: %d trials finished, %d still queued or running; store %s" s.Finished.Length s.Queued.Length store.Folder
            0
        else
            let jobs = args.GetResult(RunArgs.Jobs, defaultValue = Environment.ProcessorCount) |> positive "jobs"
            printfn "%s: %d trials, store %s" specFile trials.Length store.Folder
            let summary = Runner.workers spec.Name store specFile jobs trials
            printfn "%d trials: %d run now (%d failed), %d already finished" summary.Total summary.Records.Length summary.Failed.Length summary.Skipped.Length
            if summary.Failed.IsEmpty then 0 else 1
