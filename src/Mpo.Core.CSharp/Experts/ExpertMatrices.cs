using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Contraction;
using Mpo.Decomposition;
using Mpo.Layers;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>
/// One matrix role of an MoE layer's feed-forward (T5's wi, say) for all its experts: y = x·W_eᵀ + b_e for the tokens
/// routed to expert e. Each expert's parameters are its own tensors, so an expert that receives no tokens is absent
/// from the graph and its gradients stay undefined (AdamW then leaves it untouched: no decay through a zero gradient).
/// </summary>
public abstract class ExpertMatrices : nn.Module
{
    /// <summary>Name of the per-expert module list (<c>experts.{e}…</c>).</summary>
    public const string ExpertsName = "experts";

    protected ExpertMatrices(string name) : base(name) { }

    /// <summary>Number of experts.</summary>
    public abstract int Count { get; }
    public abstract int InFeatures { get; }
    public abstract int OutFeatures { get; }
    /// <summary>Whether the experts carry biases.</summary>
    public abstract bool HasBias { get; }

    /// <summary>x [tokens, in] → [tokens, out] through expert <paramref name="expert"/>.</summary>
    public abstract Tensor Forward(int expert, Tensor x);

    /// <summary>Expert <paramref name="expert"/>'s weight [out, in] as it is now (a new tensor for MPO experts).</summary>
    public abstract Tensor Weight(int expert);

    /// <summary>Expert <paramref name="expert"/>'s bias, or null.</summary>
    public abstract Tensor? Bias(int expert);

    protected void CheckExpert(int expert)
    {
        if (expert < 0 || expert >= Count)
            throw new ArgumentOutOfRangeException(nameof(expert), expert, $"there are {Count} experts");
    }
}

/// <summary>
/// Dense experts (the Switch and Shazeer baselines): each expert a full copy of the matrix, <c>experts.{e}.weight</c>
/// [out, in] and <c>experts.{e}.bias</c>. Upcycled (Komatsuzaki et al. 2023): every expert starts as the pre-trained
/// matrix.
/// </summary>
public sealed class DenseExpertMatrices : ExpertMatrices
{
    readonly ModuleList<Linear> experts;

    DenseExpertMatrices(ModuleList<Linear> experts) : base(nameof(DenseExpertMatrices))
    {
        this.experts = experts;
        RegisterComponents();
    }

    /// <summary><paramref name="count"/> copies of W [out, in] (and b).</summary>
    public static DenseExpertMatrices Upcycle(Tensor weight, Tensor? bias, int count)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.dim() != 2) throw new ArgumentException($"weight must be [out, in], got [{string.Join(",", weight.shape)}]", nameof(weight));
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "at least one expert");
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.shape[0]))
            throw new ArgumentException($"bias has shape [{string.Join(",", bias.shape)}], expected [{weight.shape[0]}]", nameof(bias));
        using var _ = no_grad();
        var list = new Linear[count];
        for (int e = 0; e < count; e++)
        {
            list[e] = nn.Linear(weight.shape[1], weight.shape[0], hasBias: bias is not null, device: weight.device, dtype: weight.dtype);
            list[e].weight!.copy_(weight);
            if (bias is not null) list[e].bias!.copy_(bias);
        }
        return new DenseExpertMatrices(new ModuleList<Linear>(list));
    }

    /// <summary>Dense experts upcycled from a linear map module (Linear, GPT-2's Conv1D, an MpoLinear's reconstruction).</summary>
    public static DenseExpertMatrices Upcycle(nn.Module<Tensor, Tensor> linear, int count, string what)
    {
        var (w, b) = LinearWeight.Of(linear, what);
        try { return Upcycle(w, b, count); }
        finally { if (w is not Parameter) w.Dispose(); }   // a transposed view or a reconstruction made for this
    }

    public override int Count => experts.Count;
    public override int InFeatures => (int)experts[0].weight!.shape[1];
    public override int OutFeatures => (int)experts[0].weight!.shape[0];
    public override bool HasBias => experts[0].bias is not null;

    public override Tensor Forward(int expert, Tensor x)
    {
        CheckExpert(expert);
        return experts[expert].forward(x);
    }

    public override Tensor Weight(int expert)
    {
        CheckExpert(expert);
        return experts[expert].weight!;
    }

    public override Tensor? Bias(int expert)
    {
        CheckExpert(expert);
        return experts[expert].bias;
    }
}

