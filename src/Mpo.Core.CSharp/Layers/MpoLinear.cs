using System;
using System.Collections.Generic;
using Mpo.Contraction;
using Mpo.Decomposition;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Layers;

/// <summary>
/// A Linear layer y = x Wᵀ + b whose weight W [out_features, in_features] is held as an MPO (MPOP §3).
/// Row factors factor out_features, column factors in_features (the stored layout, as in the papers' code).
/// Parameters: <c>central</c>, <c>aux0</c>…, <c>bias</c> (the original bias, kept dense).
/// </summary>
public sealed class MpoLinear : MpoLayer
{
    readonly Parameter? bias;

    /// <summary>Which contraction the forward uses; <see cref="ContractionPath.Auto"/> reuses the contracted weight in
    /// inference calls (<see cref="MpoLayer.CacheWeight"/>) and otherwise asks the cost model per call.</summary>
    public ContractionPath Path { get; set; } = ContractionPath.Auto;

    public int InFeatures => Factorization.Cols;
    public int OutFeatures => Factorization.Rows;
    public Parameter? Bias => bias;

    /// <summary>Wraps an existing MPO of W [out, in]; copies the cores unless <paramref name="adoptCores"/>.</summary>
    public MpoLinear(MatrixProductOperator mpo, Tensor? bias = null, bool adoptCores = false, string name = "MpoLinear")
        : base(name, mpo, adoptCores)
    {
        if (bias is not null)
        {
            if (bias.dim() != 1 || bias.shape[0] != mpo.Factorization.Rows)
                throw new ArgumentException($"bias has shape [{string.Join(",", bias.shape)}], expected [{mpo.Factorization.Rows}]", nameof(bias));
            this.bias = Owned(bias.detach().clone());
            register_parameter("bias", this.bias);
        }
    }

    /// <summary>An MPO linear layer with zero cores of the given bonds (and a zero bias): to load cores into, or on
    /// the meta device for counting (see the base constructor).</summary>
    public MpoLinear(MpoFactorization factorization, IReadOnlyList<int> bonds, bool hasBias, ScalarType? dtype = null,
                     Device? device = null, string name = "MpoLinear")
        : base(name, factorization, bonds, dtype, device)
    {
        if (hasBias)
        {
            bias = Owned(zeros(new long[] { factorization.Rows }, dtype, device));
            register_parameter("bias", bias);
        }
    }

    /// <summary>Decomposes a weight [out, in] (+ bias) and truncates it as asked.</summary>
    /// <param name="factorization">Factors for [out, in]; default: <see cref="FactorizationChooser.Choose"/>.</param>
    /// <param name="truncation">Bond truncation; default: none (full bonds, exact).</param>
    public static MpoLinear FromWeight(Tensor weight, Tensor? bias = null, MpoFactorization? factorization = null,
                                       TruncationSpec? truncation = null)
    {
        using var mpo = Decompose(weight, "weight [out, in]", factorization, truncation);
        return new MpoLinear(mpo, bias);
    }

    /// <summary>Decomposes a trained <see cref="Linear"/> layer (weight and bias).</summary>
    public static MpoLinear FromLinear(Linear linear, MpoFactorization? factorization = null, TruncationSpec? truncation = null) =>
        FromWeight(linear.weight!, linear.bias, factorization, truncation);

    public override Tensor forward(Tensor input)
    {
        if (Path == ContractionPath.Auto && InferenceWeight() is { } weight)
            return nn.functional.linear(input, weight, bias);
        var path = Path;
        if (path == ContractionPath.Auto)
        {
            long tokens = input.numel() / Math.Max(1, InFeatures);
            path = CostModel.Choose(Factorization, Bonds, tokens, training);
        }
        return path == ContractionPath.Factorized
            ? MpoContraction.LinearFactorized(input, Cores, Factorization, bias)
            : MpoContraction.LinearReconstructed(input, Cores, Factorization, bias);
    }

    /// <summary>Merges back to a dense <see cref="Linear"/> with W = MPO(cores) (for export or inference).</summary>
    public Linear Merge()
    {
        using var _ = no_grad();
        var linear = nn.Linear(InFeatures, OutFeatures, hasBias: bias is not null, device: Central.device, dtype: Central.dtype);
        using var w = Weight();
        linear.weight!.copy_(w);
        if (bias is not null) linear.bias!.copy_(bias);
        return linear;
    }
}
