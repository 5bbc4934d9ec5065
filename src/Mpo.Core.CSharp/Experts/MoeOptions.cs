using System;

namespace Mpo.Experts;

/// <summary>Which tokens an expert keeps when more are routed to it than its capacity.</summary>
public enum TokenPriority
{
    /// <summary>Earlier tokens first (the batch's row-major order), every token's first choice before any second
    /// choice: GShard's and Switch's cumulative-sum dispatch (Lepikhin et al. 2021; Fedus et al. 2022 §2.1).</summary>
    Position,
    /// <summary>Batch-prioritized routing: tokens in order of their top router probability, first choices before
    /// second choices (Riquelme et al. 2021, V-MoE §3.1; tutel's <c>batch_prioritized_routing</c>).</summary>
    RouterProbability,
}

/// <summary>How a kept assignment's router probability weighs the expert's output.</summary>
public enum GateMode
{
    /// <summary>y = p_e(x)·E_e(x) with the softmax probability of the chosen expert (Switch, Fedus et al. 2022 Eq. 2).</summary>
    Probability,
    /// <summary>The top-k probabilities renormalized to sum to 1 (GShard's and Mixtral's top-2). Upcycled identical
    /// experts then reproduce the dense FFN exactly. With top-1 the gate is 1 and the router gets no task gradient.</summary>
    Normalized,
    /// <summary>g = p / stopgrad(p): the value is 1, so upcycled experts reproduce the dense FFN exactly, and the
    /// router still learns, through ∇g = ∇p / p = ∇log p (MPOE's released <c>SwitchFFN</c>, spec §5.2). Top-1 only.</summary>
    StraightThrough,
}

/// <summary>
/// The routing of an MoE layer (spec §5.2) and its auxiliary losses. Defaults are MPOE's released routing (top-1,
/// straight-through gate, no token dropping, a router with bias, no jitter), except that the load-balancing and z-losses
/// are added to the training loss (<see cref="AddAuxiliaryLosses"/>): the released code computed and discarded them.
/// Presets: <see cref="Switch"/>, <see cref="Shazeer"/>, <see cref="Mpoe"/>.
/// </summary>
public sealed record MoeOptions
{
    /// <summary>Number of experts n.</summary>
    public int Experts { get; init; } = 8;
    /// <summary>Experts each token is sent to (1: Switch, 2: Shazeer/GShard).</summary>
    public int TopK { get; init; } = 1;
    /// <summary>Capacity factor c in training: each expert takes at most ⌈c·k·tokens/n⌉ tokens (tokens: the batch's
    /// non-padding tokens) and drops the rest by <see cref="Priority"/>. +∞ (the default) drops nothing.</summary>
    public double CapacityFactor { get; init; } = double.PositiveInfinity;
    /// <summary>Capacity factor in evaluation; null: the training one (Shazeer/GShard use 2.0 at evaluation).</summary>
    public double? EvalCapacityFactor { get; init; }
    /// <summary>Smallest capacity per expert (MPOE's top-2 baseline: 4).</summary>
    public int MinCapacity { get; init; }
    public TokenPriority Priority { get; init; } = TokenPriority.Position;
    public GateMode Gates { get; init; } = GateMode.StraightThrough;
    /// <summary>Whether the router has a bias (MPOE's <c>nn.Linear(d, n)</c> has one; HF's Switch router has none).</summary>
    public bool RouterBias { get; init; } = true;
    /// <summary>Multiplicative jitter ε: in training the router reads x·U(1−ε, 1+ε) (Switch §2.4; HF
    /// <c>router_jitter_noise</c>). Drawn from torch's global generator, which the trainer seeds and checkpoints, so a
    /// resumed run draws the same noise.</summary>
    public double JitterNoise { get; init; }
    /// <summary>α of the load-balancing loss n·Σ_e f_e·P_e (Switch §2.2: 0.01).</summary>
    public double BalanceLossCoefficient { get; init; } = 0.01;
    /// <summary>β of the router z-loss mean(logsumexp(logits)²) (ST-MoE, Zoph et al. 2022: 0.001).</summary>
    public double ZLossCoefficient { get; init; } = 0.001;
    /// <summary>Whether α·balance + β·z is added to the training loss (<see cref="MoeStep.AddTo"/>). Off, both are
    /// still computed and logged, so a run can measure what they would have been.</summary>
    public bool AddAuxiliaryLosses { get; init; } = true;

