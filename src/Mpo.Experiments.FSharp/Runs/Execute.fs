/// Running one trial here, in this process: resolve its model and data, fine-tune by its method in its resumable run
/// folder of the store, and store the record — finished with its metrics, or failed with its error (the grid goes on).
module Mpo.Experiments.Runs.Execute

open System
open System.Diagnostics
open System.IO
open Mpo.Data
open Mpo.Training
open Mpo.Experiments.Data
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Store.ResultStore

/// A trial's model: a bundled tiny model, a packaged encoder (converted on first use) or a checkpoint folder.
let modelFolder (name: string) = Mpo.Experiments.Models.ModelFolders.resolve name

/// The trial's task and its folder (the bundled data/tasks/<task> unless the trial names one).
let taskData (trial: Trial) =
    let task = TextTasks.ByName trial.Task
    let folder =
        match trial.Data with
        | Some d -> d
        | None -> Path.Combine(Bundled.root (), TextTasks.Folder, task.Name)
    task, folder

/// The paths a trial reads, checked before anything runs: a missing model or data folder is named with the trial, and
/// a model that cannot answer the task (a language-modelling task needs a causal LM) too.
let checkPaths (id: string) (trial: Trial) =
    let model = modelFolder trial.Model
    let task, folder = taskData trial
    let config =
        use checkpoint = Mpo.Checkpoints.CheckpointFolder.Open model
        Mpo.Models.ModelRegistry.ReadConfig checkpoint
    try FineTune.formulation config task |> ignore
    with :? ArgumentException as e -> invalidArg "model" (sprintf "trial %s: %s" id e.Message)
    if not (Directory.Exists folder) then
        raise (DirectoryNotFoundException(sprintf "trial %s: data folder %s for task %s does not exist" id folder task.Name))
    for split in [ "train"; "dev" ] do
        let file = Path.Combine(folder, split + ".tsv")
        if not (File.Exists file) then raise (FileNotFoundException(sprintf "trial %s: %s is missing (task %s needs train.tsv and dev.tsv)" id file task.Name, file))

/// The record's metrics, sequences and labels of a fine-tuning outcome.
let private measured (o: FineTune.Outcome) =
    let metrics =
        [ for KeyValue(k, v) in o.Dev do ("dev." + k, v)
          for KeyValue(k, v) in o.Test do ("test." + k, v)
          "steps", float o.Steps
          "best_step", float o.BestStep
          "train_seconds", o.TrainSeconds
          "parameters", float o.Parameters
          "trainable_parameters", float o.TrainableParameters
          "test_invalid", float o.TestInvalid
          "test_examples", float o.TestExamples
          "majority_test_accuracy", o.MajorityTestAccuracy
          for KeyValue(k, v) in o.MethodMetrics do (k, v) ]
    Map.ofList metrics, o.Series, Map.ofList [ "head", o.Formulation; "model_name", o.Model ]

/// The code version records carry, once per process.
let codeVersion = lazy (codeVersionOf (try Bundled.root () with _ -> Directory.GetCurrentDirectory()))

/// Runs <c>trial</c> in its run folder of <c>store</c> and stores its record; a failure is recorded, not raised
/// (except cancellation). Returns the stored record (a finished one already there wins) and the failure, if any.
let attempt (store: Store) (id: string) (trial: Trial) (labels: Map<string, string>) (progress: IProgress<TrainingProgress>) =
    let started = DateTimeOffset.Now
    let clock = Stopwatch.StartNew()
    let record status metrics series extra error =
        { TrialId = id; Status = status; Trial = TrialJson.writeTrial trial; Seed = trial.Seed; Code = codeVersion.Force()
          Metrics = metrics; Series = series
          // the trial's ID hashes its configuration only, and the same trial under another torch thread count gives
          // other round-off (hence, over a run, other numbers): the record says which it ran with
          Labels = Map.fold (fun acc k v -> Map.add k v acc) extra labels |> Map.add "torch_threads" (string (TorchSharp.torch.get_num_threads ()))
          WallSeconds = clock.Elapsed.TotalSeconds; StartedAt = started; FinishedAt = DateTimeOffset.Now
          Host = Environment.MachineName; Error = error }
    let result =
        try
            let task, data = taskData trial
            let outcome =
                FineTune.run trial.Method (modelFolder trial.Model) task data (FineTune.settingsOf trial.Training trial.Seed) (store.RunFolder id) progress
            let metrics, series, extra = measured outcome
            // wall_seconds is this attempt's; the metric train_seconds is the run's across resumes (metrics.jsonl)
            record Finished metrics series extra None, None
        with
        | :? OperationCanceledException -> reraise ()
        | e -> record Failed Map.empty Map.empty Map.empty (Some(sprintf "%s: %s" (e.GetType().Name) e.Message)), Some e
    match store.Write(fst result) with
    | Written -> result
    | KeptFinished existing -> existing, None

/// Runs <c>trial</c> and stores its record (see attempt); returns the stored record.
let run (store: Store) (id: string) (trial: Trial) (labels: Map<string, string>) (progress: IProgress<TrainingProgress>) =
    attempt store id trial labels progress |> fst