/// <summary>
/// MPOE's experts (spec §5.1): the matrix decomposed into an MPO once; all experts share ONE central tensor and each
/// owns its auxiliary tensors (and bias). Names: <c>central</c> (registered here, once: a checkpoint stores it once,
/// <see cref="MpoLayer.IsCentral"/> finds it, freezing sees one owner), <c>experts.{e}.aux0</c>…, <c>experts.{e}.bias</c>.
/// <para>Without sharing (<see cref="SharesCentral"/> false; the "w/o PS" ablation of MPOE's Table 3, P2) every expert
/// owns a central tensor too, <c>experts.{e}.central</c>: each expert is then a full MPO upcycled from the same
/// pre-trained matrix, n central tensors instead of one. The names keep <see cref="MpoLayer.IsCentral"/>, freezing,
/// adapters and counting working as they do for shared ones.</para>
/// Parameters are read by name at every call: <c>Module.to(dtype/device)</c> replaces registered parameters, and the one
/// central tensor it makes is what every expert then reads (no copies). Upcycled: every expert starts as the
/// decomposition of the pre-trained matrix. Each expert's weight is rebuilt once per call, or the input contracted
/// core by core, whichever the cost model prefers for the tokens that expert received (<see cref="Path"/>); in
/// training the rebuilt weight is not kept for backward but rebuilt there (<see cref="RecomputeWeights"/>).
/// </summary>
public sealed class MpoExpertMatrices : ExpertMatrices
{
    readonly ModuleList<MpoExpertAuxiliary> experts;

    /// <param name="central">The shared central tensor; null when every expert owns one (no sharing).</param>
    MpoExpertMatrices(MpoFactorization factorization, Tensor? central, ModuleList<MpoExpertAuxiliary> experts) : base(nameof(MpoExpertMatrices))
    {
        Factorization = factorization;
        SharesCentral = central is not null;
        // Parameters are taken out of any dispose scope (as TorchSharp's own modules do), so building experts inside
        // one does not dispose them when it ends.
        if (central is not null)
            register_parameter(MpoLayer.CentralName, (Parameter)new Parameter(central, requires_grad: true).DetachFromDisposeScope());
        this.experts = experts;
        RegisterComponents();
    }

