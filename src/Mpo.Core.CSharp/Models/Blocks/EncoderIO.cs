using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// What an encoder-only model (BERT, ALBERT, DistilBERT) reads from <see cref="ModelInputs"/> and hands back as
/// <see cref="ModelOutputs"/>: it rejects the decoder arguments it would otherwise silently ignore, turns the padding
/// mask into the additive attention bias, and moves its outputs out of the forward pass's dispose scope.
/// </summary>
public static class EncoderIO
{
    /// <summary>Throws naming the first decoder-only argument that was given.</summary>
    public static void RejectDecoderArguments(ModelInputs inputs, string architecture)
    {
        string? given = inputs.DecoderInputIds is not null ? "decoder_input_ids"
            : inputs.DecoderAttentionMask is not null ? "decoder_attention_mask"
            : inputs.Cache is not null ? "past_key_values"
            : inputs.EncoderHiddenState is not null ? "encoder_hidden_states"
            : null;
        if (given is not null)
            throw new ArgumentException($"{architecture} is an encoder-only model; it does not take {given}", given);
    }

    /// <summary>
    /// The bias [batch, 1, 1, seq] that gives padded keys zero attention weight (HF: (1 − mask)·dtype.min), or null
    /// when there is no mask. The mask must be shaped like input_ids.
    /// </summary>
    public static Tensor? AttentionBias(ModelInputs inputs, ScalarType dtype)
    {
        if (inputs.AttentionMask is not { } mask) return null;
        if (!mask.shape.AsSpan().SequenceEqual(inputs.InputIds.shape))
            throw new ArgumentException($"attention_mask must be shaped like input_ids [{string.Join(",", inputs.InputIds.shape)}], got [{string.Join(",", mask.shape)}]", InputNames.AttentionMask);
        return AttentionMath.PaddingBias(mask, dtype);
    }

    /// <summary>The outputs, moved to the caller's dispose scope (a tensor given twice is moved once).</summary>
    public static ModelOutputs Outputs(Tensor logits, Tensor lastHiddenState, Tensor? loss)
    {
        logits.MoveToOuterDisposeScope();
        if (!ReferenceEquals(lastHiddenState, logits)) lastHiddenState.MoveToOuterDisposeScope();
        loss?.MoveToOuterDisposeScope();
        return new ModelOutputs(logits, lastHiddenState, loss);
    }
}
