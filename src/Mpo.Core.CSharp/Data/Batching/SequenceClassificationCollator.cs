using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Tokenization;

namespace Mpo.Data.Batching;

/// <summary>A task example with its texts tokenized (no special tokens yet) and its label or score.</summary>
/// <param name="First">The first text's ids.</param>
/// <param name="Second">The second text's ids for a pair task; null otherwise.</param>
/// <param name="Label">The class index, or null.</param>
/// <param name="Score">The regression target, or null.</param>
/// <param name="Target">Text to text: the target's ids when they depend on the example (a score written out); null
/// when the class decides them.</param>
public sealed record EncodedExample(int[] First, int[]? Second, int? Label, double? Score, int[]? Target = null);

/// <summary>
/// Batches for sequence classification and regression heads: each example framed by the model family's special
/// tokens and truncated (<see cref="SequenceFraming.Frame"/>), right-padded to the longest row of the batch (Hugging
/// Face's <c>DataCollatorWithPadding</c>), with an attention mask, segment ids where the family has them, and the
/// class indices or scores.
/// </summary>
public sealed class SequenceClassificationCollator : IBatchCollator<EncodedExample>
{
    /// <summary>A collator for one model family and length.</summary>
    /// <param name="framing">The family's special tokens and padding id.</param>
    /// <param name="maxLength">The longest row, special tokens included (a model's <c>max_position_embeddings</c> or less).</param>
    public SequenceClassificationCollator(SequenceFraming framing, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(framing);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxLength, framing.SpecialCount(pair: true));
        Framing = framing;
        MaxLength = maxLength;
    }

    /// <summary>The family's special tokens and padding id.</summary>
    public SequenceFraming Framing { get; }

    /// <summary>The longest row, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>Tokenizes the examples of a split once, so epochs only frame and pad.</summary>
    public static IReadOnlyList<EncodedExample> Encode(ITextTokenizer tokenizer, IEnumerable<TextExample> examples)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(examples);
        return examples
            .Select(e => new EncodedExample(tokenizer.Encode(e.TextA), e.TextB is null ? null : tokenizer.Encode(e.TextB), e.Label, e.Score))
            .ToArray();
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The batch is empty, or mixes labelled and unlabelled examples or classes and scores.</exception>
    public TokenBatch Collate(IReadOnlyList<EncodedExample> items, BatchKey key)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
            throw new ArgumentException("A batch needs at least one example.", nameof(items));
        var framed = items.Select(e => Framing.Frame(e.First, e.Second, MaxLength)).ToArray();
        var ids = TokenMatrix.Pad(framed.Select(f => Longs(f.InputIds)).ToArray(), Framing.Padding);
        var mask = TokenMatrix.Pad(framed.Select(f => Ones(f.InputIds.Length)).ToArray(), 0, ids.Columns);
        var types = Framing.HasTokenTypes
            ? TokenMatrix.Pad(framed.Select(f => Longs(f.TokenTypeIds!)).ToArray(), 0, ids.Columns)
            : null;

        long[]? classes = null;
        float[]? scores = null;
        if (items.All(e => e.Label is not null && e.Score is null))
            classes = items.Select(e => (long)e.Label!.Value).ToArray();
        else if (items.All(e => e.Score is not null && e.Label is null))
            scores = items.Select(e => (float)e.Score!.Value).ToArray();
        else if (!items.All(e => e.Label is null && e.Score is null))
            throw new ArgumentException("A batch's examples must all have a label, all a score, or all neither.", nameof(items));
        return new TokenBatch(ids, mask, types, ClassLabels: classes, Scores: scores);
    }

    private static long[] Longs(int[] values) => Array.ConvertAll(values, v => (long)v);

    private static long[] Ones(int length)
    {
        var ones = new long[length];
        Array.Fill(ones, 1L);
        return ones;
    }
}
