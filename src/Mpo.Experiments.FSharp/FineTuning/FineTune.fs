/// Fine-tuning a pre-trained checkpoint on a classification or regression task (issue 3 §6): every parameter
/// trained, the baseline MPOP's lightweight fine-tuning and MPOE's experts are compared against. Encoders and GPT-2
/// get their family's classification head (one output for regression); T5 answers text to text, generating the class
/// word or the score written out (as MPOE trains it on GLUE). On a language-modelling task GPT-2 trains as a causal
/// LM (MPOE's NLG rows; LanguageModeling holds its data and scores).
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
open Mpo.Experiments.Pretraining

/// How a model answers a task.
type Formulation =
    /// The family's sequence-classification head (HF class name): BERT's pooled [CLS], GPT-2's last token.
    | Head of architecture: string
    /// An encoder-decoder generates the class word or the score (<see cref="TextToTextFormat"/>); anything else counts
    /// as wrong.
    | TextToText
    /// GPT-2's LM head continues text (a language-modelling task).
    | CausalLm

    member f.Name =
        match f with
        | Head a -> a
        | TextToText -> "text-to-text"
        | CausalLm -> "causal-lm"

    /// The model class the checkpoint is loaded as.
    member f.Architecture =
        match f with
        | Head a -> a
        | TextToText -> "T5ForConditionalGeneration"
        | CausalLm -> "GPT2LMHeadModel"

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
      DevExamples: int option
      /// Scores N test examples drawn with the seed; None: all.
      TestExamples: int option }

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
      DevExamples = training.DevExamples
      TestExamples = training.TestExamples }

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

/// The formulation a checkpoint's family calls for on <c>task</c>.
let formulation (config: ModelConfig) (task: TextTask) =
    if task.Kind = TaskKind.LanguageModeling then
        if config.ModelType = "gpt2" then CausalLm
        else invalidArg "model" (sprintf "task '%s' is language modelling, which fine-tunes a causal LM (GPT-2); model_type '%s' is none" task.Name config.ModelType)
    else
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
        | CausalLm -> invalidArg "f" "a causal LM answers no classification or regression task (LanguageModeling scores it)"
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