    /// <summary>
    /// <paramref name="count"/> experts from one MPO (its current cores, copied): the central tensor once, the
    /// auxiliary tensors (and <paramref name="bias"/>) once per expert; with <paramref name="shareCentral"/> false the
    /// central tensor once per expert as well.
    /// </summary>
    public static MpoExpertMatrices Upcycle(IReadOnlyList<Tensor> cores, MpoFactorization factorization, Tensor? bias, int count, bool shareCentral = true)
    {
        ArgumentNullException.ThrowIfNull(cores);
        ArgumentNullException.ThrowIfNull(factorization);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "at least one expert");
        if (cores.Count != factorization.CoreCount)
            throw new ArgumentException($"{cores.Count} cores for a factorization of {factorization.CoreCount}", nameof(cores));
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != factorization.Rows))
            throw new ArgumentException($"bias has shape [{string.Join(",", bias.shape)}], expected [{factorization.Rows}]", nameof(bias));
        using var _ = no_grad();
        int c = factorization.CentralIndex;
        var auxiliary = cores.Where((_, k) => k != c).ToArray();
        var own = shareCentral ? null : cores[c];
        var list = Enumerable.Range(0, count).Select(_ => new MpoExpertAuxiliary(auxiliary, bias, own)).ToArray();
        return new MpoExpertMatrices(factorization, shareCentral ? cores[c].detach().clone() : null, new ModuleList<MpoExpertAuxiliary>(list));
    }

    /// <summary>
    /// Experts upcycled from a linear map module: an <see cref="MpoLinear"/> (a tuner already decomposed it) gives its
    /// cores as they are; a Linear or Conv1D is decomposed first (<see cref="MpoLinear.FromWeight"/>: the chooser's
    /// factors unless <paramref name="factorization"/> is given, full bonds unless <paramref name="truncation"/>).
    /// </summary>
    public static MpoExpertMatrices Upcycle(nn.Module<Tensor, Tensor> linear, int count, string what,
                                            MpoFactorization? factorization = null, TruncationSpec? truncation = null, bool shareCentral = true)
    {
        ArgumentNullException.ThrowIfNull(linear);
        if (linear is MpoLinear mpo)
        {
            if (factorization is not null && factorization != mpo.Factorization)
                throw new ArgumentException($"{what} is already an MPO with factors {mpo.Factorization}, not {factorization}", nameof(factorization));
            if (truncation is not null)
                throw new ArgumentException($"{what} is already an MPO (bonds [{string.Join(",", mpo.Bonds)}]); truncate it before upcycling", nameof(truncation));
            return Upcycle(mpo.Cores, mpo.Factorization, mpo.Bias, count, shareCentral);
        }
        var (w, b) = LinearWeight.Of(linear, what);
        try
        {
            using var decomposed = MpoLinear.FromWeight(w, b, factorization, truncation);
            return Upcycle(decomposed.Cores, decomposed.Factorization, decomposed.Bias, count, shareCentral);
        }
        finally
        {
            if (w is not Parameter) w.Dispose();
        }
    }

    public MpoFactorization Factorization { get; }
    /// <summary>How the experts contract; <see cref="ContractionPath.Auto"/> asks the cost model per expert per call.</summary>
    public ContractionPath Path { get; set; } = ContractionPath.Auto;

    /// <summary>Whether the experts share one central tensor (MPOE) or each owns one (Table 3's "w/o PS").</summary>
    public bool SharesCentral { get; }

    /// <summary>The shared central tensor (the live parameter); throws when every expert owns one (<see cref="CentralOf"/>).</summary>
    public Parameter Central => SharesCentral
        ? get_parameter(MpoLayer.CentralName) ?? throw new InvalidOperationException("the shared central tensor is not registered")
        : throw new InvalidOperationException($"these {Count} experts do not share a central tensor (share_central false): each owns one, see CentralOf(expert)");

    /// <summary>The central tensor expert <paramref name="expert"/> reads: the shared one, or its own.</summary>
    public Parameter CentralOf(int expert)
    {
        CheckExpert(expert);
        return SharesCentral ? Central
            : experts[expert].Central ?? throw new InvalidOperationException($"expert {expert}'s central tensor is not registered");
    }

    /// <summary>Every distinct central tensor: one when shared, one per expert otherwise.</summary>
    public IReadOnlyList<Parameter> Centrals =>
        SharesCentral ? new[] { Central } : Enumerable.Range(0, Count).Select(CentralOf).ToArray();

    /// <summary>Whether the central tensors are trained (false: MPOE's <c>--tensor_learn</c>, p_b = 1); set for all of them.</summary>
    public bool CentralTrainable
    {
        get => Centrals.All(c => c.requires_grad);
        set { foreach (var c in Centrals) c.requires_grad = value; }
    }

    public void FreezeCentral() => CentralTrainable = false;

    public override int Count => experts.Count;
    public override int InFeatures => Factorization.Cols;
    public override int OutFeatures => Factorization.Rows;
    public override bool HasBias => experts[0].Bias is not null;

    /// <summary>Bond dimensions d_0..d_n (the same for all experts: their central tensors have one shape).</summary>
    public int[] Bonds => new[] { 1 }.Concat(Cores(0).Select(c => (int)c.shape[3])).ToArray();

    /// <summary>Expert <paramref name="expert"/>'s cores in chain order: its auxiliary tensors around the (shared or own) central.</summary>
    public IReadOnlyList<Tensor> Cores(int expert)
    {
        CheckExpert(expert);
        var aux = experts[expert].Auxiliary;
        var central = CentralOf(expert);
        int c = Factorization.CentralIndex;
        var cores = new Tensor[Factorization.CoreCount];
        for (int k = 0; k < cores.Length; k++) cores[k] = k == c ? central : aux[k < c ? k : k - 1];
        return cores;
    }

    /// <summary>The path a call with <paramref name="tokens"/> tokens takes.</summary>
    public ContractionPath PathFor(long tokens, bool forTraining) =>
        Path == ContractionPath.Auto ? CostModel.Choose(Factorization, Bonds, tokens, forTraining) : Path;

    /// <summary>Whether a training call rebuilds the weight again in backward instead of keeping it
    /// (<see cref="RecomputedContraction"/>): memory then grows with the experts' parameters, not with n full matrices,
    /// for one more rebuild per call. On by default.</summary>
    public bool RecomputeWeights { get; set; } = true;

    /// <summary>
    /// Whether inference calls (no gradient wanted for any core) reuse each expert's contracted weight while its cores
    /// are unchanged (<see cref="WeightCache"/>, as <see cref="MpoLayer.CacheWeight"/>). On by default: evaluation then
    /// costs what a dense-expert layer costs, and holds n dense matrices as one does; turn it off to keep inference
    /// memory at the auxiliary tensors' size. A training call drops the cached copies.
    /// </summary>
    public bool CacheWeights { get; set; } = true;

    WeightCache[] caches = Array.Empty<WeightCache>();

    public override Tensor Forward(int expert, Tensor x)
    {
        var cores = Cores(expert);
        var bias = experts[expert].Bias;
        if (Path == ContractionPath.Auto && CacheWeights && WeightCache.Serves(cores))
        {
            if (caches.Length != Count) caches = Enumerable.Range(0, Count).Select(_ => new WeightCache()).ToArray();
            return nn.functional.linear(x, caches[expert].Get(cores, () => MpoContraction.Reconstruct(cores, Factorization)), bias);
        }
        foreach (var cache in caches) cache.Clear();
        bool forTraining = is_grad_enabled() && (x.requires_grad || cores.Any(c => c.requires_grad));
        if (PathFor(x.numel() / Math.Max(1, InFeatures), forTraining) == ContractionPath.Factorized)
            return MpoContraction.LinearFactorized(x, cores, Factorization, bias);
        return forTraining && RecomputeWeights
            ? RecomputedContraction.LinearReconstructed(x, cores, Factorization, bias)
            : MpoContraction.LinearReconstructed(x, cores, Factorization, bias);
    }

    public override Tensor Weight(int expert) => MpoContraction.Reconstruct(Cores(expert), Factorization);

    protected override void Dispose(bool disposing)
    {
        if (disposing) foreach (var cache in caches) cache.Dispose();
        base.Dispose(disposing);
    }

    public override Tensor? Bias(int expert)
    {
        CheckExpert(expert);
        return experts[expert].Bias;
    }
}

