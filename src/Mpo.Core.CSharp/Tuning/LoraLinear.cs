using System;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// A frozen linear map with a LoRA update (peft's <c>lora.Linear</c>): h = base(x) + s · B A dropout(x), with
/// A [r, in] and B [out, r] and s the configuration's scale. The base is a <see cref="Linear"/> (weight [out, in]) or
/// GPT-2's <see cref="Conv1D"/> (weight [in, out], peft's <c>fan_in_fan_out</c>); A and B are oriented the same way
/// for both. Parameters are named as peft names them: <c>base_layer.weight</c>, <c>lora_A.weight</c>,
/// <c>lora_B.weight</c>.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    readonly nn.Module<Tensor, Tensor> base_layer;
    readonly Linear lora_A;
    readonly Linear lora_B;
    readonly Dropout? lora_dropout;

    /// <summary>Wraps <paramref name="baseLayer"/> (its parameters are frozen) with A Kaiming-uniform as peft
    /// initializes it (a = √5, i.e. U(−1/√in, 1/√in), from torch's global generator) and B zero, so the wrapped layer
    /// starts as the base.</summary>
    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer, int r, double scaling, double dropout = 0.0) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer ?? throw new ArgumentNullException(nameof(baseLayer));
        var (weight, inFeatures, outFeatures) = baseLayer switch
        {
            Linear l => (l.weight!, l.weight!.shape[1], l.weight!.shape[0]),
            Conv1D c => ((Tensor)c.weight, c.InFeatures, c.OutFeatures),
            _ => throw new ArgumentException($"LoRA adapts a Linear or Conv1D module, not a {baseLayer.GetType().Name}", nameof(baseLayer)),
        };
        if (r < 1) throw new ArgumentOutOfRangeException(nameof(r), r, "the rank must be at least 1");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Rank = r;
        Scaling = scaling;
        foreach (var (_, p) in baseLayer.named_parameters()) p.requires_grad = false;
        lora_A = nn.Linear(inFeatures, r, hasBias: false, device: weight.device, dtype: weight.dtype);
        lora_B = nn.Linear(r, outFeatures, hasBias: false, device: weight.device, dtype: weight.dtype);
        using (no_grad())
        {
            // kaiming_uniform_(a=√5): gain √(2/(1+a²)) = √(1/3), bound gain·√(3/fan_in) = 1/√fan_in
            var bound = 1.0 / Math.Sqrt(inFeatures);
            lora_A.weight!.uniform_(-bound, bound);
            lora_B.weight!.zero_();
        }
        register_module(nameof(base_layer), base_layer);
        register_module(nameof(lora_A), lora_A);
        register_module(nameof(lora_B), lora_B);
        if (dropout > 0)
        {
            lora_dropout = nn.Dropout(dropout);
            register_module(nameof(lora_dropout), lora_dropout);
        }
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }
    public int Rank { get; }
    /// <summary>s = α/r (or α/√r).</summary>
    public double Scaling { get; }
    public nn.Module<Tensor, Tensor> BaseLayer => base_layer;
    /// <summary>A [r, in].</summary>
    public Parameter A => lora_A.weight!;
    /// <summary>B [out, r].</summary>
    public Parameter B => lora_B.weight!;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = lora_dropout is null ? input : lora_dropout.forward(input);
        var update = lora_B.forward(lora_A.forward(x));
        return base_layer.forward(input).add(update, Scaling).MoveToOuterDisposeScope();
    }

    /// <summary>ΔW = s · B A, [out, in] (peft's <c>get_delta_weight</c>, before its fan-in/fan-out transpose).</summary>
    public Tensor DeltaWeight() => lora_B.weight!.matmul(lora_A.weight!).mul(Scaling);

    /// <summary>
    /// The base module with the update folded in (peft's <c>merge_and_unload</c> for one layer): a Linear with
    /// W + s·B A, or a Conv1D with W + (s·B A)ᵀ, bias unchanged; refuses (naming nothing is lost) when the merged
    /// weight is not finite (peft's <c>safe_merge</c>).
    /// </summary>
    public nn.Module<Tensor, Tensor> Merge()
    {
        using var noGrad = no_grad();
        // the merged weight in the base's own layout; modules are built outside any dispose scope (it would take
        // their fresh parameters with it)
        Tensor merged;
        using (var scope = NewDisposeScope())
        {
            var baseWeight = base_layer switch
            {
                Linear l => l.weight!,
                Conv1D c => c.weight,
                _ => throw new InvalidOperationException($"cannot merge into a {base_layer.GetType().Name}"),
            };
            var delta = DeltaWeight();
            merged = baseWeight.add(base_layer is Conv1D ? delta.t() : delta);
            if (!isfinite(merged).all().item<bool>())
                throw new InvalidOperationException("merging the LoRA update gives a non-finite weight; the adapter is left unmerged");
            merged.MoveToOuterDisposeScope();
        }
        using (merged)
        {
            switch (base_layer)
            {
                case Linear l:
                {
                    var dense = nn.Linear(InFeatures, OutFeatures, hasBias: l.bias is not null, device: l.weight!.device, dtype: l.weight!.dtype);
                    dense.weight!.copy_(merged);
                    if (l.bias is not null) dense.bias!.copy_(l.bias);
                    return dense;
                }
                default:
                {
                    var c = (Conv1D)base_layer;
                    var dense = new Conv1D(InFeatures, OutFeatures, c.weight.device, c.weight.dtype);
                    dense.weight.copy_(merged);
                    dense.bias.copy_(c.bias);
                    return dense;
                }
            }
        }
    }
}
