using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// GPT-2's "Conv1D" (HF <c>pytorch_utils.Conv1D</c>, from OpenAI's TensorFlow code): a linear layer y = x·W + b whose
/// <c>weight</c> is stored [in_features, out_features], the transpose of <see cref="Linear"/>'s [out, in]. The state
/// dict keeps that orientation so GPT-2 checkpoints load unchanged; <see cref="LinearWeight"/> and
/// <see cref="ToLinear"/> give the [out, in] view an MPO decomposition (row factors = out, column factors = in) or an
/// <c>MpoLinear</c> replacement expects.
/// </summary>
public sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    /// <summary>[in_features, out_features] (HF's orientation).</summary>
    public readonly Parameter weight;
    /// <summary>[out_features].</summary>
    public readonly Parameter bias;

    /// <summary>Note the order: HF writes <c>Conv1D(nf=out, nx=in)</c>; here it is (in, out) like <see cref="Linear"/>.</summary>
    public Conv1D(long inFeatures, long outFeatures, Device? device = null, ScalarType? dtype = null) : base(nameof(Conv1D))
    {
        weight = new Parameter(empty(new[] { inFeatures, outFeatures }, dtype, device));
        bias = new Parameter(zeros(new[] { outFeatures }, dtype, device));
        using (no_grad()) weight.normal_(0.0, 0.02);   // HF's default; models re-initialize with their config
        RegisterComponents();
    }

    public long InFeatures => weight.shape[0];
    public long OutFeatures => weight.shape[1];

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var shape = input.shape;
        shape[^1] = OutFeatures;
        return addmm(bias, input.reshape(-1, InFeatures), weight, beta: 1, alpha: 1).view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>The weight as a Linear layer holds it, [out_features, in_features] (a transposed view, no copy).</summary>
    public Tensor LinearWeight() => weight.t();

    /// <summary>An equivalent <see cref="Linear"/> with copied weights.</summary>
    public Linear ToLinear()
    {
        using var _ = no_grad();
        var linear = nn.Linear(InFeatures, OutFeatures, hasBias: true, device: weight.device, dtype: weight.dtype);
        linear.weight!.copy_(weight.t());
        linear.bias!.copy_(bias);
        return linear;
    }

    /// <summary>A Conv1D computing the same map as <paramref name="linear"/> (weights copied and transposed).</summary>
    public static Conv1D FromLinear(Linear linear)
    {
        var w = linear.weight ?? throw new ArgumentException("the linear layer has no weight", nameof(linear));
        var conv = new Conv1D(w.shape[1], w.shape[0], w.device, w.dtype);
        using var _ = no_grad();
        conv.weight.copy_(w.t());
        if (linear.bias is { } b) conv.bias.copy_(b); else conv.bias.zero_();
        return conv;
    }
}
