/// The full fine-tuning baselines (issue 3 §6): each bundled tiny model on each bundled classification task, as a
/// `full` grid whose records live in a result store; the results table and figure later issues compare MPOP's
/// lightweight fine-tuning and MPOE against are drawn from those records.
module Mpo.Experiments.FineTuning.Baselines

open System
open System.Globalization
open System.IO
open System.Text.Json.Nodes
open Plotly.NET
open Mpo.Data
open Mpo.Experiments.Reports
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.FineTuning.FineTune

/// The bundled pre-trained models the baselines start from.
let models = [ "tiny-bert"; "tiny-gpt2"; "tiny-t5" ]

/// The bundled classification tasks.
let tasks = [ TextTasks.Spam; TextTasks.SotuParty ]

/// The grid: every model on every task, from <c>baseTrial</c> (the settings, and a data folder for one GLUE task).
let grid (models: string list) (tasks: string list) = Grid.product [ Grid.models models; Grid.tasks tasks ]

let private model (r: Record) = r.Labels.TryFind "model_name" |> Option.defaultWith (fun () -> configValue r "model" |> Option.defaultValue "?")
let private task (r: Record) = configValue r "task" |> Option.defaultValue "?"
let private head (r: Record) = r.Labels.TryFind "head" |> Option.defaultValue "–"
let private metric (r: Record) (name: string) = Map.tryFind name r.Metrics
let private count (r: Record) (name: string) = metric r name |> Option.map int64 |> Option.defaultValue 0L

let private metricCell (r: Record) (split: string) (name: string) =
    match metric r (split + "." + name) with
    | Some v -> Tables.ratio v
    | None -> "–"

/// One row per run: the trained and total parameters, updates, the test split's metrics (the task's official ones)
/// and the majority-class accuracy as the floor a model must beat.
let table (records: Record list) =
    let rows =
        [ for r in records ->
            let t = TextTasks.ByName(task r)
            // a language-modelling task's test split has the sampled continuations' scores besides its perplexity
            let metrics = (t.Metrics |> Seq.map metricName |> List.ofSeq) @ (if t.Kind = TaskKind.LanguageModeling then LanguageModeling.continuationMetrics else [])
            let shown split =
                metrics |> List.filter (fun m -> t.Kind <> TaskKind.LanguageModeling || (metric r (split + "." + m)).IsSome)
                |> List.map (fun m -> sprintf "%s %s" m (metricCell r split m)) |> String.concat ", "
            let majority = metric r "majority_test_accuracy"
            [ model r; task r; head r; Tables.int64s (count r "trainable_parameters")
              sprintf "%s (best %s)" (Tables.int64s (count r "steps")) (Tables.int64s (count r "best_step"))
              shown "dev"; shown "test"; (match majority with Some m -> Tables.ratio m | None -> "–")
              (if head r = TextToText.Name then sprintf "%d / %d" (count r "test_invalid") (count r "test_examples") else "–")
              ((defaultArg (metric r "train_seconds") nan) / 60.0).ToString("0.0", CultureInfo.InvariantCulture) ] ]
    Tables.markdown
        [ "model"; "task"; "head"; "trained params"; "updates"; "dev (best)"; "test"; "majority acc."; "invalid answers"; "minutes" ]
        rows

/// Test accuracy per task (the leading metric where a task has no accuracy: CoLA, STS-B), one bar per model, and the
/// majority class's accuracy as the floor.
let figure (records: Record list) =
    let taskNames = records |> List.map task |> List.distinct
    let leading t =
        let k = TextTasks.ByName t
        if Seq.contains TaskMetric.Accuracy k.Metrics then "accuracy" else leadingMetric k
    let keys = [ for t in taskNames -> sprintf "%s (%s)" t (leading t) ]
    let value (r: Record) = metric r ("test." + leading (task r)) |> Option.defaultValue nan
    let bars =
        [ for m in records |> List.map model |> List.distinct ->
            let values = [ for t in taskNames -> records |> List.tryFind (fun r -> model r = m && task r = t) |> Option.map value |> Option.defaultValue nan ]
            Chart.Column(values = values, Keys = keys, Name = m) ]
    let majority =
        [ for t in taskNames ->
            if leading t = "accuracy" then records |> List.find (fun r -> task r = t) |> fun r -> metric r "majority_test_accuracy" |> Option.defaultValue nan
            else nan ]
    bars @ [ Chart.Column(values = majority, Keys = keys, Name = "majority class (accuracy)", MarkerColor = Color.fromString "lightgray") ]
    |> Chart.combine
    |> Chart.withYAxisStyle ("test accuracy (or the task's metric)", MinMax = (0.0, 1.0))
    |> Chart.withTitle "Full fine-tuning of the bundled pre-trained models"

/// The settings the records were trained with (the first record's; a grid from `mpo finetune` shares them).
let private settings (r: Record) =
    let t = TrialJson.readTrial "" r.Trial
    FineTune.settingsOf t.Training t.Seed

/// Where the records' numbers come from: the code versions (commits, or the note of imported records).
let provenance (records: Record list) =
    records
    |> List.map (fun r -> match r.Code.Note with Some n -> n | None -> sprintf "commit %s%s" r.Code.Commit (if r.Code.Dirty then " (uncommitted changes)" else ""))
    |> List.distinct

