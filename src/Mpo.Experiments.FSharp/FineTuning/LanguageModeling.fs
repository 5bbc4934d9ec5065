/// Causal-LM fine-tuning's data and scores (MPOE Table 1's NLG rows, spec §5.5: GPT-2 on WikiText-2 by perplexity,
/// BLEU-2 and BLEU-4; Self-BLEU-2 for diversity): a language-modelling task's passages become blocks as pre-training
/// cuts them (Pretrain.causalBlocks, batched by CausalLmCollator); a model is scored by perplexity on held-out blocks,
/// and by continuations it samples for the test passages' openings: corpus BLEU against the passages' real
/// continuations and Self-BLEU among the samples (Mpo.Data.Bleu, NLTK's conventions, ε-smoothing as Texygen).
module Mpo.Experiments.FineTuning.LanguageModeling

open System
open System.Collections.Generic
open TorchSharp
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Models
open Mpo.Tokenization
open Mpo.Experiments.Pretraining

/// How the test continuations are sampled: a passage's first PromptTokens tokens are the prompt, its next
/// ContinuationTokens the reference; the model samples as many new tokens (Hugging Face's sampling defaults: top-k 50,
/// temperature 1) from a generator seeded with the run's seed, so a run's samples reproduce.
type Continuations =
    { PromptTokens: int
      ContinuationTokens: int
      TopK: int
      /// Prompts per generation call.
      BatchSize: int }

let continuations = { PromptTokens = 16; ContinuationTokens = 32; TopK = 50; BatchSize = 32 }

/// Perplexity of <c>model</c> on <c>blocks</c>: exp of the mean negative log-likelihood per predicted token, padding
/// excluded (Pretrain.crossEntropy, the mean pre-training reports), in fixed batches of <c>batchSize</c> blocks.
let perplexity (model: PretrainedModel) (collator: IBatchCollator<int[]>) (batchSize: int) (blocks: IReadOnlyList<int[]>) =
    exp (Pretrain.crossEntropy TinyModels.CausalLm model (Pretrain.heldOutBatches batchSize collator blocks))

/// A test passage's opening and what really follows it.
type Prompt = { Ids: int64[]; Reference: string[] }

/// The prompts of <c>passages</c>: every passage with at least PromptTokens + ContinuationTokens tokens, its reference
/// continuation decoded and cut into words (Bleu.Words).
let prompts (tokenizer: ITextTokenizer) (c: Continuations) (passages: IReadOnlyList<TextExample>) =
    [ for p in passages do
        let ids = tokenizer.Encode p.TextA
        if ids.Length >= c.PromptTokens + c.ContinuationTokens then
            { Ids = ids.[.. c.PromptTokens - 1] |> Array.map int64
              Reference = Bleu.Words(tokenizer.Decode(ids.[c.PromptTokens .. c.PromptTokens + c.ContinuationTokens - 1])) } ]

/// The model's sampled continuation of each prompt, decoded (special tokens dropped: a row that ended at
/// <|endoftext|> is padded with it) and cut into words.
let sample (model: PretrainedModel) (tokenizer: ITextTokenizer) (c: Continuations) (seed: int64) (prompts: Prompt list) =
    use generator = new torch.Generator(uint64 seed)
    let options = GenerationOptions(MaxNewTokens = c.ContinuationTokens, DoSample = true, TopK = c.TopK)
    [ for chunk in List.chunkBySize c.BatchSize prompts do
        use scope = torch.NewDisposeScope()
        let ids = torch.tensor(Array.concat [ for p in chunk -> p.Ids ]).reshape(int64 chunk.Length, int64 c.PromptTokens)
        let out = Generation.Generate(model, ids, options = options, generator = generator)
        let sequences = out.Sequences.data<int64>().ToArray()
        let width = int out.Sequences.shape.[1]
        for r in 0 .. chunk.Length - 1 do
            let generated = sequences.[r * width + c.PromptTokens .. (r + 1) * width - 1] |> Array.map int
            yield Bleu.Words(tokenizer.Decode(generated, skipSpecialTokens = true)) ]

/// The names of bleuScores' metrics.
let continuationMetrics = [ "bleu2"; "bleu4"; "self_bleu2" ]

/// The NLG scores of sampled continuations: corpus BLEU-2 and BLEU-4 against the references (one each) and
/// Self-BLEU-2 of the samples, all ε-smoothed (BleuSmoothing.Epsilon), in [0, 1].
let bleuScores (prompts: Prompt list) (samples: string[] list) =
    let hypotheses = [| for s in samples -> s :> IReadOnlyList<string> |]
    let references = [| for p in prompts -> [| p.Reference :> IReadOnlyList<string> |] :> IReadOnlyList<IReadOnlyList<string>> |]
    List.zip continuationMetrics [ Bleu.Corpus(references, hypotheses, 2); Bleu.Corpus(references, hypotheses, 4); Bleu.Self(hypotheses, 2) ]
