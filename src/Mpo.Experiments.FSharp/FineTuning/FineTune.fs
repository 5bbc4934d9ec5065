/// Fine-tuning a pre-trained checkpoint on a classification or regression task (issue 3 §6): every parameter
/// trained, the baseline MPOP's lightweight fine-tuning and MPOE's experts are compared against. Encoders and GPT-2
/// get their family's classification head (one output for regression); T5 answers text to text, generating the class
/// word or the score written out (as MPOE trains it on GLUE).
/// Runs are resumable; the best dev checkpoint by the task's leading metric is scored on the test split.
module Mpo.Experiments.FineTuning.FineTune

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open Mpo.Checkpoints
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Models
open Mpo.Tokenization
open Mpo.Training
open Mpo.Experiments.Specs

/// How a model answers a task.
type Formulation =
    /// The family's sequence-classification head (HF class name): BERT's pooled [CLS], GPT-2's last token.
    | Head of architecture: string
    /// An encoder-decoder generates the class word or the score (<see cref="TextToTextFormat"/>); anything else counts
    /// as wrong.
    | TextToText

    member f.Name =
        match f with
        | Head a -> a
        | TextToText -> "text-to-text"

/// The hyperparameters of one run (HF Trainer's names where they have one).
type Settings =
    { Epochs: int
      BatchSize: int
      LearningRate: float
      /// The learning rate's shape after warmup (HF's lr_scheduler_type).
      Schedule: ScheduleKind
      WarmupRatio: float
      /// Warmup updates; when 0, WarmupRatio of the total.
      WarmupSteps: int64
      WeightDecay: float
      /// Longest input row, special tokens included.
      MaxLength: int
      Seed: int64
      /// Evaluations on the dev split per epoch (and checkpoints with them).
      EvaluationsPerEpoch: int
      /// Stops after this many updates (smoke runs); None: all epochs.
      MaxSteps: int64 option
      /// Trains on N training examples drawn with the seed (a consistent subsample); None: all.
      TrainExamples: int option
      /// Evaluates on N dev examples drawn with the seed; None: all.
      DevExamples: int option }

/// The settings of a trial's training (the spec's data; see Specs.Trial).
let settingsOf (training: Trial.Training) (seed: int64) =
    { Epochs = training.Epochs
      BatchSize = training.BatchSize
      LearningRate = training.LearningRate.Peak
      Schedule = training.LearningRate.Shape
      WarmupRatio = (match training.LearningRate.Warmup with Schedules.WarmupRatio r -> r | Schedules.WarmupSteps _ -> 0.0)
      WarmupSteps = (match training.LearningRate.Warmup with Schedules.WarmupSteps s -> s | Schedules.WarmupRatio _ -> 0L)
      WeightDecay = training.WeightDecay
      MaxLength = training.MaxLength
      Seed = seed
      EvaluationsPerEpoch = training.EvaluationsPerEpoch
      MaxSteps = training.MaxSteps
      TrainExamples = training.TrainExamples
      DevExamples = training.DevExamples }

/// Full fine-tuning defaults for the tiny models (Specs.Trial.defaultTraining).
let defaults = settingsOf Trial.defaultTraining Trial.defaultSeed

/// A split's metrics, keyed by the task's metric names ("accuracy", "f1", "matthews").
type Scores = IReadOnlyDictionary<string, float>

type Outcome =
    { Model: string
      Task: string
      Formulation: string
      Settings: Settings
      Steps: int64
      BestStep: int64
      TrainSeconds: float
      Parameters: int64
      TrainableParameters: int64
      Dev: Scores
      Test: Scores
      /// Test answers that were no class word or no number (text to text only; counted wrong, or as −1).
      TestInvalid: int
      TestExamples: int
      /// Accuracy of always answering the training split's most frequent class (NaN for regression).
      MajorityTestAccuracy: float
      /// What the method logged besides (the squeezing trajectory, the expert loads, under the store's key names).
      Series: Map<string, float list>
      /// The method's own metrics (cuts made, the size before truncation, the moe.* counts).
      MethodMetrics: Map<string, float> }

let metricName (m: TaskMetric) = (string m).ToLowerInvariant()

/// The task's leading metric, the one the best checkpoint is chosen by.
let leadingMetric (task: TextTask) = metricName task.Metrics.[0]

/// The formulation a checkpoint's family calls for.
let formulation (config: ModelConfig) =
    match ModelRegistry.SequenceClassificationArchitecture config.ModelType with
    | null when config.ModelType = "t5" -> TextToText
    | null -> invalidArg "model" (sprintf "model_type '%s' has neither a classification head nor a text-to-text head" config.ModelType)
    | architecture -> Head architecture

