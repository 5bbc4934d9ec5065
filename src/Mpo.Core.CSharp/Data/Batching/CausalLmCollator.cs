using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data.Batching;

/// <summary>
/// Batches for causal language modelling (GPT-2) from <see cref="TokenBlocks"/>: labels are the input ids themselves
/// and the model shifts them (Hugging Face's convention: <c>GPT2LMHeadModel</c> predicts <c>labels[t + 1]</c> from
/// position <c>t</c>). A shorter last block is right-padded with <paramref name="padding"/>, its attention mask 0 and
/// its labels -100 there, so padding is neither attended to nor predicted.
/// </summary>
/// <param name="padding">The id that fills short rows (GPT-2's &lt;|endoftext|&gt;).</param>
public sealed class CausalLmCollator(int padding) : IBatchCollator<int[]>
{
    /// <summary>The id that fills short rows.</summary>
    public int Padding { get; } = padding;

    /// <inheritdoc/>
    public TokenBatch Collate(IReadOnlyList<int[]> items, BatchKey key)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
            throw new ArgumentException("A batch needs at least one block.", nameof(items));
        var rows = items.Select(block => Array.ConvertAll(block, id => (long)id)).ToArray();
        var ids = TokenMatrix.Pad(rows, Padding);
        var mask = TokenMatrix.Pad(rows.Select(r => Enumerable.Repeat(1L, r.Length).ToArray()).ToArray(), 0, ids.Columns);
        var labels = TokenMatrix.Pad(rows, TokenBatch.IgnoreIndex, ids.Columns);
        return new TokenBatch(ids, mask, Labels: labels);
    }
}
