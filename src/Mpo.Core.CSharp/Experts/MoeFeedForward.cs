using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Layers;
using Mpo.Decomposition;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>How the experts of an upcycled MoE layer hold their matrices.</summary>
public enum ExpertKind
{
    /// <summary>Each expert a full copy of the FFN (the Switch and Shazeer baselines).</summary>
    Dense,
    /// <summary>MPOE: per FFN matrix one shared central tensor, auxiliary tensors per expert.</summary>
    Mpo,
}

/// <summary>
/// A mixture-of-experts feed-forward block, y(x) = Σ_{kept choices e of x} g_e(x)·E_e(x) with
/// E_e(x) = W_out(e)·act(W_in(e)·x + b_in(e)) + b_out(e), that takes the place of a Transformer layer's FFN
/// (<see cref="IFeedForward"/>: T5's <c>DenseReluDense</c>, GPT-2's <c>mlp</c>, BERT's <c>feed_forward</c>…).
/// <para>Children: <c>router</c> (<see cref="Router"/>), and one <see cref="ExpertMatrices"/> per FFN matrix under the
/// family's role name, e.g. T5: <c>router.weight</c>, <c>wi.central</c>, <c>wi.experts.{e}.aux0</c>…, <c>wo.…</c>.</para>
/// <para>Tokens are grouped per expert (one sort, no per-token loop) and each expert runs once on its group; an expert
/// with no tokens does not run, so its parameters stay out of the graph and get no gradient, hence no update. A dropped
/// token (over capacity, or padding) gets nothing from this block: its output row is 0 and the layer's residual
/// carries it (not x·p). Routing losses and expert loads go to the <see cref="MoeStep"/> attached to the model; outside
/// one the layer keeps nothing, so nothing accumulates across steps.</para>
/// </summary>
public sealed class MoeFeedForward : nn.Module<Tensor, Tensor>
{
    /// <summary>Name of the router child.</summary>
    public const string RouterName = "router";

    public readonly Router router;
    // In an array, not fields: they are registered under the FFN's role names (wi, c_fc, …), and a Module field would be
    // registered a second time under its field name.
    readonly ExpertMatrices[] matrices;
    readonly Func<Tensor, Tensor> activation;
    internal MoeStep? step;

