/// The full fine-tuning baselines (issue 3 §6): each bundled tiny model on each bundled classification task, as
/// data; the results table and figure later issues compare MPOP's lightweight fine-tuning and MPOE against.
module Mpo.Experiments.FineTuning.Baselines

open System
open System.IO
open Plotly.NET
open Mpo.Data
open Mpo.Experiments.Reports
open Mpo.Experiments.FineTuning.FineTune

/// The bundled pre-trained models the baselines start from.
let models = [ "tiny-bert"; "tiny-gpt2"; "tiny-t5" ]

/// The bundled classification tasks.
let tasks = [ TextTasks.Spam; TextTasks.SotuParty ]

let private metricCell (scores: Scores) (name: string) =
    match scores.TryGetValue name with
    | true, v -> Tables.ratio v
    | _ -> "–"

/// One row per run: the trained and total parameters, updates, the test split's metrics (the task's official ones)
/// and the majority-class accuracy as the floor a model must beat.
let table (outcomes: Outcome list) =
    let rows =
        [ for o in outcomes ->
            let task = TextTasks.ByName o.Task
            let metrics = task.Metrics |> Seq.map metricName |> List.ofSeq
            let shown = metrics |> List.map (fun m -> sprintf "%s %s" m (metricCell o.Test m)) |> String.concat ", "
            let devShown = metrics |> List.map (fun m -> sprintf "%s %s" m (metricCell o.Dev m)) |> String.concat ", "
            [ o.Model; o.Task; o.Formulation; Tables.int64s o.TrainableParameters
              sprintf "%s (best %s)" (Tables.int64s o.Steps) (Tables.int64s o.BestStep)
              devShown; shown; (if Double.IsNaN o.MajorityTestAccuracy then "–" else Tables.ratio o.MajorityTestAccuracy)
              (if o.Formulation = TextToText.Name then sprintf "%d / %d" o.TestInvalid o.TestExamples else "–")
              (o.TrainSeconds / 60.0).ToString("0.0", Globalization.CultureInfo.InvariantCulture) ] ]
    Tables.markdown
        [ "model"; "task"; "head"; "trained params"; "updates"; "dev (best)"; "test"; "majority acc."; "invalid answers"; "minutes" ]
        rows

/// Test accuracy per task (the leading metric where a task has no accuracy: CoLA, STS-B), one bar per model, and the
/// majority class's accuracy as the floor.
let figure (outcomes: Outcome list) =
    let taskNames = outcomes |> List.map (fun o -> o.Task) |> List.distinct
    let leading t =
        let task = TextTasks.ByName t
        if Seq.contains TaskMetric.Accuracy task.Metrics then "accuracy" else leadingMetric task
    let keys = [ for t in taskNames -> sprintf "%s (%s)" t (leading t) ]
    let value (o: Outcome) = match o.Test.TryGetValue(leading o.Task) with | true, v -> v | _ -> nan
    let bars =
        [ for m in outcomes |> List.map (fun o -> o.Model) |> List.distinct ->
            let values = [ for t in taskNames -> outcomes |> List.tryFind (fun o -> o.Model = m && o.Task = t) |> Option.map value |> Option.defaultValue nan ]
            Chart.Column(values = values, Keys = keys, Name = m) ]
    let majority =
        [ for t in taskNames -> if leading t = "accuracy" then (outcomes |> List.find (fun o -> o.Task = t)).MajorityTestAccuracy else nan ]
    bars @ [ Chart.Column(values = majority, Keys = keys, Name = "majority class (accuracy)", MarkerColor = Color.fromString "lightgray") ]
    |> Chart.combine
    |> Chart.withYAxisStyle ("test accuracy (or the task's metric)", MinMax = (0.0, 1.0))
    |> Chart.withTitle "Full fine-tuning of the bundled pre-trained models"

/// The report: settings, the table, and where the numbers come from.
let markdown (outcomes: Outcome list) (figureFile: string option) (machine: string) =
    let s = (List.head outcomes).Settings
    let lines =
        [ "# Full fine-tuning baselines"
          ""
          "Every parameter of each bundled pre-trained model fine-tuned on each bundled classification task"
          "(`mpo finetune`). The best dev checkpoint (by the task's leading metric) is scored on the test split."
          sprintf "Settings: %d epochs, batch %d, AdamW lr %g with %g%% linear warmup then linear decay, weight decay %g, at most %d input tokens, seed %d."
              s.Epochs s.BatchSize s.LearningRate (100.0 * s.WarmupRatio) s.WeightDecay s.MaxLength s.Seed
          yield! [ for o in outcomes do
                     match o.Settings.TrainExamples with
                     | Some n -> yield sprintf "%s on %s: trained on %s training examples drawn with the seed (the split subsampled; the same sample for every model on this task)." o.Model o.Task (Tables.int64s (int64 n))
                     | None -> () ]
          "Encoders and GPT-2 get their family's classification head; T5 generates the class word (text to text),"
          "and an answer that is no class word counts as wrong."
          sprintf "Machine: %s." machine
          ""
          table outcomes
          "" ]
        @ (match figureFile with
           | Some f when f.EndsWith ".png" -> [ sprintf "![test accuracy](%s)" f; "" ]
           | Some f -> [ sprintf "Figure: [%s](%s) (no headless Chromium was found for a PNG)." f f; "" ]
           | None -> [])
    String.Join("\n", lines)

