namespace Mpo.Tokenization;

/// <summary>
/// Ids of a tokenizer's special tokens; null where the tokenizer has no such token (GPT-2 has no padding or
/// unknown token, for instance: its byte-level vocabulary can spell anything).
/// </summary>
/// <param name="Padding">Fills batches to a common length (BERT's <c>[PAD]</c>).</param>
/// <param name="Unknown">Stands for text the vocabulary cannot spell (BERT's <c>[UNK]</c>).</param>
/// <param name="Classification">Opens a sequence whose first output feeds a classifier (BERT's <c>[CLS]</c>).</param>
/// <param name="Separator">Ends each segment of a sequence (BERT's <c>[SEP]</c>).</param>
/// <param name="Mask">Hides a token from a masked language model (BERT's <c>[MASK]</c>).</param>
/// <param name="BeginningOfSequence">Opens a sequence (SentencePiece's <c>&lt;s&gt;</c>, GPT-2's <c>&lt;|endoftext|&gt;</c>).</param>
/// <param name="EndOfSequence">Closes a sequence (SentencePiece's <c>&lt;/s&gt;</c>, GPT-2's <c>&lt;|endoftext|&gt;</c>).</param>
public sealed record SpecialTokenIds(
    int? Padding = null,
    int? Unknown = null,
    int? Classification = null,
    int? Separator = null,
    int? Mask = null,
    int? BeginningOfSequence = null,
    int? EndOfSequence = null);