/// The report: settings, the table, and where the numbers come from.
let markdown (records: Record list) (figureFile: string option) (machine: string) =
    let s = settings (List.head records)
    let lines =
        [ "# Full fine-tuning baselines"
          ""
          "Every parameter of each bundled pre-trained model fine-tuned on each bundled classification task"
          "(`mpo finetune`). The best dev checkpoint (by the task's leading metric) is scored on the test split."
          sprintf "Settings: %d epochs, batch %d, AdamW lr %g with %g%% linear warmup then linear decay, weight decay %g, at most %d input tokens, seed %d."
              s.Epochs s.BatchSize s.LearningRate (100.0 * s.WarmupRatio) s.WeightDecay s.MaxLength s.Seed
          yield! [ for r in records do
                     match (settings r).TrainExamples with
                     | Some n -> yield sprintf "%s on %s: trained on %s training examples drawn with the seed (the split subsampled; the same sample for every model on this task)." (model r) (task r) (Tables.int64s (int64 n))
                     | None -> () ]
          "Encoders and GPT-2 get their family's classification head; T5 generates the class word (text to text),"
          "and an answer that is no class word counts as wrong."
          sprintf "Machine: %s." machine
          ""
          table records
          "" ]
        @ (match figureFile with
           | Some f when f.EndsWith ".png" -> [ sprintf "![test accuracy](%s)" f; "" ]
           | Some f -> [ sprintf "Figure: [%s](%s) (no headless Chromium was found for a PNG)." f f; "" ]
           | None -> [])
        @ [ "The numbers are the records of the result store in `store/` (one file per trial: its full configuration, code"
            "version, metrics and wall time; `mpo report store` tabulates them). Code versions: " + String.Join("; ", provenance records) + "."
            "" ]
    String.Join("\n", lines)

let private scores (r: Record) (split: string) =
    let prefix = split + "."
    readOnlyDict [ for KeyValue(k, v) in r.Metrics do if k.StartsWith prefix then yield k.Substring prefix.Length, v ]

/// Writes results.json (the records in the baselines' format), README.md and the figure to <c>folder</c>.
let write (folder: string) (records: Record list) (machine: string) =
    Directory.CreateDirectory folder |> ignore
    Json.write (Path.Combine(folder, "results.json"))
        [| for r in records ->
            let s = settings r
            {| model = model r; task = task r; head = head r; steps = count r "steps"; best_step = count r "best_step"
               train_seconds = defaultArg (metric r "train_seconds") nan; parameters = count r "parameters"
               trainable_parameters = count r "trainable_parameters"
               dev = scores r "dev"; test = scores r "test"; test_invalid = count r "test_invalid"; test_examples = count r "test_examples"
               majority_test_accuracy = Option.toNullable (metric r "majority_test_accuracy")
               settings = {| epochs = s.Epochs; batch_size = s.BatchSize; learning_rate = s.LearningRate
                             warmup_ratio = s.WarmupRatio; weight_decay = s.WeightDecay
                             max_length = s.MaxLength; seed = s.Seed
                             max_steps = Option.toNullable s.MaxSteps; train_examples = Option.toNullable s.TrainExamples |}
               trial_id = r.TrialId |} |]
    let files = figure records |> Mpo.Experiments.Plots.Export.save (Path.Combine(folder, "accuracy.html")) 800 450
    let png = files |> List.tryFind (fun f -> f.EndsWith ".png") |> Option.map Path.GetFileName
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(folder, "README.md"), markdown records (png |> Option.orElse (Some "accuracy.html")) machine)

/// Store records made from a results.json that `mpo finetune` wrote before the result store existed: each row becomes
/// the record of the trial its settings describe (same ID as `mpo finetune` computes for them), its code version the
/// <c>note</c> saying where it was imported from; <c>made</c> (when the file was committed) stands for the finish time,
/// which the file does not hold.
let importResults (resultsJson: string) (note: string) (made: DateTimeOffset) =
    let rows = JsonNode.Parse(File.ReadAllText resultsJson).AsArray()
    [ for row in rows ->
        let get (k: string) = row.[k]
        let s = get "settings"
        let training =
            { Trial.defaultTraining with
                Epochs = s.["epochs"].GetValue<int>()
                BatchSize = s.["batch_size"].GetValue<int>()
                LearningRate = { Trial.defaultTraining.LearningRate with Peak = s.["learning_rate"].GetValue<float>(); Warmup = Schedules.WarmupRatio(s.["warmup_ratio"].GetValue<float>()) }
                WeightDecay = s.["weight_decay"].GetValue<float>()
                MaxLength = s.["max_length"].GetValue<int>()
                MaxSteps = (match s.["max_steps"] with null -> None | v -> Some(v.GetValue<int64>()))
                TrainExamples = (match s.["train_examples"] with null -> None | v -> Some(v.GetValue<int>())) }
        let trial = { Trial.create (get("model").GetValue<string>()) (get("task").GetValue<string>()) with Training = training; Seed = s.["seed"].GetValue<int64>() }
        let split (name: string) = [ for KeyValue(k, v) in get(name).AsObject() -> name + "." + k, v.GetValue<float>() ]
        let number (k: string) = get(k).GetValue<float>()
        let seconds = number "train_seconds"
        { TrialId = TrialJson.id trial
          Status = Finished
          Trial = TrialJson.writeTrial trial
          Seed = trial.Seed
          Code = { Commit = "unknown"; Dirty = false; Note = Some note }
          Metrics =
            Map.ofList (
                split "dev" @ split "test"
                @ [ for k in [ "steps"; "best_step"; "train_seconds"; "parameters"; "trainable_parameters"; "test_invalid"; "test_examples"; "majority_test_accuracy" ] do
                      match get k with
                      | null -> ()
                      | v -> yield k, v.GetValue<float>() ])
          Series = Map.empty
          Labels = Map.ofList [ "head", get("head").GetValue<string>(); "model_name", get("model").GetValue<string>() ]
          WallSeconds = seconds
          StartedAt = made.AddSeconds(-seconds)
          FinishedAt = made
          Host = "unknown (imported)"
          Error = None } ]
