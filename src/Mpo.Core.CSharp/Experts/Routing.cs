using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>
/// Where every token of a batch goes (one MoE layer, one forward pass). N tokens, n experts, k choices per token;
/// tensors are on the router's device, in the router's dtype (float32 or wider).
/// </summary>
/// <param name="Probabilities">[N, n] softmax of the router logits.</param>
/// <param name="Experts">[N, k] int64: token t's j-th choice (j = 0 the most probable), before any dropping.</param>
/// <param name="Gates">[N, k] the weight of each choice's output (<see cref="GateMode"/>), 0 where not kept.</param>
/// <param name="Kept">[N, k] bool: the choice reaches its expert (a real token, within capacity).</param>
/// <param name="Slots">[N, k] int64: the choice's place in its expert's queue, in priority order (dropped when
/// ≥ <paramref name="Capacity"/>); meaningless for padding tokens.</param>
/// <param name="Capacity">Tokens an expert takes; <see cref="long.MaxValue"/> when nothing is dropped.</param>
/// <param name="Valid">[N] bool: real (non-padding) tokens.</param>
public sealed record RoutingPlan(Tensor Probabilities, Tensor Experts, Tensor Gates, Tensor Kept, Tensor Slots, long Capacity, Tensor Valid);

/// <summary>
/// The routing arithmetic of Switch/GShard-style MoE layers as pure functions of tensors (spec §5.2; peers.md §1.4):
/// top-k choice, capacity from a capacity factor, priority, dropping, gates, and the two auxiliary losses. The checklist
/// of bugs users reported in well-known implementations is designed out here: padding tokens take no capacity and
/// count in neither loss (transformers#28505); the token fraction f of the balance loss is measured before capacity
/// dropping (Megatron-LM#1513); the priority order really decides who is dropped (transformers#48293); the z-loss is
/// taken on the logits, not on probabilities (ibid.).
/// </summary>
public static class Routing
{
    /// <summary>
    /// Tokens each expert takes: ⌈c·k·tokens/n⌉, at least <paramref name="minCapacity"/> (GShard's and tutel's rule,
    /// with the ceiling so that c = 1 fits a perfectly balanced batch); <see cref="long.MaxValue"/> for c = +∞.
    /// </summary>
    /// <param name="tokens">Real (non-padding) tokens in the batch.</param>
    public static long Capacity(long tokens, int experts, int topK, double capacityFactor, int minCapacity = 0)
    {
        if (tokens < 0) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "token count must be non-negative");
        if (experts < 1) throw new ArgumentOutOfRangeException(nameof(experts), experts, "an MoE layer needs at least one expert");
        if (topK < 1 || topK > experts)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"top-k must be between 1 and the {experts} experts");
        if (!(capacityFactor > 0))
            throw new ArgumentOutOfRangeException(nameof(capacityFactor), capacityFactor, "the capacity factor must be positive (+∞ for no dropping)");
        if (double.IsPositiveInfinity(capacityFactor)) return long.MaxValue;
        var capacity = (long)Math.Ceiling(capacityFactor * topK * tokens / experts - 1e-9);
        return Math.Max(minCapacity, capacity);
    }

    /// <summary>The k most probable experts of every token, most probable first: (experts [N, k] int64, probabilities
    /// [N, k]). Ties go to the lower expert index.</summary>
    public static (Tensor Experts, Tensor Probabilities) TopK(Tensor probabilities, int k)
    {
        CheckMatrix(probabilities, nameof(probabilities));
        if (k < 1 || k > probabilities.shape[1])
            throw new ArgumentOutOfRangeException(nameof(k), k, $"top-k must be between 1 and the {probabilities.shape[1]} experts");
        using var scope = NewDisposeScope();
        if (k == 1)
        {
            var best = probabilities.argmax(1L, keepdim: true);
            return (best.MoveToOuterDisposeScope(), probabilities.gather(1L, best).MoveToOuterDisposeScope());
        }
        // A stable descending sort keeps equal probabilities in expert order.
        var (values, indices) = probabilities.sort(1L, descending: true, stable: true);
        return (indices.narrow(1L, 0, k).MoveToOuterDisposeScope(), values.narrow(1L, 0, k).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The rank of each choice in the dispatch order, 0 first, [N, k] int64: choice j of every token comes after
    /// choice j − 1 of all tokens; within a choice, <see cref="TokenPriority.Position"/> orders by token index and
    /// <see cref="TokenPriority.RouterProbability"/> by the token's top probability, highest first (ties by index).
    /// </summary>
    /// <param name="topProbabilities">[N, k] from <see cref="TopK"/>.</param>
    public static Tensor PriorityRank(Tensor topProbabilities, TokenPriority priority)
    {
        CheckMatrix(topProbabilities, nameof(topProbabilities));
        using var scope = NewDisposeScope();
        long n = topProbabilities.shape[0], k = topProbabilities.shape[1];
        var device = topProbabilities.device;
        Tensor tokenRank;
        if (priority == TokenPriority.Position)
            tokenRank = arange(n, ScalarType.Int64, device);
        else
        {
            var order = topProbabilities.select(1L, 0).sort(0L, descending: true, stable: true).Indices;
            tokenRank = empty(n, ScalarType.Int64, device).scatter_(0, order, arange(n, ScalarType.Int64, device));
        }
        var choice = arange(k, ScalarType.Int64, device).mul(n);
        return tokenRank.unsqueeze(1L).add(choice.unsqueeze(0L)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Each choice's place in its expert's queue, [N, k] int64: the number of valid choices for the same expert with a
    /// smaller <paramref name="rank"/>. Invalid choices (padding) take no place. One sort, no loop over tokens.
    /// </summary>
    /// <param name="experts">[N, k] expert of each choice.</param>
    /// <param name="rank">[N, k] distinct dispatch ranks (<see cref="PriorityRank"/>).</param>
    /// <param name="valid">[N, k] bool: choices that take part.</param>
    public static Tensor Slots(Tensor experts, Tensor rank, Tensor valid, int expertCount)
    {
        using var scope = NewDisposeScope();
        long total = experts.numel();
        var device = experts.device;
        var flatValid = valid.reshape(-1);
        // Invalid choices go to a virtual expert n, after every real one.
        var expert = experts.reshape(-1).masked_fill(flatValid.logical_not(), expertCount);
        var key = expert.mul(total).add(rank.reshape(-1));
        var order = key.argsort(0L);
        var counts = expert.bincount(null, expertCount + 1);
        var starts = counts.cumsum(0L).sub(counts);
        var place = arange(total, ScalarType.Int64, device).sub(starts.index_select(0L, expert.index_select(0L, order)));
        var slots = empty(total, ScalarType.Int64, device).scatter_(0, order, place);
        return slots.reshape(experts.shape).MoveToOuterDisposeScope();
    }

    /// <summary>Gate weights [N, k] of the chosen probabilities (<see cref="GateMode"/>); differentiable in them.</summary>
    public static Tensor GateValues(Tensor topProbabilities, GateMode mode)
    {
        CheckMatrix(topProbabilities, nameof(topProbabilities));
        using var scope = NewDisposeScope();
        var gates = mode switch
        {
            GateMode.Probability => topProbabilities.alias(),
            GateMode.Normalized => topProbabilities.div(topProbabilities.sum(1L, keepdim: true)),
            GateMode.StraightThrough when topProbabilities.shape[1] == 1 => topProbabilities.div(topProbabilities.detach()),
            GateMode.StraightThrough => throw new ArgumentException($"the straight-through gate is top-1; got {topProbabilities.shape[1]} choices per token", nameof(mode)),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown gate mode"),
        };
        return gates.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The whole routing of one batch: softmax, top-k, priority, capacity from <paramref name="capacityFactor"/> over
    /// the valid tokens, dropping, gates.
    /// </summary>
    /// <param name="logits">[N, n] router logits (float32 or wider).</param>
    /// <param name="valid">[N] bool, true for real tokens; null: all tokens are real.</param>
    public static RoutingPlan Route(Tensor logits, int topK, double capacityFactor, int minCapacity, TokenPriority priority,
                                    GateMode gates, Tensor? valid = null)
    {
        CheckMatrix(logits, nameof(logits));
        int experts = (int)logits.shape[1];
        long n = logits.shape[0];
        if (valid is not null && (valid.dim() != 1 || valid.shape[0] != n))
            throw new ArgumentException($"the token mask has shape [{string.Join(",", valid.shape)}], expected [{n}]", nameof(valid));
        using var scope = NewDisposeScope();
        var isValid = valid?.to(ScalarType.Bool) ?? ones(n, ScalarType.Bool, logits.device);
        long realTokens = valid is null ? n : isValid.sum().item<long>();
        long capacity = Capacity(realTokens, experts, topK, capacityFactor, minCapacity);
        var probabilities = logits.softmax(1L);
        var (choices, top) = TopK(probabilities, topK);
        var rank = PriorityRank(top, priority);
        var validChoice = isValid.unsqueeze(1L).expand(n, topK);
        var slots = Slots(choices, rank, validChoice, experts);
        var kept = capacity == long.MaxValue ? validChoice.clone() : validChoice.logical_and(slots.lt(capacity));
        var gate = GateValues(top, gates).mul(kept.to(top.dtype));
        return new RoutingPlan(probabilities.MoveToOuterDisposeScope(), choices.MoveToOuterDisposeScope(), gate.MoveToOuterDisposeScope(),
                               kept.MoveToOuterDisposeScope(), slots.MoveToOuterDisposeScope(), capacity, isValid.MoveToOuterDisposeScope());
    }

    /// <summary>Choices routed to each expert among valid tokens, before capacity dropping: [n] int64.</summary>
    public static Tensor RoutedCounts(Tensor experts, Tensor valid, int expertCount)
    {
        using var scope = NewDisposeScope();
        var mask = valid.to(ScalarType.Bool).unsqueeze(1L).expand(experts.shape);
        return experts.masked_select(mask).bincount(null, expertCount).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Switch's load-balancing loss (Fedus et al. 2022 Eq. 4), n·Σ_e f_e·P_e = n²·mean_e(f_e·P_e): f_e is the fraction
    /// of the valid tokens' k choices that go to expert e, taken before capacity dropping (so dropped tokens still show
    /// the imbalance), P_e the mean router probability of e over valid tokens. Both exclude padding. 1 when routing is
    /// perfectly balanced; only P carries a gradient. 0 for a batch without valid tokens.
    /// </summary>
    /// <param name="probabilities">[N, n] router probabilities.</param>
    /// <param name="experts">[N, k] the choices (before dropping).</param>
    /// <param name="valid">[N] bool; null: all tokens.</param>
    public static Tensor BalanceLoss(Tensor probabilities, Tensor experts, Tensor? valid = null)
    {
        CheckMatrix(probabilities, nameof(probabilities));
        using var scope = NewDisposeScope();
        long n = probabilities.shape[0];
        int expertCount = (int)probabilities.shape[1];
        var isValid = valid?.to(ScalarType.Bool) ?? ones(n, ScalarType.Bool, probabilities.device);
        var weight = isValid.to(probabilities.dtype);
        var tokens = weight.sum();
        var counts = RoutedCounts(experts, isValid, expertCount).to(probabilities.dtype);
        var f = counts.div(tokens.mul(experts.shape[1]).clamp_min(1));
        var p = probabilities.mul(weight.unsqueeze(1L)).sum(0L).div(tokens.clamp_min(1));
        return f.mul(p).sum().mul(expertCount).MoveToOuterDisposeScope();
    }

    /// <summary>The router z-loss (Zoph et al. 2022, ST-MoE Eq. 5): mean over valid tokens of logsumexp(logits)², on
    /// the logits (it penalizes their size, which probabilities cannot see). 0 without valid tokens.</summary>
    public static Tensor ZLoss(Tensor logits, Tensor? valid = null)
    {
        CheckMatrix(logits, nameof(logits));
        using var scope = NewDisposeScope();
        var squared = logits.logsumexp(1L, keepdim: false).square();
        if (valid is null) return squared.mean().MoveToOuterDisposeScope();
        var weight = valid.to(ScalarType.Bool).to(logits.dtype);
        return squared.mul(weight).sum().div(weight.sum().clamp_min(1)).MoveToOuterDisposeScope();
    }

    static void CheckMatrix(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.dim() != 2)
            throw new ArgumentException($"{name} must be [tokens, experts], got [{string.Join(",", t.shape)}]", name);
    }
}