/// A checkpoint folder's name, as results name the model ("tiny-bert").
let modelName (folder: string) = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath folder))

/// What the run needs from the data: encoded splits, the collator, and how to read predictions.
type private Prepared =
    { Collator: IBatchCollator<EncodedExample>
      Train: IReadOnlyList<EncodedExample>
      Dev: IReadOnlyList<EncodedExample>
      Test: IReadOnlyList<EncodedExample> }

let private read (folder: string) (task: TextTask) (split: string) =
    let path = Path.Combine(folder, split + ".tsv")
    let data = TaskFiles.Read(task, path)
    if not data.Labeled then invalidArg "data" (sprintf "%s has no %s column; fine-tuning needs labelled train and dev splits" path task.LabelColumn)
    data.Examples

/// The test split when it is there with labels (GLUE's test labels are withheld: then there is no test score).
let private readTest (folder: string) (task: TextTask) =
    let path = Path.Combine(folder, "test.tsv")
    if not (File.Exists path) then None
    else
        let data = TaskFiles.Read(task, path)
        if data.Labeled then Some data.Examples else None

/// What a model answered for each example: a class (-1: a text-to-text answer that is no class word), or a score
/// (NaN: a text-to-text answer that is no number).
type Answers =
    | Classes of int list
    | Scores of float list

    /// Answers that were neither a class word nor a number.
    member a.Invalid =
        match a with
        | Classes c -> c |> List.filter (fun p -> p < 0) |> List.length
        | Scores s -> s |> List.filter Double.IsNaN |> List.length

/// The model's answers for <c>examples</c>, in fixed, unshuffled batches.
let predict (model: PretrainedModel) (f: Formulation) (tokenizer: ITextTokenizer) (collator: IBatchCollator<EncodedExample>)
            (batchSize: int) (examples: IReadOnlyList<EncodedExample>) =
    let wasTraining = model.training
    model.eval ()
    use _ = torch.no_grad ()
    let classes, scores = ResizeArray<int>(examples.Count), ResizeArray<float>(examples.Count)
    for start in 0 .. batchSize .. examples.Count - 1 do
        use scope = torch.NewDisposeScope()
        let items = [| for i in start .. min (examples.Count - 1) (start + batchSize - 1) -> examples.[i] |]
        let batch = collator.Collate(items, BatchKey())
        let inputs = batch.ToModelInputs()
        match f with
        | Head _ ->
            let logits = model.forward(ModelInputs(inputs.InputIds, AttentionMask = inputs.AttentionMask, TokenTypeIds = inputs.TokenTypeIds)).Logits
            if model.Config.IsRegression then scores.AddRange(logits.select(-1L, 0L).``to``(torch.float64).data<float>().ToArray())
            else classes.AddRange(logits.argmax(-1L).data<int64>().ToArray() |> Array.map int)
        | TextToText ->
            let t2t = collator :?> TextToTextCollator
            let out = Generation.Generate(model, inputs.InputIds, inputs.AttentionMask, GenerationOptions(MaxNewTokens = t2t.MaxTargetTokens))
            let sequences = out.Sequences.data<int64>().ToArray()
            let width = int out.Sequences.shape.[1]
            for r in 0 .. items.Length - 1 do
                let row = ReadOnlySpan(sequences, r * width, width)
                if t2t.IsRegression then
                    let answer = tokenizer.Decode(t2t.AnswerIds row, skipSpecialTokens = true)
                    scores.Add(TextToTextFormat.ParseScore answer |> Option.ofNullable |> Option.defaultValue nan)
                else classes.Add(t2t.ClassOf row)
    if wasTraining then model.train ()
    if scores.Count > 0 then Scores(List.ofSeq scores) else Classes(List.ofSeq classes)

/// The task's metrics for predicted classes against gold ones; an invalid answer (-1) counts as a wrong class.
let score (task: TextTask) (predictions: int list) (gold: int list) : Scores =
    let n = task.NumLabels
    let answered = List.map2 (fun p g -> if p < 0 then (g + 1) % n else p) predictions gold
    let metrics = TaskMetrics.Compute(task, ResizeArray answered, ResizeArray gold)
    readOnlyDict [ for KeyValue(m, v) in metrics -> metricName m, v ]

/// The task's metrics for predicted scores against gold ones; an answer that is no number (NaN) counts as −1, as T5's
/// STS-B post-processing scores it. A constant answer has no correlation with anything: SciPy (and TaskMetrics) say
/// NaN, which can neither be logged as JSON nor ranked for the best checkpoint, so it is reported as 0.
let scoreRegression (task: TextTask) (predictions: float list) (gold: float list) : Scores =
    let answered = predictions |> List.map (fun p -> if Double.IsNaN p then -1.0 else p)
    let metrics = TaskMetrics.Compute(task, ResizeArray answered, ResizeArray gold)
    readOnlyDict [ for KeyValue(m, v) in metrics -> metricName m, (if Double.IsNaN v then 0.0 else v) ]

