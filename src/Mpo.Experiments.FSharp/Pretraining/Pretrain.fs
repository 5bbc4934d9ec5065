/// Pre-training one tiny model from scratch on the bundled language-modelling corpus (issue 3 §4): tokenize the
/// documents, cut them into blocks, feed the objective's batches to the trainer (resumable), then score the saved
/// half-precision weights on the held-out test split against a unigram baseline fitted on the same objective's
/// training targets.
module Mpo.Experiments.Pretraining.Pretrain

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Models
open Mpo.Tokenization
open Mpo.Training
open Mpo.Experiments.Pretraining.TinyModels

/// The corpus as the objective sees it: token blocks per split and the collator that turns blocks into batches.
type Corpus =
    { Tokenizer: ITextTokenizer
      Collator: IBatchCollator<int[]>
      Train: IReadOnlyList<int[]>
      Dev: IReadOnlyList<int[]>
      Test: IReadOnlyList<int[]>
      /// Tokens of the training split (before framing or corruption).
      TrainTokens: int64 }

let private tokenizerFolder (root: string) (m: TinyModel) = Path.Combine(root, "data", "tokenizers", m.Tokenizer)

/// How the objective reads the bundled `lm` task: its tokenizer, its collator, and how documents become blocks.
/// Documents are separated by the end-of-text token (GPT-2, T5) or framed per block with [CLS] … [SEP] (BERT).
type private Framing =
    { Tokenizer: ITextTokenizer
      Collator: IBatchCollator<int[]>
      BlockLength: int
      Separator: Nullable<int> }

/// The end-of-sequence id of <c>tokenizer</c> (named <c>name</c> in the error when it has none).
let endOfSequence (tokenizer: ITextTokenizer) (name: string) =
    let id = tokenizer.SpecialTokens.EndOfSequence
    if id.HasValue then id.Value else invalidOp (sprintf "%s has no end-of-sequence token" name)

let private framing (root: string) (m: TinyModel) =
    let tokenizer = Tokenizers.FromFolder(tokenizerFolder root m)
    let eos () = endOfSequence tokenizer m.Tokenizer
    let collator, blockLength, separator =
        match m.Objective with
        | CausalLm -> CausalLmCollator(eos ()) :> IBatchCollator<int[]>, m.SequenceLength, Nullable(eos ())
        | MaskedLm ->
            let c = MaskedLmCollator.For(tokenizer :?> BertWordPieceTokenizer)
            c :> IBatchCollator<int[]>, c.BlockLength m.SequenceLength, Nullable()
        | SpanCorruption ->
            let vocab = m.Config["vocab_size"].GetValue<int>()
            let padding = m.Config["pad_token_id"].GetValue<int>()
            let struct (tokens, _) = SpanCorruptionCollator.Lengths(m.SequenceLength - 1)   // room for the input's </s>
            SpanCorruptionCollator(SpanCorruptionCollator.T5Sentinels vocab, eos (), padding) :> IBatchCollator<int[]>, tokens, Nullable(eos ())
    { Tokenizer = tokenizer; Collator = collator; BlockLength = blockLength; Separator = separator }

/// A split's documents (its passages joined per document), tokenized.
let documentTokens (tokenizer: ITextTokenizer) (split: TextSplit) =
    split.DocumentTexts() |> Seq.map tokenizer.Encode |> Array.ofSeq

let private documents (root: string) (tokenizer: ITextTokenizer) (split: string) =
    documentTokens tokenizer (TextTasks.Read(root, TextTasks.Lm, split))

let private blocks (f: Framing) (documents: int[][]) =
    TokenBlocks.Build(documents, f.Separator, f.BlockLength, dropRemainder = false)

/// A causal LM's blocks of a split, as pre-training cuts them: the documents joined by the end-of-text token
/// <c>eos</c>, cut into blocks of <c>blockLength</c> tokens (the last one shorter; CausalLmCollator pads it).
let causalBlocks (tokenizer: ITextTokenizer) (eos: int) (blockLength: int) (split: TextSplit) =
    TokenBlocks.Build(documentTokens tokenizer split, Nullable eos, blockLength, dropRemainder = false)

/// Tokenizes the bundled `lm` task and cuts it into the blocks the objective trains on.
let corpus (root: string) (m: TinyModel) =
    let f = framing root m
    let trainDocuments = documents root f.Tokenizer "train"
    { Tokenizer = f.Tokenizer
      Collator = f.Collator
      Train = blocks f trainDocuments
      Dev = blocks f (documents root f.Tokenizer "dev")
      Test = blocks f (documents root f.Tokenizer "test")
      TrainTokens = trainDocuments |> Array.sumBy (fun d -> int64 d.Length) }

/// One held-out split's blocks and the objective's collator, without tokenizing the training split.
let heldOut (root: string) (m: TinyModel) (split: string) =
    let f = framing root m
    f.Collator, blocks f (documents root f.Tokenizer split)

/// The label tokens a model is scored on: every label ≠ -100; for a causal LM the labels from position 1 on
/// (HF GPT-2 shifts inside the model: position t predicts t+1).
let predictedTokens (objective: Objective) (batch: TokenBatch) =
    match batch.Labels with
    | null -> Seq.empty
    | labels ->
        seq {
            let start = if objective = CausalLm then 1 else 0
            for r in 0 .. labels.Rows - 1 do
                for c in start .. labels.Columns - 1 do
                    let v = int64 (labels.[r, c])
                    if v <> TokenBatch.IgnoreIndex then yield v
        }

