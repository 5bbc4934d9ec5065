/// The baseline a pre-trained language model must beat on held-out text: a unigram model (token frequencies of the
/// training split, add-one smoothed so unseen tokens keep a finite cost), scored on exactly the tokens the model
/// predicts. A model that only learned frequencies would match it; context is what takes a model below it.
module Mpo.Experiments.Pretraining.UnigramBaseline

type Unigram = { Counts: int64[]; Total: int64 }

/// Counts the training tokens over a vocabulary of <c>vocab</c> ids; ids outside it are an error (they would mean
/// the tokenizer and the model disagree).
let fit (vocab: int) (tokens: seq<int64>) =
    let counts = Array.zeroCreate<int64> vocab
    let mutable total = 0L
    for t in tokens do
        if t < 0L || t >= int64 vocab then invalidArg "tokens" (sprintf "token id %d outside the vocabulary 0..%d" t (vocab - 1))
        counts.[int t] <- counts.[int t] + 1L
        total <- total + 1L
    { Counts = counts; Total = total }

/// ln p(t) = ln((c_t + 1) / (N + V)).
let logProbability (u: Unigram) (token: int64) =
    log (float (u.Counts.[int token] + 1L)) - log (float (u.Total + int64 u.Counts.Length))

/// Mean negative log-likelihood (nats per token) of the held-out tokens.
let crossEntropy (u: Unigram) (tokens: seq<int64>) =
    let mutable sum, n = 0.0, 0L
    for t in tokens do
        sum <- sum - logProbability u t
        n <- n + 1L
    if n = 0L then invalidArg "tokens" "no held-out tokens to score"
    sum / float n

/// exp(cross-entropy): the perplexity a model is compared against.
let perplexity u tokens = exp (crossEntropy u tokens)
