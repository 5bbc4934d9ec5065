using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;

namespace Mpo.Data;

/// <summary>How BLEU treats an n-gram order without a single clipped match.</summary>
public enum BleuSmoothing
{
    /// <summary>No smoothing (NLTK's <c>method0</c>): such an order makes the geometric mean (all but) zero.</summary>
    None,
    /// <summary>
    /// NLTK's <c>SmoothingFunction().method1</c> (Chen and Cherry 2014, method 1): an order with no match gets
    /// ε = 0.1 matches instead. Texygen computes BLEU and Self-BLEU with it, and MPOE's NLG table follows Texygen.
    /// </summary>
    Epsilon,
}

/// <summary>
/// BLEU (Papineni et al. 2002) of generated text against references, and Self-BLEU (Zhu et al. 2018, Texygen), with
/// NLTK's conventions (<c>nltk.translate.bleu_score</c>), so the numbers compare with the NLG literature that reports
/// them through NLTK: per order n the clipped n-gram counts (each hypothesis n-gram counted at most as often as in the
/// reference that has it most often), summed over the corpus, over the hypothesis n-gram counts; the geometric mean of
/// the orders 1..N with equal weights; times the brevity penalty exp(1 − r/c) when the hypotheses' total length c is
/// not above r, the sum of each hypothesis' closest reference length (a tie to the shorter). Two NLTK rules kept: a
/// hypothesis shorter than n adds 1 to order n's denominator (NLTK's <c>max(1, ·)</c>), and a corpus without a single
/// unigram match scores 0 whatever the smoothing. Scores are in [0, 1].
/// </summary>
public static class Bleu
{
    /// <summary>ε of <see cref="BleuSmoothing.Epsilon"/> (NLTK's default).</summary>
    public const double Epsilon = 0.1;

    // NLTK's method0 puts the smallest positive double in place of a zero precision (log 0 would be −∞)
    private const double Tiny = 2.2250738585072014E-308;

    private static readonly Regex WordPattern = new(@"\w+|[^\w\s]", RegexOptions.Compiled | RegexOptions.CultureInvariant);

