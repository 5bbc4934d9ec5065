using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data.Batching;

/// <summary>
/// Batches for T5's span-corruption objective (Raffel et al., JMLR 2020, §3.1.4; Hugging Face's
/// <c>DataCollatorForT5MLM</c> in <c>run_t5_mlm_flax.py</c>). In each block a fraction
/// <see cref="NoiseDensity"/> of the tokens, in spans of mean length <see cref="MeanSpanLength"/>, is noise. The
/// input keeps the other tokens and puts one sentinel where each noise span was; the target lists each sentinel
/// followed by the span it stands for. Both end with &lt;/s&gt;:
/// <code>
/// block   a b c d e f g h      (noise: c d and g)
/// input   a b &lt;X0&gt; e f &lt;X1&gt; h &lt;/s&gt;
/// target  &lt;X0&gt; c d &lt;X1&gt; g &lt;X2&gt; &lt;/s&gt;   (here a last sentinel marks the clean tail)
/// </code>
/// With Hugging Face's noise mask, which always starts with clean tokens and ends with noise, the target holds one
/// sentinel per noise span and none after the last. Rows are right-padded: inputs with &lt;pad&gt; (attention 0), labels
/// with -100. The draws come from <see cref="BatchKey.Random"/> with <see cref="RandomPurpose.SpanCorruption"/>.
/// </summary>
public sealed class SpanCorruptionCollator : IBatchCollator<int[]>
{
    /// <summary>A span-corruption collator.</summary>
    /// <param name="sentinels">The sentinel ids in order: <c>sentinels[k]</c> is <c>&lt;extra_id_k&gt;</c>
    /// (<see cref="T5Sentinels"/> gives T5's).</param>
    /// <param name="endOfSequence">The &lt;/s&gt; id that ends inputs and targets.</param>
    /// <param name="padding">The &lt;pad&gt; id.</param>
    /// <param name="noiseDensity">The fraction of tokens that are noise (T5: 0.15).</param>
    /// <param name="meanSpanLength">The mean length of a noise span (T5: 3).</param>
    public SpanCorruptionCollator(IReadOnlyList<int> sentinels, int endOfSequence, int padding, double noiseDensity = 0.15, double meanSpanLength = 3.0)
    {
        ArgumentNullException.ThrowIfNull(sentinels);
        if (sentinels.Count == 0)
            throw new ArgumentException("At least one sentinel id is needed.", nameof(sentinels));
        if (!(noiseDensity is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(noiseDensity), noiseDensity, "must be between 0 and 1.");
        if (!(meanSpanLength >= 1))
            throw new ArgumentOutOfRangeException(nameof(meanSpanLength), meanSpanLength, "must be at least 1.");
        Sentinels = sentinels.ToArray();
        EndOfSequence = endOfSequence;
        Padding = padding;
        NoiseDensity = noiseDensity;
        MeanSpanLength = meanSpanLength;
    }

    /// <summary>The sentinel ids: <c>Sentinels[k]</c> is <c>&lt;extra_id_k&gt;</c>.</summary>
    public IReadOnlyList<int> Sentinels { get; }

    /// <summary>The &lt;/s&gt; id.</summary>
    public int EndOfSequence { get; }

    /// <summary>The &lt;pad&gt; id.</summary>
    public int Padding { get; }

    /// <summary>The fraction of tokens that are noise.</summary>
    public double NoiseDensity { get; }

    /// <summary>The mean length of a noise span.</summary>
    public double MeanSpanLength { get; }

    /// <summary>
    /// T5's sentinels: <c>&lt;extra_id_k&gt;</c> is the k-th id from the end of the vocabulary, <c>size − 1 − k</c>
    /// (32099 down to 32000 for t5-small's 32,100 tokens), as Hugging Face computes them from <c>len(tokenizer)</c>.
    /// </summary>
    public static int[] T5Sentinels(int vocabularySize, int count = 100) =>
        Enumerable.Range(0, count).Select(k => vocabularySize - 1 - k).ToArray();

    /// <summary>
    /// The block length whose corrupted input has exactly <paramref name="inputLength"/> tokens (&lt;/s&gt;
    /// included), and the target length that goes with it: Hugging Face's <c>compute_input_and_target_lengths</c>,
    /// used to cut <see cref="TokenBlocks"/> so inputs need no padding. T5 pre-training: 512 → (568, 114).
    /// </summary>
    public static (int TokensLength, int TargetsLength) Lengths(int inputLength, double noiseDensity = 0.15, double meanSpanLength = 3.0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputLength, 2);
        (int Inputs, int Targets) For(int tokens)
        {
            var noise = (int)Math.Round(tokens * noiseDensity);
            var spans = (int)Math.Round(noise / meanSpanLength);
            return (tokens - noise + spans + 1, noise + spans + 1);
        }
        var length = inputLength;
        while (For(length + 1).Inputs <= inputLength)
            length++;
        var targets = For(length).Targets;
        // Hugging Face's "minor hack": at density 0.5 the target is trimmed to the input length.
        if (noiseDensity == 0.5 && targets > inputLength)
        {
            length--;
            targets--;
        }
        return (length, targets);
    }