    /// <summary>Switch Transformer routing (Fedus et al. 2022): top-1, gate = p, capacity factor 1.25, router without
    /// bias, jitter 0.01 (HF's defaults for the router).</summary>
    public static MoeOptions Switch(int experts) => new()
    {
        Experts = experts, TopK = 1, CapacityFactor = 1.25, Gates = GateMode.Probability, RouterBias = false, JitterNoise = 0.01,
    };

    /// <summary>Shazeer-style top-2 (as MPOE's "+MoE" baseline, GShard's gating): renormalized top-2 gates, capacity
    /// factor 1.25 in training and 2.0 in evaluation, at least 4 per expert, router without bias. The baseline's random
    /// second-expert policy is not reproduced: both choices are always dispatched.</summary>
    public static MoeOptions Shazeer(int experts) => new()
    {
        Experts = experts, TopK = 2, CapacityFactor = 1.25, EvalCapacityFactor = 2.0, MinCapacity = 4, Gates = GateMode.Normalized,
        RouterBias = false,
    };

    /// <summary>MPOE's released routing (spec §5.2): top-1, straight-through gate, no dropping, router with bias.</summary>
    public static MoeOptions Mpoe(int experts) => new() { Experts = experts };

    /// <summary>The capacity factor for training or evaluation.</summary>
    public double CapacityFactorFor(bool training) => training ? CapacityFactor : EvalCapacityFactor ?? CapacityFactor;

    /// <summary>Throws naming the first invalid field.</summary>
    public void Validate()
    {
        if (Experts < 1)
            throw new ArgumentException($"MoeOptions.Experts must be at least 1, got {Experts}", nameof(Experts));
        if (TopK < 1 || TopK > Experts)
            throw new ArgumentException($"MoeOptions.TopK must be between 1 and the {Experts} experts, got {TopK}", nameof(TopK));
        if (!(CapacityFactor > 0))
            throw new ArgumentException($"MoeOptions.CapacityFactor must be positive (+∞ for no dropping), got {CapacityFactor}", nameof(CapacityFactor));
        if (EvalCapacityFactor is { } e && !(e > 0))
            throw new ArgumentException($"MoeOptions.EvalCapacityFactor must be positive (+∞ for no dropping), got {e}", nameof(EvalCapacityFactor));
        if (MinCapacity < 0)
            throw new ArgumentException($"MoeOptions.MinCapacity must be non-negative, got {MinCapacity}", nameof(MinCapacity));
        if (Gates == GateMode.StraightThrough && TopK != 1)
            throw new ArgumentException($"MoeOptions.Gates = StraightThrough is a top-1 gate (its value is 1 per expert); TopK is {TopK}", nameof(Gates));
        if (!(JitterNoise >= 0 && JitterNoise < 1))
            throw new ArgumentException($"MoeOptions.JitterNoise must be in [0, 1), got {JitterNoise}", nameof(JitterNoise));
        if (!(BalanceLossCoefficient >= 0))
            throw new ArgumentException($"MoeOptions.BalanceLossCoefficient must be non-negative, got {BalanceLossCoefficient}", nameof(BalanceLossCoefficient));
        if (!(ZLossCoefficient >= 0))
            throw new ArgumentException($"MoeOptions.ZLossCoefficient must be non-negative, got {ZLossCoefficient}", nameof(ZLossCoefficient));
    }
}