/// The metrics of <c>answers</c> against the examples' labels or scores.
let evaluateAnswers (task: TextTask) (answers: Answers) (examples: IReadOnlyList<EncodedExample>) : Scores =
    match answers with
    | Classes c -> score task c [ for e in examples -> e.Label.Value ]
    | Scores p -> scoreRegression task p [ for e in examples -> e.Score.Value ]

/// Fine-tunes the checkpoint in <c>modelFolder</c> on <c>task</c> by <c>method</c>; the labelled train/dev/test TSV
/// files are in <c>dataFolder</c>; checkpoints and metrics.jsonl go to <c>runFolder</c> (a killed run resumes there).
let run (method: Trial.Method) (modelFolder: string) (task: TextTask) (dataFolder: string) (settings: Settings) (runFolder: string) (progress: IProgress<TrainingProgress>) =
    if task.Kind = TaskKind.LanguageModeling then
        invalidArg "task" (sprintf "task '%s' is language modelling; fine-tuning covers classification and regression tasks" task.Name)
    let config =
        use checkpoint = CheckpointFolder.Open modelFolder
        ModelRegistry.ReadConfig checkpoint
    let f = formulation config
    let tokenizer = Tokenizers.FromFolder modelFolder
    let maxLength =
        match config.MaxPositions |> Option.ofNullable with
        | Some positions when positions < settings.MaxLength -> positions
        | _ -> settings.MaxLength
    let subsample (count: int option) (all: IReadOnlyList<_>) =
        match count with
        | Some n when n < all.Count ->
            // a seeded subsample in the split's order (the split is sorted by class, so its first N would be one class)
            let rng = Random(int settings.Seed)
            let chosen = Array.init all.Count id |> Array.sortBy (fun _ -> rng.Next()) |> Array.truncate n |> Array.sort
            chosen |> Array.map (fun i -> all.[i]) :> IReadOnlyList<_>
        | _ -> all
    let trainExamples = read dataFolder task "train" |> subsample settings.TrainExamples
    let testExamples = readTest dataFolder task |> Option.defaultValue (Array.empty :> IReadOnlyList<_>)
    let collator, encode =
        match f with
        | Head _ ->
            SequenceClassificationCollator(SequenceFraming.For tokenizer, maxLength) :> IBatchCollator<_>,
            fun examples -> SequenceClassificationCollator.Encode(tokenizer, examples)
        | TextToText ->
            let format = TextToTextFormat.For task
            TextToTextCollator.For(tokenizer, format, maxLength), fun examples -> TextToTextCollator.Encode(tokenizer, format, examples)
    let prepared =
        { Collator = collator; Train = encode trainExamples; Dev = encode (read dataFolder task "dev" |> subsample settings.DevExamples); Test = encode testExamples }
    torch.manual_seed settings.Seed |> ignore    // the fresh head's initialization
    let struct (model, loaded) =
        match f with
        | Head architecture ->
            // GPT-2 checkpoints have no pad id; its classifier finds each row's end by the id batches are padded with
            let padding = if config.PadTokenId.HasValue then Nullable() else Nullable(SequenceFraming.For(tokenizer).Padding)
            // one output for a regression task: HF's rule (num_labels = 1) then makes the head regress with MSE
            let labels = if task.IsRegression then [| "LABEL_0" |] :> Collections.Generic.IReadOnlyList<_> else task.LabelNames
            PretrainedModel.Load(modelFolder, architecture, labels, padTokenId = padding)
        | TextToText -> PretrainedModel.Load(modelFolder, "T5ForConditionalGeneration")
    use model = model
    let evaluate () = evaluateAnswers task (predict model f tokenizer prepared.Collator 64 prepared.Dev) prepared.Dev
    /// the dev split's mean loss and metrics (squeezing's p and p̃)
    let devLoss () =
        let wasTraining = model.training
        model.eval ()
        use _ = torch.no_grad ()
        let mutable total = 0.0
        for start in 0 .. 64 .. prepared.Dev.Count - 1 do
            use scope = torch.NewDisposeScope()
            let items = [| for i in start .. min (prepared.Dev.Count - 1) (start + 63) -> prepared.Dev.[i] |]
            let out = model.forward ((prepared.Collator.Collate(items, BatchKey())).ToModelInputs())
            total <- total + out.Loss.ToDouble() * float items.Length
        if wasTraining then model.train ()
        total / float (max 1 prepared.Dev.Count)
    let measure () = devLoss (), evaluate ()
    // what the method does to the model, what it gives the trainer, adds to the loss and keeps (one function per method)
    let ctx: Methods.Context = { Model = model; ModelFolder = modelFolder; RunFolder = runFolder; NewlyInitialized = loaded.NewlyInitialized; Measure = measure }
    let applied =
        match method with
        | Trial.Method.Full -> Methods.full ()
        | Trial.Method.Lfa tuning -> Methods.lfa tuning ctx
        | Trial.Method.Mpop (tuning, squeeze) -> Methods.mpop tuning squeeze ctx
        | Trial.Method.MpopDir (tuning, target) -> Methods.mpopDir tuning target ctx
        | Trial.Method.Lora c -> LowRankMethods.lora c ctx
        | Trial.Method.Svd c -> LowRankMethods.svd c ctx
        | Trial.Method.LastLayers c -> LowRankMethods.lastLayers c ctx
        | Trial.Method.Switch e -> ExpertMethods.switch e ctx
        | Trial.Method.Moe e -> ExpertMethods.moe e ctx
        | Trial.Method.Mpoe e -> ExpertMethods.mpoe e ctx
    let schedule = BatchSchedule(prepared.Train.Count, settings.BatchSize, settings.Seed, shuffle = true)
    let stream = BatchStream(prepared.Train, schedule, prepared.Collator)
    let source = BatchSource.Create(schedule.BatchesPerEpoch, fun epoch index ->
        stream.Collate(schedule.At(int64 epoch * int64 schedule.BatchesPerEpoch + int64 index)))
    let evalSteps = max 1L (int64 schedule.BatchesPerEpoch / int64 (max 1 settings.EvaluationsPerEpoch))
    let options =
        TrainerOptions(
            OutputFolder = runFolder, Epochs = settings.Epochs, MaxSteps = defaultArg settings.MaxSteps -1L,
            LearningRate = settings.LearningRate, WeightDecay = settings.WeightDecay, WarmupRatio = settings.WarmupRatio,
            Schedule = settings.Schedule, WarmupSteps = settings.WarmupSteps,
            MaxGradNorm = 1.0, LoggingSteps = max 1L (min 10L evalSteps), EvalSteps = evalSteps, SaveSteps = evalSteps,
            BestMetric = leadingMetric task, BestMetricMode = MetricMode.Max, LoadBestAtEnd = applied.LoadBestAtEnd,
            ParameterGroups = ResizeArray applied.ParameterGroups, Seed = Nullable settings.Seed)
    let loss (batch: TokenBatch) =
        let inputs = batch.ToModelInputs()
        applied.Loss inputs (fun () ->
            let out = model.forward inputs
            // input tokens (the attention mask's ones), for the tokens-per-second column of metrics.jsonl
            let tokens = Seq.init batch.Size (fun r -> Array.sum (batch.AttentionMask.RowArray r)) |> Seq.sum
            LossOutput(out.Loss, tokens))
    use trainer = new Trainer<TokenBatch>(model, options, source, Func<_, _> loss, Func<_> evaluate, applied.Callbacks, progress)
    let result = trainer.RunOrResume()
    let seconds = MetricsLog.WallTime trainer.MetricsPath   // across resumes, evaluations included
    let best = result.Evaluations |> Seq.tryFind (fun e -> Nullable e.Step = result.BestStep)
    // the model the run ends with: the best checkpoint, or (squeezing) the last good state
    let dev = match best with Some e when applied.LoadBestAtEnd -> e.Metrics | _ -> evaluate ()
    let series, methodMetrics = applied.Finish()
    let testAnswers = predict model f tokenizer prepared.Collator 64 prepared.Test
    let majority =
        if task.IsRegression || prepared.Test.Count = 0 then nan
        else
            let top = prepared.Train |> Seq.countBy (fun e -> e.Label.Value) |> Seq.maxBy snd |> fst
            float (prepared.Test |> Seq.filter (fun e -> e.Label.Value = top) |> Seq.length) / float prepared.Test.Count
    let count = Mpo.Tuning.ParameterCounting.Count model
    { Model = modelName modelFolder
      Task = task.Name
      Formulation = f.Name
      Settings = settings
      Steps = result.GlobalStep
      BestStep = (if result.BestStep.HasValue then result.BestStep.Value else result.GlobalStep)
      TrainSeconds = seconds
      Parameters = count.Total
      TrainableParameters = count.Trainable
      Dev = dev
      Test = (if prepared.Test.Count = 0 then readOnlyDict [] else evaluateAnswers task testAnswers prepared.Test)
      TestInvalid = testAnswers.Invalid
      TestExamples = prepared.Test.Count
      MajorityTestAccuracy = majority
      Series = series
      MethodMetrics = methodMetrics }
