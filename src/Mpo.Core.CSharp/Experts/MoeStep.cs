using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models;
using Mpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>What one MoE layer routed during a <see cref="MoeStep"/> (summed over its calls: ALBERT runs one layer at
/// every depth).</summary>
/// <param name="Layer">The layer's dotted path in the model.</param>
/// <param name="Calls">Forward calls of the layer in the step.</param>
/// <param name="Tokens">Real (non-padding) tokens it saw.</param>
/// <param name="Routed">Choices per expert before capacity dropping (the load the router asked for).</param>
/// <param name="Kept">Choices per expert after dropping (the tokens each expert computed).</param>
/// <param name="DroppedTokens">Tokens none of whose choices was kept: the residual alone carried them.</param>
/// <param name="Capacity">Capacity per expert of the last call (<see cref="long.MaxValue"/>: no dropping).</param>
/// <param name="BalanceLoss">Mean load-balancing loss n·Σ f·P over the calls (1 = balanced).</param>
/// <param name="ZLoss">Mean router z-loss over the calls.</param>
public sealed record ExpertLoad(string Layer, int Calls, long Tokens, long[] Routed, long[] Kept, long DroppedTokens, long Capacity,
                                double BalanceLoss, double ZLoss);

/// <summary>
/// One forward pass's routing report and auxiliary losses, for every MoE layer of a model. Attach it around the
/// forward pass, add its losses, dispose it:
/// <code>
/// using var moe = MoeStep.Begin(model, inputs);          // padding masks from inputs
/// var outputs = model.forward(inputs);
/// return moe.AddTo(new LossOutput(outputs.Loss!, tokens)); // + α·balance + β·z (MoeOptions), logged as components
/// </code>
/// The layers hold a reference to the step only while it is attached and keep nothing of their own, and the step
/// owns the loss tensors it collected until it is disposed: nothing survives into the next step, however the
/// caller's loop is written (megablocks#119 kept every step's loss tensors alive in a module-level list).
/// <para>Padding: encoder-side layers read <see cref="ModelInputs.AttentionMask"/>; layers under a <c>decoder</c>
/// module (T5's decoder stack) read <see cref="ModelInputs.DecoderAttentionMask"/>, or, when the decoder is fed the
/// labels shifted right, the positions whose label is not -100. Masked tokens take no capacity, are not computed by
/// any expert and count in neither loss nor in the loads.</para>
/// </summary>
public sealed class MoeStep : IDisposable
{
    sealed class LayerRecord
    {
        public int Calls;
        public long Tokens, Dropped, Capacity;
        public long[] Routed = Array.Empty<long>(), Kept = Array.Empty<long>();
        public readonly List<Tensor> Balance = new(), Z = new();
    }

    readonly List<(string Path, MoeFeedForward Layer)> layers;
    readonly Dictionary<MoeFeedForward, string> paths = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<MoeFeedForward, (Tensor? Mask, string Argument)> masks = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<MoeFeedForward, LayerRecord> records = new(ReferenceEqualityComparer.Instance);
    readonly List<Tensor> owned = new();
    bool disposed;

    MoeStep(List<(string, MoeFeedForward)> layers) => this.layers = layers;

    /// <summary>Attaches a new step to every MoE layer of <paramref name="model"/>.</summary>
    /// <param name="inputs">The batch about to run, for its padding masks; null: every token is real.</param>
    /// <exception cref="InvalidOperationException">A layer is attached to another step that is still open.</exception>
    public static MoeStep Begin(nn.Module model, ModelInputs? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var found = model.named_modules().Where(m => m.module is MoeFeedForward)
                         .Select(m => (m.name, (MoeFeedForward)m.module)).ToList();
        if (model is MoeFeedForward root) found.Insert(0, ("", root));   // a bare layer (named_modules omits the root)
        var step = new MoeStep(found);
        Tensor? decoderMask = inputs?.DecoderAttentionMask;
        string decoderArgument = InputNames.DecoderAttentionMask;
        if (decoderMask is null && inputs is { DecoderInputIds: null, Labels: { } labels } && labels.dim() == 2)
        {
            decoderMask = labels.ne(Models.Blocks.LanguageModelLoss.IgnoreIndex).DetachFromDisposeScope();
            step.owned.Add(decoderMask);
            decoderArgument = InputNames.Labels;
        }
        foreach (var (path, layer) in found)
        {
            if (layer.step is not null && !ReferenceEquals(layer.step, step))
            {
                step.Dispose();
                throw new InvalidOperationException($"MoE layer '{path}' is attached to a MoeStep that is still open; dispose it first");
            }
            layer.step = step;
            step.paths[layer] = path;
            bool decoder = path.Split('.').Contains("decoder");
            step.masks[layer] = decoder ? (decoderMask, decoderArgument) : (inputs?.AttentionMask, InputNames.AttentionMask);
        }
        return step;
    }

    /// <summary>The MoE layers this step is attached to, by path.</summary>
    public IReadOnlyList<(string Path, MoeFeedForward Layer)> Layers => layers;

    internal string PathOf(MoeFeedForward layer) => paths.TryGetValue(layer, out var p) ? p : "(not in the model)";

    /// <summary>The layer's token mask flattened to [tokens] bool, or null; the mask must have the input's leading shape.</summary>
    internal Tensor? MaskFor(MoeFeedForward layer, long[] leading)
    {
        if (!masks.TryGetValue(layer, out var m) || m.Mask is null) return null;
        if (!m.Mask.shape.SequenceEqual(leading))
            throw new ArgumentException(
                $"MoE layer '{PathOf(layer)}' runs on [{string.Join(",", leading)}] tokens, but {m.Argument} is [{string.Join(",", m.Mask.shape)}]", m.Argument);
        return m.Mask.reshape(-1).to(ScalarType.Bool, layer.router.weight.device);
    }

    internal void Record(MoeFeedForward layer, Tensor balance, Tensor z, long[] routed, long[] kept, long tokens, long dropped, long capacity)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (!records.TryGetValue(layer, out var r))
        {
            r = new LayerRecord { Routed = new long[routed.Length], Kept = new long[kept.Length] };
            records[layer] = r;
        }
        r.Calls++;
        r.Tokens += tokens;
        r.Dropped += dropped;
        r.Capacity = capacity;
        for (int e = 0; e < routed.Length; e++) { r.Routed[e] += routed[e]; r.Kept[e] += kept[e]; }
        // Owned by this step, not by the layer's dispose scope: they carry the router's graph into the loss.
        r.Balance.Add(balance.DetachFromDisposeScope());
        r.Z.Add(z.DetachFromDisposeScope());
        owned.Add(balance);
        owned.Add(z);
    }

    /// <summary>Every layer that ran, in model order.</summary>
    public IReadOnlyList<ExpertLoad> Loads =>
        layers.Where(l => records.ContainsKey(l.Layer)).Select(l =>
        {
            var r = records[l.Layer];
            return new ExpertLoad(l.Path, r.Calls, r.Tokens, r.Routed.ToArray(), r.Kept.ToArray(), r.Dropped, r.Capacity,
                                  r.Balance.Average(t => t.ToDouble()), r.Z.Average(t => t.ToDouble()));
        }).ToList();

    IEnumerable<(MoeFeedForward Layer, Tensor Balance, Tensor Z)> Calls() =>
        records.SelectMany(kv => kv.Value.Balance.Zip(kv.Value.Z, (b, z) => (kv.Key, b, z)));

    /// <summary>Mean load-balancing loss over every call of every layer (a scalar with the router's graph; 0 if no
    /// layer ran).</summary>
    public Tensor BalanceLoss() => Mean(Calls().Select(c => c.Balance));

    /// <summary>Mean router z-loss over every call of every layer.</summary>
    public Tensor ZLoss() => Mean(Calls().Select(c => c.Z));

    /// <summary>
    /// What the training loss gains: the mean over the calls of layers with <see cref="MoeOptions.AddAuxiliaryLosses"/>
    /// of α·balance + β·z with each layer's coefficients (a mean, not a sum, so a coefficient means the same at any
    /// depth, as HF's SwitchTransformers averages over its sparse layers). 0 when no layer adds its losses.
    /// </summary>
    public Tensor AuxiliaryLoss() =>
        Mean(Calls().Where(c => c.Layer.Options.AddAuxiliaryLosses)
                    .Select(c => c.Balance.mul(c.Layer.Options.BalanceLossCoefficient).add(c.Z.mul(c.Layer.Options.ZLossCoefficient))));

    /// <summary>Fraction of the real tokens that no expert computed, over all layers and calls.</summary>
    public double DroppedFraction
    {
        get
        {
            long tokens = records.Values.Sum(r => r.Tokens);
            return tokens == 0 ? 0.0 : (double)records.Values.Sum(r => r.Dropped) / tokens;
        }
    }

    /// <summary>
    /// <paramref name="output"/> with <see cref="AuxiliaryLoss"/> added to its loss (when any layer adds its losses) and
    /// the routing logged as components: <c>moe_aux_loss</c> (what was added), <c>moe_balance_loss</c>,
    /// <c>moe_z_loss</c> (unweighted means, also when not added) and <c>moe_dropped_fraction</c>.
    /// </summary>
    public LossOutput AddTo(LossOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        ObjectDisposedException.ThrowIf(disposed, this);
        var aux = AuxiliaryLoss();
        bool adds = Calls().Any(c => c.Layer.Options.AddAuxiliaryLosses);
        var components = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (output.Components is not null)
            foreach (var (name, value) in output.Components) components[name] = value;
        using (no_grad())
        {
            components["moe_aux_loss"] = aux.detach();
            components["moe_balance_loss"] = BalanceLoss().detach();
            components["moe_z_loss"] = ZLoss().detach();
            components["moe_dropped_fraction"] = tensor(DroppedFraction);
        }
        var loss = adds ? output.Loss.add(aux.to(output.Loss.dtype, output.Loss.device)) : output.Loss;
        return output with { Loss = loss, Components = components };
    }

    static Tensor Mean(IEnumerable<Tensor> values)
    {
        var list = values.ToList();
        if (list.Count == 0) return tensor(0.0f);
        var sum = list[0].alias();
        for (int i = 1; i < list.Count; i++) sum = sum.add(list[i]);
        return sum.div(list.Count);
    }

    /// <summary>Detaches from the layers and frees the collected loss tensors (losses already added to a training
    /// loss keep their graph through it).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var (_, layer) in layers)
            if (ReferenceEquals(layer.step, this)) layer.step = null;
        foreach (var t in owned) t.Dispose();
        owned.Clear();
        records.Clear();
    }
}
