using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Layers;

/// <summary>
/// What every MPO-decomposed layer shares: the cores as parameters whose names say their role, freezing of the
/// central tensor (MPOP lightweight fine-tuning), and in-place truncation.
/// <para>Parameter names: <c>central</c> for the central tensor, <c>aux0</c>, <c>aux1</c>, … for the auxiliary tensors
/// in core order. The suffixes drive freezing, adapter saving and counting elsewhere (see <see cref="IsCentral"/>).</para>
/// </summary>
public abstract class MpoLayer : nn.Module<Tensor, Tensor>
{
    /// <summary>Name of the central tensor parameter.</summary>
    public const string CentralName = "central";
    /// <summary>Prefix of the auxiliary tensor parameters (<c>aux0</c>, <c>aux1</c>, …).</summary>
    public const string AuxiliaryPrefix = "aux";

    // Names, not Parameter objects: Module.to(dtype/device) replaces registered parameters with new ones, and only
    // fields named like them are updated, so a cached array would go stale (empty handles after .to(float64)).
    readonly string[] coreNames;
    Parameter[] cores => coreNames.Select(n => get_parameter(n) ?? throw new InvalidOperationException($"MPO core '{n}' is not registered")).ToArray();

    public MpoFactorization Factorization { get; }
    double[][]? spectra;
    readonly Contraction.WeightCache weightCache = new();

    /// <summary>
    /// Whether inference calls (no gradient wanted for any core) reuse the contracted weight while the cores are
    /// unchanged (<see cref="Contraction.WeightCache"/>: any in-place write to a core, whoever makes it, invalidates
    /// it). On by default; it costs one dense copy of W per layer while evaluating, freed by the next training call.
    /// </summary>
    public bool CacheWeight { get; set; } = true;

    protected MpoLayer(string name, MatrixProductOperator mpo, bool adoptCores) : base(name)
    {
        ArgumentNullException.ThrowIfNull(mpo);
        Factorization = mpo.Factorization;
        spectra = mpo.Spectra.Select(s => s.ToArray()).ToArray();
        var initial = mpo.Cores.Select(c => Owned(adoptCores ? c : c.detach().clone())).ToArray();
        coreNames = Enumerable.Range(0, initial.Length).Select(CoreName).ToArray();
        for (int k = 0; k < initial.Length; k++)
            register_parameter(coreNames[k], initial[k]);
    }

    /// <summary>
    /// Cores of the given shapes, zero-filled, on <paramref name="device"/> (default: libtorch's default device): a
    /// layer to load saved cores into (an adapter, a squeezed checkpoint), or, on the meta device, one that only has
    /// shapes (parameter counts from a configuration alone).
    /// </summary>
    protected MpoLayer(string name, MpoFactorization factorization, IReadOnlyList<int> bonds, ScalarType? dtype, Device? device) : base(name)
    {
        ArgumentNullException.ThrowIfNull(factorization);
        factorization.CheckBonds(bonds);
        Factorization = factorization;
        coreNames = Enumerable.Range(0, factorization.CoreCount).Select(CoreName).ToArray();
        for (int k = 0; k < coreNames.Length; k++)
            register_parameter(coreNames[k], Owned(zeros(factorization.CoreShape(k, bonds), dtype, device)));
    }

