using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Tokenization;

namespace Mpo.Data.Batching;

/// <summary>
/// Batches for a classification task read as text to text (<see cref="TextToTextFormat"/>) by an encoder-decoder
/// (T5): the input text framed with &lt;/s&gt; and truncated, right-padded with &lt;pad&gt;; the labels are the class's
/// target word and &lt;/s&gt;, padded with -100 (the model shifts them right for teacher forcing). Predictions are
/// read back by matching generated ids against the target words exactly, so a model that writes anything else is
/// wrong, never rounded to the nearest class.
/// </summary>
public sealed class TextToTextCollator : IBatchCollator<EncodedExample>
{
    readonly int[][] targets;

    /// <param name="framing">T5's framing (&lt;/s&gt; after the input, &lt;pad&gt; padding).</param>
    /// <param name="targets">The tokenized target word of each class (no &lt;/s&gt;), by class index.</param>
    /// <param name="endOfSequence">The id that ends a target (&lt;/s&gt;).</param>
    /// <param name="maxLength">The longest input row, &lt;/s&gt; included.</param>
    /// <exception cref="ArgumentException">A target is empty, or two classes tokenize to the same ids (predictions could not tell them apart).</exception>
    public TextToTextCollator(SequenceFraming framing, IReadOnlyList<int[]> targets, int endOfSequence, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(framing);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxLength, framing.SpecialCount(pair: false));
        if (targets.Count < 2 || targets.Any(t => t is null || t.Length == 0))
            throw new ArgumentException("Every class needs a non-empty target, and there must be at least two classes.", nameof(targets));
        for (int a = 0; a < targets.Count; a++)
            for (int b = a + 1; b < targets.Count; b++)
                if (targets[a].SequenceEqual(targets[b]))
                    throw new ArgumentException($"Classes {a} and {b} have the same target ids [{string.Join(",", targets[a])}].", nameof(targets));
        Framing = framing;
        this.targets = targets.Select(t => t.ToArray()).ToArray();
        EndOfSequence = endOfSequence;
        MaxLength = maxLength;
    }

    /// <summary>A collator for <paramref name="format"/> with T5's framing from <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no &lt;/s&gt; or &lt;pad&gt;.</exception>
    public static TextToTextCollator For(ITextTokenizer tokenizer, TextToTextFormat format, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(format);
        var framing = SequenceFraming.T5(tokenizer.SpecialTokens);
        return new TextToTextCollator(framing, format.Targets.Select(tokenizer.Encode).ToArray(), framing.AfterFirst[0], maxLength);
    }

    /// <summary>T5's framing.</summary>
    public SequenceFraming Framing { get; }

    /// <summary>The id that ends a target.</summary>
    public int EndOfSequence { get; }

    /// <summary>The longest input row, &lt;/s&gt; included.</summary>
    public int MaxLength { get; }

    /// <summary>The tokenized target word of each class (without &lt;/s&gt;).</summary>
    public IReadOnlyList<int[]> Targets => targets;

    /// <summary>Decoding steps that suffice for any target: its ids and &lt;/s&gt;.</summary>
    public int MaxTargetTokens => targets.Max(t => t.Length) + 1;

    /// <summary>Tokenizes a split once: each example's formatted input, and its class.</summary>
    public static IReadOnlyList<EncodedExample> Encode(ITextTokenizer tokenizer, TextToTextFormat format, IEnumerable<TextExample> examples)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(examples);
        return examples.Select(e => new EncodedExample(tokenizer.Encode(format.Input(e)), null, e.Label, null)).ToArray();
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The batch is empty, or an example has no class or a class without a target.</exception>
    public TokenBatch Collate(IReadOnlyList<EncodedExample> items, BatchKey key)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
            throw new ArgumentException("A batch needs at least one example.", nameof(items));
        var inputs = items.Select(e => Array.ConvertAll(Framing.Frame(e.First, null, MaxLength).InputIds, v => (long)v)).ToArray();
        var ids = TokenMatrix.Pad(inputs, Framing.Padding);
        var mask = TokenMatrix.Pad(inputs.Select(r => Enumerable.Repeat(1L, r.Length).ToArray()).ToArray(), 0, ids.Columns);
        var labels = items.Select((e, i) =>
        {
            if (e.Label is not { } label || label < 0 || label >= targets.Length)
                throw new ArgumentException($"Example {i} of the batch has class {e.Label?.ToString() ?? "none"}; text to text needs one of 0..{targets.Length - 1}.", nameof(items));
            return targets[label].Select(v => (long)v).Append(EndOfSequence).ToArray();
        }).ToArray();
        return new TokenBatch(ids, mask, Labels: TokenMatrix.Pad(labels, TokenBatch.IgnoreIndex));
    }

    /// <summary>
    /// The class whose target a generated row spells: the ids after the decoder start up to the first &lt;/s&gt;
    /// (or the row's end) must equal one class's target exactly; -1 otherwise.
    /// </summary>
    /// <param name="generated">One row of generated ids, starting with the decoder start token.</param>
    public int ClassOf(ReadOnlySpan<long> generated)
    {
        var body = generated.Length > 0 ? generated[1..] : generated;
        var end = body.IndexOf((long)EndOfSequence);
        if (end >= 0) body = body[..end];
        for (int c = 0; c < targets.Length; c++)
        {
            var target = targets[c];
            if (body.Length != target.Length) continue;
            bool same = true;
            for (int i = 0; i < target.Length && same; i++) same = body[i] == target[i];
            if (same) return c;
        }
        return -1;
    }
}
