/// The held-out measure for a headless pre-trained encoder (no LM head to score perplexity with): how far its sentence
/// embeddings move when its weights are changed, as the mean cosine similarity to the embeddings the dense model gives
/// the same held-out texts (1 = unchanged).
module Mpo.Experiments.Models.SentenceAgreement

open System
open System.IO
open TorchSharp
open Mpo.Data
open Mpo.Models
open Mpo.SentenceEmbedding
open Mpo.Tokenization

/// Texts are cut at this many tokens ([CLS] and [SEP] included), as the demo's other measures use 128-token blocks.
let maxTokens = 128

/// <c>count</c> paragraphs spread evenly over the bundled lm task's test split (documents never trained on here).
let heldOutTexts (root: string) (count: int) =
    let all = (TextTasks.Read(root, TextTasks.Lm, "test")).Examples
    let step = max 1 (all.Count / count)
    [ for i in 0 .. step .. all.Count - 1 -> all.[i].TextA ] |> List.truncate count

/// An evaluation of <c>model</c> (loaded from <c>folder</c>, whose pooling files it uses): the reference embeddings are
/// computed now, from the weights the model has at this call (the dense ones); each call of the result encodes the
/// texts again with the weights the model has then and returns the mean cosine to the reference.
let against (model: PretrainedModel) (folder: string) (texts: string list) : unit -> float =
    let pooling =
        SentencePooling.Read folder
        |> Option.ofObj
        |> Option.defaultWith (fun () -> raise (InvalidDataException $"{folder}: no sentence-transformers pooling files, so no sentence embeddings"))
    let tokenizer =
        match Tokenizers.FromFolder folder with
        | :? BertWordPieceTokenizer as t -> t
        | _ -> raise (InvalidDataException $"{folder}: sentence embeddings need a BERT WordPiece vocabulary")
    let encoder = new SentenceEncoder(model, tokenizer, SentencePooling(pooling.Mode, pooling.Normalize, Nullable maxTokens))
    let batch = ResizeArray texts
    let reference = encoder.Encode(batch)
    fun () ->
        use scope = torch.NewDisposeScope()
        let vectors = encoder.Encode(batch)
        torch.nn.functional.cosine_similarity(vectors, reference, 1L).mean().item<float32>() |> float