    /// <summary>
    /// Which of <paramref name="length"/> tokens are noise: Hugging Face's <c>random_spans_noise_mask</c>.
    /// round(length · density) noise tokens (at least 1, at most length − 1) in
    /// round(min(noise, clean) / mean span) spans (at least 1); noise and clean tokens are each split into that many
    /// non-empty spans uniformly at random, and the spans alternate, clean first.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is below 2: no clean and noise tokens both.</exception>
    public static bool[] NoiseMask(int length, double noiseDensity, double meanSpanLength, SeededRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 2);
        var noise = Math.Clamp((int)Math.Round(length * noiseDensity), 1, length - 1);
        var clean = length - noise;
        var spans = Math.Max((int)Math.Round(Math.Min(noise, clean) / meanSpanLength), 1);
        var noiseLengths = Segment(noise, spans, random);
        var cleanLengths = Segment(clean, spans, random);
        var mask = new bool[length];
        var at = 0;
        for (var s = 0; s < spans; s++)
        {
            at += cleanLengths[s];
            mask.AsSpan(at, noiseLengths[s]).Fill(true);
            at += noiseLengths[s];
        }
        return mask;
    }

    /// <summary>
    /// <paramref name="items"/> split into <paramref name="segments"/> non-empty runs uniformly at random:
    /// segments − 1 of the items − 1 gaps are chosen as boundaries (a shuffle, as <c>_random_segmentation</c>).
    /// </summary>
    private static int[] Segment(int items, int segments, SeededRandom random)
    {
        var boundaries = new bool[items - 1];
        boundaries.AsSpan(0, segments - 1).Fill(true);
        random.Shuffle(boundaries.AsSpan());
        var lengths = new int[segments];
        var segment = 0;
        lengths[0] = 1;
        foreach (var boundary in boundaries)
        {
            if (boundary)
                segment++;
            lengths[segment]++;
        }
        return lengths;
    }

    /// <summary>The corrupted input and the target of one block under a noise mask.</summary>
    /// <exception cref="ArgumentException">The mask has more noise spans than there are sentinels.</exception>
    public (int[] Input, int[] Target) Corrupt(ReadOnlySpan<int> block, ReadOnlySpan<bool> noise)
    {
        if (block.Length != noise.Length)
            throw new ArgumentException($"The mask has {noise.Length} entries for a block of {block.Length}.", nameof(noise));
        var input = new List<int>(block.Length);
        var target = new List<int>();
        int inputSpans = 0, targetSpans = 0;
        for (var t = 0; t < block.Length; t++)
        {
            // The input replaces each noise span by a sentinel; the target replaces each clean span by one.
            var starts = t == 0 || noise[t] != noise[t - 1];
            if (noise[t])
            {
                if (starts)
                    input.Add(Sentinel(inputSpans++));
                target.Add(block[t]);
            }
            else
            {
                if (starts)
                    target.Add(Sentinel(targetSpans++));
                input.Add(block[t]);
            }
        }
        input.Add(EndOfSequence);
        target.Add(EndOfSequence);
        return (input.ToArray(), target.ToArray());
    }

    private int Sentinel(int k) => k < Sentinels.Count
        ? Sentinels[k]
        : throw new ArgumentException($"The block has more than {Sentinels.Count} spans, one per sentinel id.");

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">A block has fewer than two tokens.</exception>
    public TokenBatch Collate(IReadOnlyList<int[]> items, BatchKey key)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
            throw new ArgumentException("A batch needs at least one block.", nameof(items));
        var random = key.Random(RandomPurpose.SpanCorruption);
        var inputs = new long[items.Count][];
        var targets = new long[items.Count][];
        for (var r = 0; r < items.Count; r++)
        {
            if (items[r].Length < 2)
                throw new ArgumentException($"Block {r} has {items[r].Length} token(s); span corruption needs at least 2 (drop a short last block).", nameof(items));
            var (input, target) = Corrupt(items[r], NoiseMask(items[r].Length, NoiseDensity, MeanSpanLength, random));
            inputs[r] = Array.ConvertAll(input, id => (long)id);
            targets[r] = Array.ConvertAll(target, id => (long)id);
        }
        var inputIds = TokenMatrix.Pad(inputs, Padding);
        var mask = TokenMatrix.Pad(inputs.Select(row => Enumerable.Repeat(1L, row.Length).ToArray()).ToArray(), 0, inputIds.Columns);
        return new TokenBatch(inputIds, mask, Labels: TokenMatrix.Pad(targets, TokenBatch.IgnoreIndex));
    }
}