/// The outcomes recorded in <c>folder</c>/results.json (none when there is no such file), as <see cref="write"/> wrote them.
let read (folder: string) : Outcome list =
    let path = Path.Combine(folder, "results.json")
    if not (File.Exists path) then []
    else
        use document = Text.Json.JsonDocument.Parse(File.ReadAllText path)
        let scores (e: Text.Json.JsonElement) : Scores = readOnlyDict [ for p in e.EnumerateObject() -> p.Name, p.Value.GetDouble() ]
        let optional (e: Text.Json.JsonElement) (read: Text.Json.JsonElement -> 'a) =
            if e.ValueKind = Text.Json.JsonValueKind.Null then None else Some(read e)
        [ for r in document.RootElement.EnumerateArray() ->
            let p (name: string) = r.GetProperty name
            let s (name: string) = (p "settings").GetProperty name
            { Model = (p "model").GetString(); Task = (p "task").GetString(); Formulation = (p "head").GetString()
              Settings =
                { defaults with
                    Epochs = (s "epochs").GetInt32(); BatchSize = (s "batch_size").GetInt32(); LearningRate = (s "learning_rate").GetDouble()
                    WarmupRatio = (s "warmup_ratio").GetDouble(); WeightDecay = (s "weight_decay").GetDouble(); MaxLength = (s "max_length").GetInt32()
                    Seed = (s "seed").GetInt64(); MaxSteps = optional (s "max_steps") (fun e -> e.GetInt64())
                    TrainExamples = optional (s "train_examples") (fun e -> e.GetInt32()) }
              Steps = (p "steps").GetInt64(); BestStep = (p "best_step").GetInt64(); TrainSeconds = (p "train_seconds").GetDouble()
              Parameters = (p "parameters").GetInt64(); TrainableParameters = (p "trainable_parameters").GetInt64()
              Dev = scores (p "dev"); Test = scores (p "test"); TestInvalid = (p "test_invalid").GetInt32(); TestExamples = (p "test_examples").GetInt32()
              MajorityTestAccuracy = optional (p "majority_test_accuracy") (fun e -> e.GetDouble()) |> Option.defaultValue nan } ]

/// <c>existing</c> rows with <c>fresh</c> ones replacing those of the same model and task, grouped by model in the
/// order models first appear.
let merge (existing: Outcome list) (fresh: Outcome list) =
    let key (o: Outcome) = o.Model, o.Task
    let replaced = fresh |> List.map key |> set
    let rows = (existing |> List.filter (fun o -> not (replaced.Contains(key o)))) @ fresh
    let models = rows |> List.map (fun o -> o.Model) |> List.distinct
    rows |> List.sortBy (fun o -> List.findIndex ((=) o.Model) models)

/// Writes results.json, README.md and the figure to <c>folder</c>.
let write (folder: string) (outcomes: Outcome list) (machine: string) =
    Directory.CreateDirectory folder |> ignore
    Json.write (Path.Combine(folder, "results.json"))
        [| for o in outcomes ->
            {| model = o.Model; task = o.Task; head = o.Formulation; steps = o.Steps; best_step = o.BestStep
               train_seconds = o.TrainSeconds; parameters = o.Parameters; trainable_parameters = o.TrainableParameters
               dev = o.Dev; test = o.Test; test_invalid = o.TestInvalid; test_examples = o.TestExamples
               majority_test_accuracy = (if Double.IsNaN o.MajorityTestAccuracy then Nullable() else Nullable o.MajorityTestAccuracy)
               settings = {| epochs = o.Settings.Epochs; batch_size = o.Settings.BatchSize; learning_rate = o.Settings.LearningRate
                             warmup_ratio = o.Settings.WarmupRatio; weight_decay = o.Settings.WeightDecay
                             max_length = o.Settings.MaxLength; seed = o.Settings.Seed
                             max_steps = Option.toNullable o.Settings.MaxSteps; train_examples = Option.toNullable o.Settings.TrainExamples |} |} |]
    let files = figure outcomes |> Mpo.Experiments.Plots.Export.save (Path.Combine(folder, "accuracy.html")) 800 450
    let png = files |> List.tryFind (fun f -> f.EndsWith ".png") |> Option.map Path.GetFileName
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(folder, "README.md"), markdown outcomes (png |> Option.orElse (Some "accuracy.html")) machine)
