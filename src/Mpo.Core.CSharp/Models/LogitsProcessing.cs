using System;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// The logits warpers of sampling-based decoding (HF <c>TemperatureLogitsWarper</c>, <c>TopKLogitsWarper</c>,
/// <c>TopPLogitsWarper</c>) as pure functions of next-token logits [batch, vocab]. Removed tokens get −∞, so softmax
/// gives them probability 0.
/// </summary>
public static class LogitsProcessing
{
    /// <summary>Checks warper settings before any decoding starts (each warper also checks its own).</summary>
    public static void Validate(double temperature, int topK, double topP)
    {
        CheckTemperature(temperature);
        CheckTopK(topK);
        CheckTopP(topP, 1);
    }

    /// <summary>logits / T: T &lt; 1 sharpens the distribution, T &gt; 1 flattens it.</summary>
    public static Tensor Temperature(Tensor logits, double temperature)
    {
        CheckTemperature(temperature);
        return logits.div(temperature);
    }

    /// <summary>Keeps each row's <paramref name="k"/> largest logits (ties with the k-th largest are kept too, as in HF);
    /// k = 0 or k ≥ vocab keeps all.</summary>
    public static Tensor TopK(Tensor logits, int k)
    {
        CheckTopK(k);
        if (k == 0 || k >= logits.shape[^1]) return logits.alias();
        using var scope = NewDisposeScope();
        var kth = logits.topk(k, dim: -1).values.narrow(-1, k - 1, 1);
        return logits.masked_fill(logits.lt(kth), double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nucleus filtering (Holtzman et al. 2020): keeps the smallest set of most likely tokens whose probabilities sum to
    /// at least <paramref name="p"/> (the token that crosses p stays), and at least <paramref name="minTokensToKeep"/>.
    /// HF's rule: sorted ascending, a token is removed when the cumulative probability up to it is ≤ 1 − p.
    /// </summary>
    public static Tensor TopP(Tensor logits, double p, int minTokensToKeep = 1)
    {
        CheckTopP(p, minTokensToKeep);
        if (p == 1.0) return logits.alias();
        using var scope = NewDisposeScope();
        var (sorted, order) = logits.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var remove = cumulative.le(1 - p);
        long vocab = logits.shape[^1];
        int keep = (int)Math.Min(minTokensToKeep, vocab);
        remove.narrow(-1, vocab - keep, keep).fill_(false);
        var removeInVocabOrder = remove.scatter(-1, order, remove);
        return logits.masked_fill(removeInVocabOrder, double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>HF's warper order for sampling: temperature, then top-k, then top-p.</summary>
    public static Tensor Warp(Tensor logits, double temperature, int topK, double topP)
    {
        using var scope = NewDisposeScope();
        var warped = temperature == 1.0 ? logits : Temperature(logits, temperature);
        warped = TopK(warped, topK);
        return TopP(warped, topP).MoveToOuterDisposeScope();
    }

    static void CheckTemperature(double temperature)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentException($"temperature must be a positive number, got {temperature}", nameof(temperature));
    }

    static void CheckTopK(int k)
    {
        if (k < 0) throw new ArgumentException($"top-k must be ≥ 0 (0 disables it), got {k}", nameof(k));
    }

    static void CheckTopP(double p, int minTokensToKeep)
    {
        if (!(p > 0 && p <= 1)) throw new ArgumentException($"top-p must lie in (0, 1], got {p}", nameof(p));
        if (minTokensToKeep < 1) throw new ArgumentException($"must keep at least one token, got {minTokensToKeep}", nameof(minTokensToKeep));
    }
}
