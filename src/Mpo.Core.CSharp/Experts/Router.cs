using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>
/// An MoE layer's router: logits = W_r·x (+ b_r), one per expert, computed in float32 whatever the model's dtype
/// (float64 models stay in float64): softmax routing in half precision is unstable (Switch §2.4, HF's
/// <c>router_dtype="float32"</c>). In training the input is scaled by multiplicative jitter U(1−ε, 1+ε) drawn from torch's
/// global generator (seeded and checkpointed by the trainer, so a resumed run draws the same noise). Parameters:
/// <c>weight</c> [n, d], <c>bias</c> [n] (with <see cref="MoeOptions.RouterBias"/>). A new router starts as
/// <c>nn.Linear(d, n)</c> does (uniform ±1/√d), as MPOE's: the experts are upcycled, the router is new.
/// </summary>
public sealed class Router : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    public Parameter? bias;

    public Router(long features, int experts, bool hasBias = true, double jitterNoise = 0.0, Device? device = null, ScalarType? dtype = null)
        : base(nameof(Router))
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "the router needs at least one input feature");
        if (experts < 1) throw new ArgumentOutOfRangeException(nameof(experts), experts, "the router needs at least one expert");
        if (!(jitterNoise >= 0 && jitterNoise < 1)) throw new ArgumentOutOfRangeException(nameof(jitterNoise), jitterNoise, "jitter must be in [0, 1)");
        using var linear = nn.Linear(features, experts, hasBias, device, dtype);
        // Out of any dispose scope, as TorchSharp's own modules keep their parameters.
        weight = (Parameter)new Parameter(linear.weight!.detach().clone()).DetachFromDisposeScope();
        bias = hasBias ? (Parameter)new Parameter(linear.bias!.detach().clone()).DetachFromDisposeScope() : null;
        JitterNoise = jitterNoise;
        RegisterComponents();
    }

    public double JitterNoise { get; }
    public int Experts => (int)weight.shape[0];
    public long Features => weight.shape[1];

    /// <summary>Logits [.., n] in float32 (float64 for a float64 input) for x [.., d].</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.shape[^1] != Features)
            throw new ArgumentException($"the router takes {Features} features, the input has {x.shape[^1]}", nameof(x));
        using var scope = NewDisposeScope();
        var wide = x.dtype == ScalarType.Float64 ? x : x.to(ScalarType.Float32);
        if (training && JitterNoise > 0)
            wide = wide.mul(empty_like(wide).uniform_(1.0 - JitterNoise, 1.0 + JitterNoise));
        return nn.functional.linear(wide, weight.to(wide.dtype), bias?.to(wide.dtype)).MoveToOuterDisposeScope();
    }
}
