using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// One batch as every architecture takes it (HF argument names). Token tensors are int64 [batch, seq]; masks are
/// 1 for tokens to attend to and 0 for padding. Encoder-decoder models (T5) read <see cref="DecoderInputIds"/>;
/// when it is null and <see cref="Labels"/> is given they shift the labels right (teacher forcing), as HF does.
/// </summary>
/// <param name="Labels">Class ids [batch] / targets [batch] (regression) for sequence heads; token ids [batch, seq]
/// with -100 for ignored positions for LM heads.</param>
/// <param name="Cache">Keys/values of earlier positions (incremental decoding); appended to by the forward pass.</param>
/// <param name="EncoderHiddenState">A precomputed encoder output (T5 generation reuses it for every step).</param>
/// <param name="PositionIds">Absolute positions [batch, seq] for models with a position table (GPT-2); default
/// past..past+seq-1 where past is the cache length. Left-padded generation passes positions that skip the padding.</param>
public sealed record ModelInputs(
    Tensor InputIds,
    Tensor? AttentionMask = null,
    Tensor? TokenTypeIds = null,
    Tensor? Labels = null,
    Tensor? DecoderInputIds = null,
    Tensor? DecoderAttentionMask = null,
    KeyValueCache? Cache = null,
    Tensor? EncoderHiddenState = null,
    Tensor? PositionIds = null);

/// <summary>
/// What a forward pass returns. <see cref="Logits"/>: [batch, seq, vocab] for LM heads, [batch, labels] for sequence
/// heads, the last hidden state for bare encoders. <see cref="LastHiddenState"/>: the final layer's output (the
/// decoder's for T5). <see cref="Loss"/>: the head's loss when labels were given (HF's loss for that head).
/// </summary>
public sealed record ModelOutputs(Tensor Logits, Tensor LastHiddenState, Tensor? Loss = null, Tensor? EncoderLastHiddenState = null);

/// <summary>Hugging Face's argument names for <see cref="ModelInputs"/>' fields: errors about inputs name these, so a
/// message reads the same to a user of either framework.</summary>
public static class InputNames
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string TokenTypeIds = "token_type_ids";
    public const string PositionIds = "position_ids";
    public const string Labels = "labels";
    public const string DecoderInputIds = "decoder_input_ids";
    public const string DecoderAttentionMask = "decoder_attention_mask";
    public const string EncoderHiddenState = "encoder_outputs";
}