/// A fixed, unshuffled pass over held-out blocks (masking/corruption seeded, so every evaluation sees the same batches).
let heldOutBatches (batchSize: int) (collator: IBatchCollator<int[]>) (blocks: IReadOnlyList<int[]>) =
    let schedule = BatchSchedule(blocks.Count, batchSize, 20240601L, shuffle = false)
    let stream = BatchStream(blocks, schedule, collator)
    [ for b, tokens in stream.Epoch 0 -> tokens ]

/// Mean cross-entropy per predicted token (nats) of <c>model</c> over <c>batches</c>: each batch's mean loss
/// weighted by its number of predicted tokens, which is the exact per-token mean (padding is no predicted token).
/// The model's training mode is restored afterwards.
let crossEntropy (objective: Objective) (model: PretrainedModel) (batches: TokenBatch list) =
    let wasTraining = model.training
    model.eval ()
    use _ = torch.no_grad ()
    let mutable sum, count = 0.0, 0L
    for batch in batches do
        use scope = torch.NewDisposeScope()
        let n = predictedTokens objective batch |> Seq.length |> int64
        let out = model.forward (batch.ToModelInputs())
        sum <- sum + float (out.Loss.item<float32>()) * float n
        count <- count + n
    if wasTraining then model.train ()
    sum / float count

/// Where a pre-training run keeps its checkpoints and metrics (resumable) and where the finished model goes.
type Paths = { Run: string; Model: string }

type Outcome =
    { Result: TrainingResult
      /// The corpus the run trained on (the model card describes it).
      Corpus: Corpus
      Steps: int64
      TrainSeconds: float
      TestCrossEntropy: float
      UnigramCrossEntropy: float
      TestTokens: int64
      Parameters: int64 }

/// Trains (or resumes) <c>m</c>, writes it to <c>paths.Model</c> in HF layout at half precision with its tokenizer
/// files, and scores the written weights. <c>steps</c> overrides the model's budget (CI smoke runs).
let run (root: string) (m: TinyModel) (paths: Paths) (steps: int64 option) (progress: IProgress<TrainingProgress>) =
    let corpus = corpus root m
    let config = ModelRegistry.ReadConfig(m.Config, sprintf "TinyModels.%s" m.Name)
    torch.manual_seed 42L |> ignore
    use model = ModelRegistry.Create(config, m.Architecture)
    let schedule = BatchSchedule(corpus.Train.Count, m.BatchSize, 42L, shuffle = true, dropLast = true)
    let stream = BatchStream(corpus.Train, schedule, corpus.Collator)
    let source = BatchSource.Create(schedule.BatchesPerEpoch, fun epoch index ->
        stream.Collate(schedule.At(int64 epoch * int64 schedule.BatchesPerEpoch + int64 index)))
    // Evaluation during training on the first 16 dev batches (fixed): enough to draw the curve, cheap enough to
    // repeat; the full test split is scored once at the end.
    let dev = heldOutBatches m.BatchSize corpus.Collator corpus.Dev |> List.truncate 16
    let totalSteps = defaultArg steps (int64 m.Steps)
    let options =
        TrainerOptions(
            OutputFolder = paths.Run, MaxSteps = totalSteps, LearningRate = m.LearningRate, WeightDecay = m.WeightDecay,
            WarmupSteps = min (int64 m.WarmupSteps) (max 1L (totalSteps / 10L)), MaxGradNorm = 1.0,
            LoggingSteps = max 1L (min 10L (totalSteps / 20L)), EvalSteps = max 1L (totalSteps / 4L), SaveSteps = max 1L (totalSteps / 4L),
            BestMetric = "loss", Seed = Nullable 42L)
    let loss (batch: TokenBatch) =
        let out = model.forward (batch.ToModelInputs())
        LossOutput(out.Loss, predictedTokens m.Objective batch |> Seq.length |> int64)
    let evaluate () =
        let ce = crossEntropy m.Objective model dev
        readOnlyDict [ "loss", ce; "perplexity", exp ce ]
    use trainer = new Trainer<TokenBatch>(model, options, source, Func<_, _> loss, Func<_> evaluate, progress = progress)
    let result = trainer.RunOrResume()
    let seconds = MetricsLog.WallTime trainer.MetricsPath   // across resumes, evaluations included
    // What is committed is half precision: score that, not the float32 weights in memory.
    model.Save(paths.Model, storage = torch.float16)
    let struct (saved, _) = PretrainedModel.Load(paths.Model)
    use saved = saved
    let test = heldOutBatches m.BatchSize corpus.Collator corpus.Test
    let testCe = crossEntropy m.Objective saved test
    let trainTargets = heldOutBatches m.BatchSize corpus.Collator corpus.Train |> Seq.collect (predictedTokens m.Objective)
    let unigram = UnigramBaseline.fit config.VocabSize trainTargets
    let testTargets = test |> List.collect (predictedTokens m.Objective >> List.ofSeq)
    { Result = result
      Corpus = corpus
      Steps = result.GlobalStep
      TrainSeconds = seconds
      TestCrossEntropy = testCe
      UnigramCrossEntropy = UnigramBaseline.crossEntropy unigram testTargets
      TestTokens = int64 testTargets.Length
      Parameters = (Mpo.Tuning.ParameterCounting.Count saved).Total }