    /// <summary>Assembles an MoE layer from its parts (see <see cref="Upcycle"/> for the usual way).</summary>
    public MoeFeedForward(MoeOptions options, Router router, string inputName, ExpertMatrices input, string outputName,
                          ExpertMatrices output, Func<Tensor, Tensor> activation, double innerDropout = 0.0, double outputDropout = 0.0)
        : base(nameof(MoeFeedForward))
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(router);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(activation);
        options.Validate();
        if (inputName == outputName || inputName == RouterName || outputName == RouterName)
            throw new ArgumentException($"matrix names must differ from each other and from '{RouterName}': '{inputName}', '{outputName}'", nameof(outputName));
        if (router.Experts != options.Experts || input.Count != options.Experts || output.Count != options.Experts)
            throw new ArgumentException($"MoeOptions.Experts is {options.Experts}, but the router has {router.Experts}, {inputName} {input.Count} and {outputName} {output.Count} experts", nameof(options));
        if (input.OutFeatures != output.InFeatures)
            throw new ArgumentException($"{inputName} gives {input.OutFeatures} features, {outputName} takes {output.InFeatures}", nameof(output));
        if (router.Features != input.InFeatures)
            throw new ArgumentException($"the router reads {router.Features} features, {inputName} takes {input.InFeatures}", nameof(router));
        if (!(innerDropout >= 0 && innerDropout < 1)) throw new ArgumentOutOfRangeException(nameof(innerDropout), innerDropout, "dropout must be in [0, 1)");
        if (!(outputDropout >= 0 && outputDropout < 1)) throw new ArgumentOutOfRangeException(nameof(outputDropout), outputDropout, "dropout must be in [0, 1)");
        Options = options;
        this.router = router;
        InputName = inputName;
        OutputName = outputName;
        matrices = new[] { input, output };
        this.activation = activation;
        InnerDropout = innerDropout;
        OutputDropout = outputDropout;
        RegisterComponents();
        register_module(inputName, input);
        register_module(outputName, output);
    }

    /// <summary>
    /// The MoE layer that replaces <paramref name="ffn"/>, upcycled from it (Komatsuzaki et al. 2023; MPOE §3): every
    /// expert starts as the pre-trained FFN, dense copies or the decomposition of each matrix with one shared central
    /// tensor; the router is new. With <see cref="GateMode.StraightThrough"/> or <see cref="GateMode.Normalized"/> gates
    /// and no dropping, the new layer computes exactly what the FFN did until training moves the experts apart.
    /// </summary>
    /// <param name="inputFactorization">MPO factors of W_in [out, in]; default the chooser's (MPO experts only).</param>
    /// <param name="outputFactorization">MPO factors of W_out.</param>
    /// <param name="truncation">Bond truncation applied before sharing; default none (MPOE: full rank).</param>
    /// <param name="outputTruncation">W_out's truncation when it differs from W_in's (default: <paramref name="truncation"/>).</param>
    /// <param name="shareCentral">MPO experts: one central tensor per matrix shared by all experts (MPOE), or one per
    /// expert (false: MPOE Table 3's "w/o PS" ablation).</param>
    public static MoeFeedForward Upcycle(IFeedForward ffn, MoeOptions options, ExpertKind kind,
                                         MpoFactorization? inputFactorization = null, MpoFactorization? outputFactorization = null,
                                         TruncationSpec? truncation = null, TruncationSpec? outputTruncation = null, bool shareCentral = true)
    {
        ArgumentNullException.ThrowIfNull(ffn);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        outputTruncation ??= truncation;
        if (kind == ExpertKind.Dense && (inputFactorization is not null || outputFactorization is not null || truncation is not null || outputTruncation is not null))
            throw new ArgumentException("factorizations and truncation are for MPO experts; dense experts copy the matrices", nameof(kind));
        CheckSharing(kind, shareCentral);
        ExpertMatrices Build(nn.Module<Tensor, Tensor> linear, string name, MpoFactorization? f, TruncationSpec? t) => kind switch
        {
            ExpertKind.Dense => DenseExpertMatrices.Upcycle(linear, options.Experts, name),
            ExpertKind.Mpo => MpoExpertMatrices.Upcycle(linear, options.Experts, name, f, t, shareCentral),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown expert kind"),
        };
        return Assemble(ffn, options, kind, Build(ffn.Input, ffn.InputName, inputFactorization, truncation),
                        Build(ffn.Output, ffn.OutputName, outputFactorization, outputTruncation));
    }

    /// <summary>
    /// The MoE layer <see cref="Upcycle"/> would make of <paramref name="ffn"/>, with the right shapes but without
    /// reading or decomposing its weights (zero MPO cores of the given bonds; dense experts copy whatever the FFN
    /// holds), on the FFN's device and dtype: to load a checkpoint into, or, on libtorch's meta device, to count
    /// parameters from a configuration alone.
    /// </summary>
    /// <param name="inputBonds">W_in's bonds d_0..d_n (MPO experts; default the factorization's full bonds).</param>
    /// <param name="shareCentral">As for <see cref="Upcycle"/>.</param>
    public static MoeFeedForward Shapes(IFeedForward ffn, MoeOptions options, ExpertKind kind,
                                        MpoFactorization? inputFactorization = null, IReadOnlyList<int>? inputBonds = null,
                                        MpoFactorization? outputFactorization = null, IReadOnlyList<int>? outputBonds = null,
                                        bool shareCentral = true)
    {
        ArgumentNullException.ThrowIfNull(ffn);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckSharing(kind, shareCentral);
        if (kind == ExpertKind.Dense)
            return Upcycle(ffn, options, kind);   // copies, no decomposition: as cheap as shapes (free on the meta device)
        ExpertMatrices Build(nn.Module<Tensor, Tensor> linear, string name, MpoFactorization? f, IReadOnlyList<int>? bonds)
        {
            if (linear is MpoLinear) return MpoExpertMatrices.Upcycle(linear, options.Experts, name, shareCentral: shareCentral);   // its cores as they are
            var (w, b) = LinearWeight.Of(linear, name);
            var factorization = f ?? FactorizationChooser.Choose((int)w.shape[0], (int)w.shape[1]);
            using var zero = new MpoLinear(factorization, bonds ?? factorization.FullBonds(), b is not null, w.dtype, w.device);
            if (w is not Parameter) w.Dispose();
            return MpoExpertMatrices.Upcycle(zero, options.Experts, name, shareCentral: shareCentral);
        }
        return Assemble(ffn, options, kind, Build(ffn.Input, ffn.InputName, inputFactorization, inputBonds),
                        Build(ffn.Output, ffn.OutputName, outputFactorization, outputBonds));
    }

    static void CheckSharing(ExpertKind kind, bool shareCentral)
    {
        if (kind == ExpertKind.Dense && !shareCentral)
            throw new ArgumentException("sharing a central tensor is for MPO experts; dense experts have none to share or not", nameof(shareCentral));
    }

    static MoeFeedForward Assemble(IFeedForward ffn, MoeOptions options, ExpertKind kind, ExpertMatrices input, ExpertMatrices output)
    {
        var reference = kind == ExpertKind.Dense ? input.Weight(0) : ((MpoExpertMatrices)input).CentralOf(0);
        var router = new Router(input.InFeatures, options.Experts, options.RouterBias, options.JitterNoise, reference.device, reference.dtype);
        var layer = new MoeFeedForward(options, router, ffn.InputName, input, ffn.OutputName, output, ffn.Activation, ffn.InnerDropout, ffn.OutputDropout);
        if (ffn is nn.Module replaced) layer.train(replaced.training);   // a swap does not change the model's mode
        return layer;
    }

    public MoeOptions Options { get; }
    public string InputName { get; }
    public string OutputName { get; }
    /// <summary>W_in of every expert.</summary>
    public ExpertMatrices Input => matrices[0];
    /// <summary>W_out of every expert.</summary>
    public ExpertMatrices Output => matrices[1];
    public double InnerDropout { get; }
    public double OutputDropout { get; }
    public int Experts => Options.Experts;

    /// <summary>Expert <paramref name="expert"/>'s FFN alone on x [tokens, d] (no routing, no gate): what the layer
    /// computes for a token that goes to that expert with gate 1.</summary>
    public Tensor Expert(int expert, Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = activation(Input.Forward(expert, x));
        if (InnerDropout > 0) h = nn.functional.dropout(h, InnerDropout, training);
        return Output.Forward(expert, h).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() < 1 || x.shape[^1] != Input.InFeatures)
            throw new ArgumentException($"the MoE layer takes [.., {Input.InFeatures}] inputs, got [{string.Join(",", x.shape)}]", nameof(x));
        bool grad = training && is_grad_enabled();
        if (step is null && grad && Options.AddAuxiliaryLosses && Options.BalanceLossCoefficient + Options.ZLossCoefficient > 0)
            throw new InvalidOperationException(
                "an MoE layer ran a training forward outside a MoeStep, so its load-balancing and z-losses would be lost: " +
                "wrap the forward pass in MoeStep.Begin(model, inputs) and add MoeStep.AddTo(loss), or set MoeOptions.AddAuxiliaryLosses = false");
        using var scope = NewDisposeScope();
        var leading = x.shape[..^1];
        long d = x.shape[^1];
        var flat = x.reshape(-1, d);
        long n = flat.shape[0];
        int experts = Experts;
        var valid = step?.MaskFor(this, leading);
        var logits = router.forward(flat);
        var plan = Routing.Route(logits, Options.TopK, Options.CapacityFactorFor(training), Options.MinCapacity, Options.Priority, Options.Gates, valid);

        // One read from the device: kept and routed counts per expert, dropped tokens, real tokens, non-finite logits.
        var keptFlat = plan.Kept.reshape(-1);
        var expertFlat = plan.Experts.reshape(-1);
        var keptExperts = expertFlat.masked_select(keptFlat);
        var keptCounts = keptExperts.bincount(null, experts);
        var routedCounts = Routing.RoutedCounts(plan.Experts, plan.Valid, experts);
        var droppedTokens = plan.Valid.logical_and(plan.Kept.any(1L).logical_not()).sum().reshape(1);
        var realTokens = plan.Valid.sum().reshape(1);
        var nonFinite = logits.isfinite().logical_not().sum().reshape(1);
        var summary = cat(new[] { keptCounts, routedCounts, droppedTokens, realTokens, nonFinite.to(ScalarType.Int64) }, 0).cpu().data<long>().ToArray();
        if (summary[^1] > 0)
            throw new ArgumentException($"the router logits of MoE layer {step?.PathOf(this) ?? "(unnamed)"} hold {summary[^1]} NaN or infinite values; the input or the router diverged", "router logits");
        var kept = summary[..experts];

        // Group the kept choices by expert: a stable sort keeps each expert's tokens in priority order.
        var tokenOfChoice = arange(n, ScalarType.Int64, flat.device).unsqueeze(1L).expand(n, Options.TopK).reshape(-1);
        var tokens = tokenOfChoice.masked_select(keptFlat);
        var gates = plan.Gates.reshape(-1).masked_select(keptFlat);
        var order = keptExperts.sort(0L, stable: true).Indices;
        tokens = tokens.index_select(0L, order);
        gates = gates.index_select(0L, order);
        var grouped = flat.index_select(0L, tokens);
        var outputs = new System.Collections.Generic.List<Tensor>(experts);
        long offset = 0;
        for (int e = 0; e < experts; e++)
        {
            if (kept[e] == 0) continue;   // not run: its parameters get no gradient at all
            outputs.Add(Expert(e, grouped.narrow(0L, offset, kept[e])));
            offset += kept[e];
        }
        var result = zeros(n, Output.OutFeatures, flat.dtype, flat.device);
        if (outputs.Count > 0)
        {
            var y = cat(outputs.ToArray(), 0).mul(gates.to(flat.dtype).unsqueeze(1L));
            result = result.index_add(0, tokens, y, 1);
        }
        if (OutputDropout > 0) result = nn.functional.dropout(result, OutputDropout, training);

        if (step is not null)
        {
            var balance = Routing.BalanceLoss(plan.Probabilities, plan.Experts, plan.Valid);
            var z = Routing.ZLoss(logits, plan.Valid);
            step.Record(this, balance, z, summary[experts..(2 * experts)], kept, summary[2 * experts + 1], summary[2 * experts], plan.Capacity);
        }
        return result.reshape(leading.Append(Output.OutFeatures).ToArray()).MoveToOuterDisposeScope();
    }
}
