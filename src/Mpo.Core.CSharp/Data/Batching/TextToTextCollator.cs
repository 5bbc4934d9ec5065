using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Tokenization;

namespace Mpo.Data.Batching;

/// <summary>
/// Batches for a task read as text to text (<see cref="TextToTextFormat"/>) by an encoder-decoder (T5): the input
/// text framed with &lt;/s&gt; and truncated, right-padded with &lt;pad&gt;; the labels are the target (the class's word,
/// or the score written out) and &lt;/s&gt;, padded with -100 (the model shifts them right for teacher forcing).
/// Classes are read back by matching generated ids against the target words exactly, so a model that writes
/// anything else is wrong, never rounded to the nearest class; scores by parsing the decoded answer.
/// </summary>
public sealed class TextToTextCollator : IBatchCollator<EncodedExample>
{
    readonly int[][] targets;

    /// <param name="framing">T5's framing (&lt;/s&gt; after the input, &lt;pad&gt; padding).</param>
    /// <param name="targets">The tokenized target word of each class (no &lt;/s&gt;), by class index; empty for a
    /// regression task, whose examples carry their own <see cref="EncodedExample.Target"/>.</param>
    /// <param name="endOfSequence">The id that ends a target (&lt;/s&gt;).</param>
    /// <param name="maxLength">The longest input row, &lt;/s&gt; included.</param>
    /// <param name="maxScoreTokens">Regression only: the most ids a written score takes (sizes decoding).</param>
    /// <exception cref="ArgumentException">A target is empty, two classes tokenize to the same ids (predictions could
    /// not tell them apart), or a regression collator lacks <paramref name="maxScoreTokens"/>.</exception>
    public TextToTextCollator(SequenceFraming framing, IReadOnlyList<int[]> targets, int endOfSequence, int maxLength, int? maxScoreTokens = null)
    {
        ArgumentNullException.ThrowIfNull(framing);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxLength, framing.SpecialCount(pair: false));
        if (targets.Count == 0 && maxScoreTokens is not > 0)
            throw new ArgumentException("A regression collator (no class targets) needs maxScoreTokens ≥ 1.", nameof(maxScoreTokens));
        if (targets.Count == 1 || targets.Any(t => t is null || t.Length == 0))
            throw new ArgumentException("Every class needs a non-empty target, and there must be at least two classes.", nameof(targets));
        for (int a = 0; a < targets.Count; a++)
            for (int b = a + 1; b < targets.Count; b++)
                if (targets[a].SequenceEqual(targets[b]))
                    throw new ArgumentException($"Classes {a} and {b} have the same target ids [{string.Join(",", targets[a])}].", nameof(targets));
        Framing = framing;
        this.targets = targets.Select(t => t.ToArray()).ToArray();
        EndOfSequence = endOfSequence;
        MaxLength = maxLength;
        MaxTargetTokens = (targets.Count == 0 ? maxScoreTokens!.Value : this.targets.Max(t => t.Length)) + 1;
    }

    /// <summary>A collator for <paramref name="format"/> with T5's framing from <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no &lt;/s&gt; or &lt;pad&gt;.</exception>
    public static TextToTextCollator For(ITextTokenizer tokenizer, TextToTextFormat format, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(format);
        var framing = SequenceFraming.T5(tokenizer.SpecialTokens);
        return format.IsRegression
            ? new TextToTextCollator(framing, [], framing.AfterFirst[0], maxLength, format.ScoreTargets().Max(t => tokenizer.Encode(t).Length))
            : new TextToTextCollator(framing, format.Targets.Select(tokenizer.Encode).ToArray(), framing.AfterFirst[0], maxLength);
    }

    /// <summary>Whether targets are written scores (no class words).</summary>
    public bool IsRegression => targets.Length == 0;

    /// <summary>T5's framing.</summary>
    public SequenceFraming Framing { get; }

    /// <summary>The id that ends a target.</summary>
    public int EndOfSequence { get; }

    /// <summary>The longest input row, &lt;/s&gt; included.</summary>
    public int MaxLength { get; }

    /// <summary>The tokenized target word of each class (without &lt;/s&gt;).</summary>
    public IReadOnlyList<int[]> Targets => targets;

    /// <summary>Decoding steps that suffice for any target: its ids and &lt;/s&gt;.</summary>
    public int MaxTargetTokens { get; }

    /// <summary>Tokenizes a split once: each example's formatted input, and its class (or its score and the score's
    /// written target).</summary>
    public static IReadOnlyList<EncodedExample> Encode(ITextTokenizer tokenizer, TextToTextFormat format, IEnumerable<TextExample> examples)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(examples);
        return examples.Select(e => format.IsRegression
                ? new EncodedExample(tokenizer.Encode(format.Input(e)), null, null, e.Score,
                                     e.Score is { } score ? tokenizer.Encode(format.ScoreTarget(score)) : null)
                : new EncodedExample(tokenizer.Encode(format.Input(e)), null, e.Label, null))
            .ToArray();
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The batch is empty, or an example has no target: no class, a class without a
    /// target, or (regression) no written score.</exception>
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
            int[] target;
            if (e.Target is { } own)
                target = own;
            else if (IsRegression)
                throw new ArgumentException($"Example {i} of the batch has no written score; encode regression examples with TextToTextCollator.Encode.", nameof(items));
            else if (e.Label is { } label && label >= 0 && label < targets.Length)
                target = targets[label];
            else
                throw new ArgumentException($"Example {i} of the batch has class {e.Label?.ToString() ?? "none"}; text to text needs one of 0..{targets.Length - 1}.", nameof(items));
            return target.Select(v => (long)v).Append(EndOfSequence).ToArray();
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
        var body = AnswerIds(generated);
        return Array.FindIndex(targets, t => t.AsSpan().SequenceEqual(body));
    }

    /// <summary>The answer in a generated row: the ids after the decoder start up to the first &lt;/s&gt; (or the row's end).</summary>
    /// <param name="generated">One row of generated ids, starting with the decoder start token.</param>
    public int[] AnswerIds(ReadOnlySpan<long> generated)
    {
        var body = generated.Length > 0 ? generated[1..] : generated;
        var end = body.IndexOf((long)EndOfSequence);
        if (end >= 0) body = body[..end];
        var ids = new int[body.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)body[i];
        return ids;
    }
}