/// <summary>One MPO expert's own tensors: <c>aux0</c>, <c>aux1</c>, … (the cores other than the central, in chain
/// order, named as <see cref="MpoLayer"/> names them), <c>bias</c>, and <c>central</c> when the experts do not share
/// one (MPOE Table 3's "w/o PS").</summary>
public sealed class MpoExpertAuxiliary : nn.Module
{
    readonly int count;

    internal MpoExpertAuxiliary(IReadOnlyList<Tensor> auxiliary, Tensor? bias, Tensor? central = null) : base(nameof(MpoExpertAuxiliary))
    {
        count = auxiliary.Count;
        if (central is not null) register_parameter(MpoLayer.CentralName, Own(central));
        for (int i = 0; i < count; i++)
            register_parameter(MpoLayer.AuxiliaryPrefix + i, Own(auxiliary[i]));
        if (bias is not null) register_parameter("bias", Own(bias));
    }

    static Parameter Own(Tensor t) => (Parameter)new Parameter(t.detach().clone(), requires_grad: true).DetachFromDisposeScope();

    /// <summary>The auxiliary tensors in chain order (live parameters).</summary>
    public IReadOnlyList<Parameter> Auxiliary =>
        Enumerable.Range(0, count).Select(i => get_parameter(MpoLayer.AuxiliaryPrefix + i)
                                               ?? throw new InvalidOperationException($"auxiliary tensor {i} is not registered")).ToArray();

    public Parameter? Bias => get_parameter("bias");

    /// <summary>The expert's own central tensor, or null when it reads the shared one.</summary>
    public Parameter? Central => get_parameter(MpoLayer.CentralName);
}