    /// <summary>
    /// The words BLEU compares in decoded text: runs of letters, digits and underscores, and every other non-space
    /// character on its own (so "States." is "States" and "."), case kept.
    /// </summary>
    public static string[] Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return WordPattern.Matches(text).Select(m => m.Value).ToArray();
    }

    /// <summary>Corpus BLEU-<paramref name="maxOrder"/> (NLTK's <c>corpus_bleu</c> with uniform weights).</summary>
    /// <param name="references">Per hypothesis, its references (at least one each).</param>
    /// <param name="hypotheses">The generated token lists, as many as <paramref name="references"/>.</param>
    /// <param name="maxOrder">N: BLEU-2 is 2, BLEU-4 is 4.</param>
    /// <param name="smoothing">What an order without a match contributes.</param>
    /// <exception cref="ArgumentException">No hypothesis, the lists differ in length, a hypothesis has no reference, or maxOrder &lt; 1.</exception>
    public static double Corpus(IReadOnlyList<IReadOnlyList<IReadOnlyList<string>>> references, IReadOnlyList<IReadOnlyList<string>> hypotheses,
                                int maxOrder, BleuSmoothing smoothing = BleuSmoothing.Epsilon)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(hypotheses);
        if (hypotheses.Count == 0)
            throw new ArgumentException("hypotheses is empty; BLEU needs at least one hypothesis.", nameof(hypotheses));
        if (references.Count != hypotheses.Count)
            throw new ArgumentException($"references has {references.Count} entries but hypotheses has {hypotheses.Count}; each hypothesis needs its references.", nameof(references));
        CheckOrder(maxOrder);
        var referenceCounts = new List<Dictionary<string, int>[]>(hypotheses.Count);
        for (var i = 0; i < hypotheses.Count; i++)
        {
            if (references[i] is null || references[i].Count == 0)
                throw new ArgumentException($"references[{i}] is empty; every hypothesis needs at least one reference.", nameof(references));
            referenceCounts.Add(MaxCounts(references[i].Select(r => Counts(r, maxOrder))));
        }
        return Score(hypotheses, i => referenceCounts[i], i => references[i].Select(r => r.Count), maxOrder, smoothing);
    }

    /// <summary>Sentence BLEU-<paramref name="maxOrder"/> of one hypothesis (NLTK's <c>sentence_bleu</c>: the corpus of one).</summary>
    public static double Sentence(IReadOnlyList<IReadOnlyList<string>> references, IReadOnlyList<string> hypothesis,
                                  int maxOrder, BleuSmoothing smoothing = BleuSmoothing.Epsilon) =>
        Corpus([references], [hypothesis], maxOrder, smoothing);

    /// <summary>
    /// Self-BLEU-<paramref name="maxOrder"/> (Texygen's <c>SelfBleu</c>): each sample's sentence BLEU with every other
    /// sample as its references, averaged over the samples. High means the samples repeat one another (less diverse).
    /// </summary>
    /// <param name="samples">At least two generated token lists.</param>
    /// <exception cref="ArgumentException">Fewer than two samples, or maxOrder &lt; 1.</exception>
    public static double Self(IReadOnlyList<IReadOnlyList<string>> samples, int maxOrder, BleuSmoothing smoothing = BleuSmoothing.Epsilon)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count < 2)
            throw new ArgumentException($"samples has {samples.Count} entries; Self-BLEU scores each sample against the others and needs at least two.", nameof(samples));
        CheckOrder(maxOrder);
        // each sample's counts once; a hypothesis's clip is the largest count among the other samples
        var counts = samples.Select(s => Counts(s, maxOrder)).ToArray();
        var total = 0.0;
        for (var i = 0; i < samples.Count; i++)
        {
            var others = Enumerable.Range(0, samples.Count).Where(j => j != i).ToArray();
            var clip = MaxCounts(others.Select(j => counts[j]));
            total += Score([samples[i]], _ => clip, _ => others.Select(j => samples[j].Count), maxOrder, smoothing);
        }
        return total / samples.Count;
    }

    private static double Score(IReadOnlyList<IReadOnlyList<string>> hypotheses, Func<int, Dictionary<string, int>[]> clipOf,
                                Func<int, IEnumerable<int>> referenceLengthsOf, int maxOrder, BleuSmoothing smoothing)
    {
        var matched = new long[maxOrder];
        var possible = new long[maxOrder];
        long hypothesisLength = 0, referenceLength = 0;
        for (var i = 0; i < hypotheses.Count; i++)
        {
            var hypothesis = hypotheses[i] ?? throw new ArgumentException($"hypotheses[{i}] is null.", nameof(hypotheses));
            var counts = Counts(hypothesis, maxOrder);
            var clip = clipOf(i);
            for (var n = 0; n < maxOrder; n++)
            {
                long total = 0;
                foreach (var (gram, count) in counts[n])
                {
                    total += count;
                    matched[n] += Math.Min(count, clip[n].GetValueOrDefault(gram));
                }
                possible[n] += Math.Max(1, total);
            }
            hypothesisLength += hypothesis.Count;
            // the closest reference length, a tie going to the shorter one
            referenceLength += referenceLengthsOf(i).MinBy(r => (Math.Abs(r - hypothesis.Count), r));
        }
        if (matched[0] == 0)
            return 0.0;
        var logMean = 0.0;
        for (var n = 0; n < maxOrder; n++)
        {
            var precision = matched[n] > 0 ? (double)matched[n] / possible[n]
                : smoothing == BleuSmoothing.Epsilon ? Epsilon / possible[n] : Tiny;
            logMean += Math.Log(precision) / maxOrder;
        }
        return BrevityPenalty(referenceLength, hypothesisLength) * Math.Exp(logMean);
    }

    /// <summary>BLEU's brevity penalty: 1 when the hypotheses are longer than the references, exp(1 − r/c) otherwise, 0 for no hypothesis token.</summary>
    /// <param name="referenceLength">r, the summed closest reference lengths.</param>
    /// <param name="hypothesisLength">c, the summed hypothesis lengths.</param>
    public static double BrevityPenalty(long referenceLength, long hypothesisLength)
    {
        if (referenceLength < 0 || hypothesisLength < 0)
            throw new ArgumentException($"lengths must not be negative, got r = {referenceLength}, c = {hypothesisLength}.");
        if (hypothesisLength > referenceLength) return 1.0;
        if (hypothesisLength == 0) return 0.0;
        return Math.Exp(1.0 - (double)referenceLength / hypothesisLength);
    }

    private static void CheckOrder(int maxOrder)
    {
        if (maxOrder < 1)
            throw new ArgumentException($"maxOrder is {maxOrder}; BLEU needs n-grams of order at least 1.", nameof(maxOrder));
    }

    /// <summary>Per order 1..maxOrder, how often each n-gram occurs (keyed by its tokens joined with U+001F).</summary>
    private static Dictionary<string, int>[] Counts(IReadOnlyList<string> tokens, int maxOrder)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var counts = new Dictionary<string, int>[maxOrder];
        for (var n = 1; n <= maxOrder; n++)
        {
            var table = counts[n - 1] = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var start = 0; start + n <= tokens.Count; start++)
            {
                var gram = string.Join('\u001F', Enumerable.Range(start, n).Select(k => tokens[k]));
                table[gram] = table.GetValueOrDefault(gram) + 1;
            }
        }
        return counts;
    }

    /// <summary>Per order, each n-gram's largest count over the references (the clip of modified precision).</summary>
    private static Dictionary<string, int>[] MaxCounts(IEnumerable<Dictionary<string, int>[]> references)
    {
        Dictionary<string, int>[]? max = null;
        foreach (var counts in references)
        {
            max ??= counts.Select(_ => new Dictionary<string, int>(StringComparer.Ordinal)).ToArray();
            for (var n = 0; n < counts.Length; n++)
                foreach (var (gram, count) in counts[n])
                    if (count > max[n].GetValueOrDefault(gram)) max[n][gram] = count;
        }
        return max ?? throw new ArgumentException("a hypothesis needs at least one reference.", nameof(references));
    }
}
