namespace Mpo.Tokenization;

/// <summary>
/// One BERT model input: <c>[CLS] A [SEP]</c> or <c>[CLS] A [SEP] B [SEP]</c>, optionally padded.
/// The three arrays have the same length.
/// </summary>
/// <param name="InputIds">Token ids, special tokens and padding included.</param>
/// <param name="TokenTypeIds">0 for <c>[CLS]</c>, A and its <c>[SEP]</c>; 1 for B and its <c>[SEP]</c>; 0 for padding.</param>
/// <param name="AttentionMask">1 for real tokens, 0 for padding.</param>
public sealed record BertInputs(int[] InputIds, int[] TokenTypeIds, int[] AttentionMask);