/// <c>count</c> items of <c>all</c> drawn with <c>seed</c>, in the split's order (the split is sorted by class, so
/// its first N would be one class); all of them when count is None or not smaller.
let private subsample (seed: int64) (count: int option) (all: IReadOnlyList<'a>) =
    match count with
    | Some n when n < all.Count ->
        let rng = Random(int seed)
        let chosen = Array.init all.Count id |> Array.sortBy (fun _ -> rng.Next()) |> Array.truncate n |> Array.sort
        chosen |> Array.map (fun i -> all.[i]) :> IReadOnlyList<_>
    | _ -> all

/// The training batches of <c>items</c>: shuffled with the seed every epoch, collated by <c>collator</c>.
let private trainingBatches (items: IReadOnlyList<'a>) (collator: IBatchCollator<'a>) (settings: Settings) =
    let schedule = BatchSchedule(items.Count, settings.BatchSize, settings.Seed, shuffle = true)
    let stream = BatchStream(items, schedule, collator)
    schedule.BatchesPerEpoch,
    BatchSource.Create(schedule.BatchesPerEpoch, fun epoch index ->
        stream.Collate(schedule.At(int64 epoch * int64 schedule.BatchesPerEpoch + int64 index)))

/// What training and scoring need from a task, whatever its formulation, once the model is loaded.
type private Scoring =
    { BatchesPerEpoch: int
      Batches: IBatchSource<TokenBatch>
      /// The tokens a batch trains on (the tokens-per-second column of metrics.jsonl).
      Tokens: TokenBatch -> int64
      /// The dev split's metrics (the best checkpoint is chosen by the task's leading metric).
      Evaluate: unit -> Scores
      /// Whether a larger leading metric is better.
      BestMode: MetricMode
      /// The dev split's mean loss (squeezing's p and p̃).
      DevLoss: unit -> float
      /// Metrics of the model as the method hands it to the trainer, measured before the first update.
      Before: unit -> Map<string, float>
      /// The test split's metrics, the answers that were no answer, the examples scored, the majority-class accuracy,
      /// and metrics of the task's own (the continuations sampled).
      Test: unit -> Scores * int * int * float * Map<string, float> }

/// A classification or regression task (labelled TSV splits) for the formulation's head.
let private classification (f: Formulation) (tokenizer: ITextTokenizer) (task: TextTask) (dataFolder: string) (settings: Settings) (maxLength: int) =
    let trainExamples = read dataFolder task "train" |> subsample settings.Seed settings.TrainExamples
    let testExamples = readTest dataFolder task |> Option.defaultValue (Array.empty :> IReadOnlyList<_>) |> subsample settings.Seed settings.TestExamples
    let collator, encode =
        match f with
        | Head _ ->
            SequenceClassificationCollator(SequenceFraming.For tokenizer, maxLength) :> IBatchCollator<_>,
            fun examples -> SequenceClassificationCollator.Encode(tokenizer, examples)
        | TextToText ->
            let format = TextToTextFormat.For task
            TextToTextCollator.For(tokenizer, format, maxLength), fun examples -> TextToTextCollator.Encode(tokenizer, format, examples)
        | CausalLm -> invalidArg "task" (sprintf "task '%s' is no language-modelling task for a causal LM" task.Name)
    let prepared =
        { Collator = collator; Train = encode trainExamples; Dev = encode (read dataFolder task "dev" |> subsample settings.Seed settings.DevExamples); Test = encode testExamples }
    fun (model: PretrainedModel) ->
        let evaluate () = evaluateAnswers task (predict model f tokenizer prepared.Collator 64 prepared.Dev) prepared.Dev
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
        let test () =
            let answers = predict model f tokenizer prepared.Collator 64 prepared.Test
            let majority =
                if task.IsRegression || prepared.Test.Count = 0 then nan
                else
                    let top = prepared.Train |> Seq.countBy (fun e -> e.Label.Value) |> Seq.maxBy snd |> fst
                    float (prepared.Test |> Seq.filter (fun e -> e.Label.Value = top) |> Seq.length) / float prepared.Test.Count
            (if prepared.Test.Count = 0 then readOnlyDict [] else evaluateAnswers task answers prepared.Test),
            answers.Invalid, prepared.Test.Count, majority, Map.empty
        let batchesPerEpoch, batches = trainingBatches prepared.Train prepared.Collator settings
        { BatchesPerEpoch = batchesPerEpoch
          Batches = batches
          // input tokens (the attention mask's ones)
          Tokens = fun batch -> Seq.init batch.Size (fun r -> Array.sum (batch.AttentionMask.RowArray r)) |> Seq.sum
          Evaluate = evaluate
          BestMode = MetricMode.Max
          DevLoss = devLoss
          Before = fun () -> Map.empty
          Test = test }

/// A language-modelling task for a causal LM (MPOE's NLG rows): blocks of max_length tokens cut from the chosen
/// passages as pre-training cuts them; dev perplexity picks the best checkpoint; the test passages are scored by
/// perplexity and by sampled continuations of their openings (BLEU-2/4 against the real ones, Self-BLEU-2).
let private languageModeling (tokenizer: ITextTokenizer) (task: TextTask) (dataFolder: string) (settings: Settings) (maxLength: int) =
    let split (name: string) (count: int option) =
        let all = TaskFiles.Read(task, Path.Combine(dataFolder, name + ".tsv"))
        TextSplit(all.Task, all.Path, all.Labeled, subsample settings.Seed count all.Examples, all.SkippedLines)
    let eos = Pretrain.endOfSequence tokenizer "the model's tokenizer"
    let blocks (s: TextSplit) = Pretrain.causalBlocks tokenizer eos maxLength s
    let collator = CausalLmCollator eos
    let train = blocks (split "train" settings.TrainExamples)
    let dev = blocks (split "dev" settings.DevExamples)
    let testSplit = split "test" settings.TestExamples
    let testBlocks = blocks testSplit
    let c = LanguageModeling.continuations
    if c.PromptTokens + c.ContinuationTokens > maxLength then
        invalidArg "max_length" (sprintf "training.max_length %d is shorter than a continuation's prompt (%d tokens) and reference (%d tokens)" maxLength c.PromptTokens c.ContinuationTokens)
    let prompts = LanguageModeling.prompts tokenizer c testSplit.Examples
    if prompts.Length < 2 then
        invalidArg "test_examples" (sprintf "%s: %d test passages have the %d tokens a prompt and its reference take; Self-BLEU needs at least 2 (score more with training.test_examples)"
                                        testSplit.Path prompts.Length (c.PromptTokens + c.ContinuationTokens))
    fun (model: PretrainedModel) ->
        let scores (blocks: IReadOnlyList<int[]>) =
            let ppl = LanguageModeling.perplexity model collator settings.BatchSize blocks
            [ "perplexity", ppl; "loss", log ppl ]
        let test () =
            let samples = LanguageModeling.sample model tokenizer c settings.Seed prompts
            readOnlyDict (scores testBlocks @ LanguageModeling.bleuScores prompts samples),
            0, testSplit.Examples.Count, nan,
            Map.ofList [ "test_prompts", float prompts.Length; "test_blocks", float testBlocks.Count ]
        let batchesPerEpoch, batches = trainingBatches train collator settings
        { BatchesPerEpoch = batchesPerEpoch
          Batches = batches
          Tokens = fun batch -> Pretrain.predictedTokens TinyModels.CausalLm batch |> Seq.length |> int64
          Evaluate = fun () -> readOnlyDict (scores dev)
          BestMode = MetricMode.Min
          DevLoss = fun () -> log (LanguageModeling.perplexity model collator settings.BatchSize dev)
          // what fine-tuning changed: the pre-trained model's (upcycled experts start as copies of its MLP)
          Before = fun () -> Map.ofList [ "initial_test_perplexity", LanguageModeling.perplexity model collator settings.BatchSize testBlocks ]
          Test = test }

/// Fine-tunes the checkpoint in <c>modelFolder</c> on <c>task</c> by <c>method</c>; the train/dev/test TSV files
/// (labelled, for a classification task) are in <c>dataFolder</c>; checkpoints and metrics.jsonl go to
/// <c>runFolder</c> (a killed run resumes there).
let run (method: Trial.Method) (modelFolder: string) (task: TextTask) (dataFolder: string) (settings: Settings) (runFolder: string) (progress: IProgress<TrainingProgress>) =
    let config =
        use checkpoint = CheckpointFolder.Open modelFolder
        ModelRegistry.ReadConfig checkpoint
    let f = formulation config task
    let tokenizer = Tokenizers.FromFolder modelFolder
    let maxLength =
        match config.MaxPositions |> Option.ofNullable with
        | Some positions when positions < settings.MaxLength -> positions
        | _ -> settings.MaxLength
    let scoringFor =
        match f with
        | CausalLm -> languageModeling tokenizer task dataFolder settings maxLength
        | Head _ | TextToText -> classification f tokenizer task dataFolder settings maxLength
    torch.manual_seed settings.Seed |> ignore    // the fresh head's initialization
    let struct (model, loaded) =
        match f with
        | Head architecture ->
            // GPT-2 checkpoints have no pad id; its classifier finds each row's end by the id batches are padded with
            let padding = if config.PadTokenId.HasValue then Nullable() else Nullable(SequenceFraming.For(tokenizer).Padding)
            // one output for a regression task: HF's rule (num_labels = 1) then makes the head regress with MSE
            let labels = if task.IsRegression then [| "LABEL_0" |] :> Collections.Generic.IReadOnlyList<_> else task.LabelNames
            PretrainedModel.Load(modelFolder, architecture, labels, padTokenId = padding)
        | TextToText | CausalLm -> PretrainedModel.Load(modelFolder, f.Architecture)
    use model = model
    let scoring = scoringFor model
    let measure () = scoring.DevLoss (), scoring.Evaluate ()
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
    let evalSteps = max 1L (int64 scoring.BatchesPerEpoch / int64 (max 1 settings.EvaluationsPerEpoch))
    let options =
        TrainerOptions(
            OutputFolder = runFolder, Epochs = settings.Epochs, MaxSteps = defaultArg settings.MaxSteps -1L,
            LearningRate = settings.LearningRate, WeightDecay = settings.WeightDecay, WarmupRatio = settings.WarmupRatio,
            Schedule = settings.Schedule, WarmupSteps = settings.WarmupSteps,
            MaxGradNorm = 1.0, LoggingSteps = max 1L (min 10L evalSteps), EvalSteps = evalSteps, SaveSteps = evalSteps,
            BestMetric = leadingMetric task, BestMetricMode = scoring.BestMode, LoadBestAtEnd = applied.LoadBestAtEnd,
            ParameterGroups = ResizeArray applied.ParameterGroups, Seed = Nullable settings.Seed)
    let loss (batch: TokenBatch) =
        let inputs = batch.ToModelInputs()
        applied.Loss inputs (fun () -> LossOutput((model.forward inputs).Loss, scoring.Tokens batch))
    // before the trainer exists: a resumed run loads its checkpoint in RunOrResume, after this
    let before = scoring.Before ()
    use trainer = new Trainer<TokenBatch>(model, options, scoring.Batches, Func<_, _> loss, Func<_> scoring.Evaluate, applied.Callbacks, progress)
    let result = trainer.RunOrResume()
    let seconds = MetricsLog.WallTime trainer.MetricsPath   // across resumes, evaluations included
    let best = result.Evaluations |> Seq.tryFind (fun e -> Nullable e.Step = result.BestStep)
    // the model the run ends with: the best checkpoint, or (squeezing) the last good state
    let dev = match best with Some e when applied.LoadBestAtEnd -> e.Metrics | _ -> scoring.Evaluate ()
    let series, methodMetrics = applied.Finish()
    let test, invalid, testExamples, majority, taskMetrics = scoring.Test ()
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
      Test = test
      TestInvalid = invalid
      TestExamples = testExamples
      MajorityTestAccuracy = majority
      Series = series
      MethodMetrics = [ before; taskMetrics ] |> List.fold (Map.fold (fun acc k v -> Map.add k v acc)) methodMetrics }
