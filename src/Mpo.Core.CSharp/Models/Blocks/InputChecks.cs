using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// Argument checks every model's forward runs on its <see cref="ModelInputs"/>, so a bad batch fails with the
/// argument's name instead of an index error deep inside an embedding lookup.
/// </summary>
public static class InputChecks
{
    /// <summary>Token ids: int64 [batch, seq] in 0..size-1, where <paramref name="key"/> is the config key that sets
    /// the size (vocab_size, n_positions, type_vocab_size).</summary>
    public static void TokenIds(Tensor ids, long size, string argument, string key = "vocab_size")
    {
        if (ids.dtype != ScalarType.Int64 || ids.dim() != 2)
            throw new ArgumentException($"{argument} must be int64 [batch, seq], got {ids.dtype} [{string.Join(",", ids.shape)}]", argument);
        Range(ids, size, argument, key);
    }

    /// <summary>Every id in 0..size-1; the message names the argument and the config key that sets the size.</summary>
    public static void Range(Tensor ids, long size, string argument, string key)
    {
        if (ids.numel() == 0) return;
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min < 0 || max >= size)
            throw new ArgumentException($"{argument} must lie in 0..{size - 1} ({key} = {size}), got ids from {min} to {max}", argument);
    }

    /// <summary>Token labels for LM heads: int64, ids in 0..vocab-1 or -100 (ignored), same shape as
    /// <paramref name="shapeOf"/>.</summary>
    public static void TokenLabels(Tensor labels, long vocabSize, Tensor shapeOf, string argument)
    {
        if (labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"labels must be int64, got {labels.dtype}", argument);
        if (!labels.shape.AsSpan().SequenceEqual(shapeOf.shape))
            throw new ArgumentException($"labels have shape [{string.Join(",", labels.shape)}], expected [{string.Join(",", shapeOf.shape)}]", argument);
        using var scope = NewDisposeScope();
        var bad = labels.ne(LanguageModelLoss.IgnoreIndex).logical_and(labels.lt(0).logical_or(labels.ge(vocabSize)));
        if (bad.any().item<bool>())
            throw new ArgumentException($"labels must be -100 (ignored) or lie in 0..{vocabSize - 1}, got {labels.masked_select(bad)[0].item<long>()}", argument);
    }

    /// <summary>An attention mask (1 attend, 0 padding) of shape [batch, length].</summary>
    public static void Mask(Tensor mask, long batch, long length, string argument)
    {
        if (mask.dim() != 2 || mask.shape[0] != batch || mask.shape[1] != length)
            throw new ArgumentException($"attention mask has shape [{string.Join(",", mask.shape)}], expected [{batch},{length}] (cached + new positions)", argument);
    }
}