    /// <summary>Decomposes <paramref name="weight"/> (default factors: the chooser's) and truncates it if asked; the
    /// shared first step of every layer factory.</summary>
    protected static MatrixProductOperator Decompose(Tensor weight, string what, MpoFactorization? factorization, TruncationSpec? truncation)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"{what} must be 2-D, got [{string.Join(",", weight.shape)}]", nameof(weight));
        factorization ??= FactorizationChooser.Choose((int)weight.shape[0], (int)weight.shape[1]);
        if (truncation is null) return MpoDecomposer.Decompose(weight, factorization);
        // cut during the sweep: the discarded indices' vectors are never computed (a partial SVD where that is cheaper)
        return MpoDecomposer.Decompose(weight, factorization, truncation).Mpo;
    }

    /// <summary>A trainable parameter this layer owns: taken out of any dispose scope it was made in, so a layer built
    /// inside a scope (a tuner's loop) keeps its tensors when the scope ends.</summary>
    protected static Parameter Owned(Tensor values)
    {
        var parameter = new Parameter(values, requires_grad: true);
        parameter.DetachFromDisposeScope();
        return parameter;
    }

    /// <summary>Name of the parameter that holds core <paramref name="k"/>.</summary>
    public string CoreName(int k) => k == CentralIndex ? CentralName : AuxiliaryPrefix + (k < CentralIndex ? k : k - 1);

    /// <summary>True for a parameter name (full dotted path or not) that is an MPO central tensor.</summary>
    public static bool IsCentral(string parameterName) => LastSegment(parameterName) == CentralName;

    /// <summary>True for a parameter name (full dotted path or not) that is an MPO auxiliary tensor (<c>aux0</c>, …).</summary>
    public static bool IsAuxiliary(string parameterName)
    {
        var last = LastSegment(parameterName);
        return last.Length > AuxiliaryPrefix.Length && last.StartsWith(AuxiliaryPrefix, StringComparison.Ordinal)
               && last.AsSpan(AuxiliaryPrefix.Length).ToArray().All(char.IsAsciiDigit);
    }

    /// <summary>True for a parameter name that is an MPO core, central or auxiliary.</summary>
    public static bool IsCore(string parameterName) => IsCentral(parameterName) || IsAuxiliary(parameterName);

    static string LastSegment(string name) => name[(name.LastIndexOf('.') + 1)..];

    public int CentralIndex => Factorization.CentralIndex;
    /// <summary>The cores in order (parameters, live).</summary>
    public IReadOnlyList<Parameter> Cores => cores;
    public Parameter Central => cores[CentralIndex];
    public IEnumerable<Parameter> Auxiliary => cores.Where((_, k) => k != CentralIndex);
    /// <summary>Bond dimensions d_0..d_n as the cores are now.</summary>
    public int[] Bonds => new[] { 1 }.Concat(cores.Select(c => (int)c.shape[3])).ToArray();

    /// <summary>Whether the central tensor is trained (false under lightweight fine-tuning).</summary>
    public bool CentralTrainable
    {
        get => Central.requires_grad;
        set => Central.requires_grad = value;
    }

    /// <summary>Freezes the central tensor: only auxiliary tensors (and biases) learn (MPOP §4.2).</summary>
    public void FreezeCentral() => CentralTrainable = false;
    public void UnfreezeCentral() => CentralTrainable = true;

    /// <summary>The dense matrix the cores represent now, [Rows, Cols].</summary>
    public Tensor Weight() => Contraction.MpoContraction.Reconstruct(cores, Factorization);

    /// <summary>
    /// For a call that needs no gradient through the cores (grad mode off, or every core frozen): the dense weight,
    /// contracted once and reused while the cores are unchanged (owned by the layer: do not dispose it). Otherwise
    /// null — the caller contracts with gradient — and the cached copy is dropped.
    /// </summary>
    protected Tensor? InferenceWeight()
    {
        var live = cores;
        if (!CacheWeight || !Contraction.WeightCache.Serves(live))
        {
            weightCache.Clear();
            return null;
        }
        return weightCache.Get(live, Weight);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) weightCache.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>
    /// The Schmidt values of every bond (bond b at index b-1) as of the layer's last canonical gauge — its
    /// decomposition or its last <see cref="Truncate"/> — which training since leaves unchanged (MPOP's dimension
    /// squeezing ranks cuts by these stored values, spec §4.4). A layer built from shapes alone gauges its current
    /// cores the first time they are asked for.
    /// </summary>
    public IReadOnlyList<double[]> Spectra
    {
        get
        {
            if (spectra is null)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                using var gauged = Gauged();
                spectra = gauged.Spectra.Select(s => s.ToArray()).ToArray();
            }
            return spectra;
        }
    }

    /// <summary>
    /// Replaces every core with <paramref name="values"/> (any bonds the factorization allows; a saved squeezing state,
    /// a checkpoint's shapes), keeping the parameter objects, and the stored spectra with <paramref name="schmidt"/>
    /// (null: gauged again when next asked for). The cores are marked replaced, so AdamW starts them afresh.
    /// </summary>
    public void LoadCores(IReadOnlyList<Tensor> values, IReadOnlyList<double[]>? schmidt = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        var live = cores;
        if (values.Count != live.Length)
            throw new ArgumentException($"expected {live.Length} cores, got {values.Count}", nameof(values));
        var bonds = new[] { 1 }.Concat(values.Select(v => (int)v.shape[3])).ToArray();
        Factorization.CheckBonds(bonds, nameof(values));
        for (int k = 0; k < live.Length; k++)
            if (!values[k].shape.SequenceEqual(Factorization.CoreShape(k, bonds)))
                throw new ArgumentException(
                    $"core {k} has shape [{string.Join(",", values[k].shape)}], expected [{string.Join(",", Factorization.CoreShape(k, bonds))}] for {Factorization}", nameof(values));
        if (schmidt is not null && (schmidt.Count != bonds.Length - 2 || schmidt.Where((l, b) => l.Length != bonds[b + 1]).Any()))
            throw new ArgumentException("the spectra do not match the cores' bonds", nameof(schmidt));
        using var _ = no_grad();
        for (int k = 0; k < live.Length; k++)
        {
            live[k].set_(values[k].detach().to(live[k].dtype, live[k].device).clone());
            live[k].grad = null;
            Training.ParameterReplacement.MarkReplaced(live[k]);
        }
        spectra = schmidt?.Select(l => l.ToArray()).ToArray();
    }

    /// <summary>The current cores in the canonical gauge (float64, in the caller's dispose scope). Padding
    /// rows/columns (a vocabulary factored as a larger size) must be zero for the spectra to be those of the real
    /// matrix, but training moves them: a padded layer is re-gauged from its real block, zero-padded again.</summary>
    MatrixProductOperator Gauged() => Factorization.IsPadded
        ? MpoDecomposer.Decompose(Weight(), Factorization, ScalarType.Float64)
        : MpoDecomposer.Canonicalize(cores, Factorization, null, ScalarType.Float64);

    /// <summary>
    /// Truncates the bonds in place: the current (possibly trained, no longer canonical) cores are first brought back
    /// into the canonical gauge, then cut as <paramref name="spec"/> asks. A padded factorization is re-gauged from
    /// its real rows and columns with the padding zeroed, so spectra, ‖W‖ and the error concern the real matrix. The parameter objects stay the same — their
    /// storage is swapped — so an optimizer holding them sees the new tensors, never stale ones. Every core is
    /// re-gauged, also those whose shape does not change, so each is marked replaced
    /// (<see cref="Training.ParameterReplacement"/>): <see cref="Training.AdamW"/> then starts their moments afresh.
    /// Gradients are cleared.
    /// </summary>
    /// <returns>The report, with the actual error measured against the matrix before truncation.</returns>
    public TruncationReport Truncate(TruncationSpec spec)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var gauged = Gauged();
        using var truncated = gauged.TruncateMeasured(spec);
        Adopt(truncated.Mpo);
        return truncated.Report;
    }

    /// <summary>
    /// <see cref="Truncate"/> without the measurement: the same re-gauge and cut, but the dense matrix is not rebuilt
    /// twice to measure the error. Dimension squeezing (MPOP §4.4) ranks its cuts by the stored Schmidt values and judges
    /// them by the loss, never by a measured matrix error, and for BERT's 30522 × 384 word embedding those two
    /// reconstructions cost as much as the cut's sweeps.
    /// </summary>
    public void Squeeze(TruncationSpec spec)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (Factorization.IsPadded)
        {
            // The padded layer is re-gauged from its real rows anyway (see Gauged): cutting during that decomposition's
            // sweep, then one canonical pass, saves the second full sweep pair that decomposing and then truncating
            // costs (BERT's 30522-row embedding: the whole cost of a squeeze step).
            using var cut = MpoDecomposer.Decompose(Weight(), Factorization, spec, dtype: ScalarType.Float64).Mpo;
            Adopt(cut);
            return;
        }
        using var gauged = Gauged();
        using var truncated = gauged.Truncate(spec);
        Adopt(truncated);
    }

    /// <summary>Swaps the cores' storage for <paramref name="truncated"/>'s (same parameter objects) and keeps its
    /// spectra; each core is marked replaced and its gradient cleared.</summary>
    void Adopt(MatrixProductOperator truncated)
    {
        var dtype = Central.dtype;
        spectra = truncated.Spectra.Select(s => s.ToArray()).ToArray();
        var live = cores;
        for (int k = 0; k < live.Length; k++)
        {
            var replacement = truncated.Cores[k].to(dtype, live[k].device).contiguous();
            live[k].set_(replacement);
            live[k].grad = null;
            Training.ParameterReplacement.MarkReplaced(live[k]);
        }
    }

}
