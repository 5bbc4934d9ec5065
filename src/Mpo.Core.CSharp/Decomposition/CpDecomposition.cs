using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Decomposition;

/// <summary>How CP-ALS starts.</summary>
public abstract record CpInitialization
{
    private CpInitialization() { }

    /// <summary>HOSVD start: the leading left singular vectors of each mode unfolding (tensorly's "svd" init); a
    /// rank above a mode's size fills the remaining columns with seeded Gaussians.</summary>
    public sealed record Svd(int Seed = 0) : CpInitialization;
    /// <summary>Seeded Gaussian factors.</summary>
    public sealed record Random(int Seed = 0) : CpInitialization;
    /// <summary>Explicit factors A_k [a_k, R] (e.g. another implementation's start, to compare fits).</summary>
    public sealed record Given(IReadOnlyList<Tensor> Factors) : CpInitialization;
}

/// <summary>Stopping rule and start of CP-ALS.</summary>
public sealed record CpOptions
{
    /// <summary>Sweeps at most (one sweep updates every factor once).</summary>
    public int MaxIterations { get; init; } = 100;
    /// <summary>Stop when the relative error changes by less than this between sweeps, |ε_{t−1} − ε_t| &lt; tol
    /// (the change of the fit 1 − ε; tensorly's rule).</summary>
    public double Tolerance { get; init; } = 1e-8;
    public CpInitialization Initialization { get; init; } = new CpInitialization.Svd();

    public static CpOptions Default { get; } = new();
}

/// <summary>
/// X ≈ Σ_r λ_r a_r^(1) ∘ ⋯ ∘ a_r^(N): factor matrices A_k [a_k, R] with unit-norm columns and weights λ (descending).
/// Owns its tensors.
/// </summary>
public sealed record CpDecompositionResult(
    long[] Shape,
    int Rank,
    Tensor[] Factors,
    Tensor Weights,
    long ParameterCount,
    double FrobeniusNorm,
    double RelativeError,
    int Iterations,
    bool Converged,
    double[] ErrorHistory) : IDisposable
{
    /// <summary>1 − ‖X − X̂‖_F / ‖X‖_F.</summary>
    public double Fit => 1 - RelativeError;
    /// <summary>‖X − X̂‖_F.</summary>
    public double Error => RelativeError * FrobeniusNorm;
    /// <summary>X̂ [a_1, …, a_N].</summary>
    public Tensor Reconstruct() => CpDecomposition.Reconstruct(Factors, Weights);

    public void Dispose()
    {
        foreach (var f in Factors) f.Dispose();
        Weights.Dispose();
    }
}

/// <summary>
/// CANDECOMP/PARAFAC by alternating least squares (Kolda &amp; Bader 2009, §3.4): MPOP's "CPD" baseline (Fig. 2a) and
/// the d = 1 Tucker row of its Table 2. A pure function of its inputs, float64 inside, on the input's device.
/// <para>
/// Each factor update is A_k ← X_(k) (⊙_{m≠k} A_m) · (∗_{m≠k} A_mᵀA_m)⁻¹. The Khatri–Rao product of all other modes
/// (|X|/a_k × R, over a GB for an embedding at rank a few hundred) is never formed: the modes are split once into a
/// left and a right half and, per sweep, X is contracted with the Khatri–Rao product of one half (a GEMM, |X|·R
/// multiply-adds), leaving a small [Π half, R] tensor from which every factor of the other half gets its MTTKRP
/// (a two-level dimension tree, Phan, Tichavský &amp; Cichocki 2013). A sweep costs two GEMMs with X.
/// </para>
/// </summary>
public static class CpDecomposition
{
    /// <summary>Below this relative error the Gram identity ‖X − X̂‖² = ‖X‖² − 2⟨X, X̂⟩ + ‖X̂‖² has cancelled most
    /// of its digits (ε² is a difference of numbers near 1), so the residual is formed explicitly.</summary>
    const double ExplicitErrorBelow = 1e-6;

    /// <summary>Storage of a rank-R CP of a tensor with modes a_k: R·Σ a_k (λ folded into one factor).</summary>
    public static long ParameterCount(IReadOnlyList<long> shape, int rank) => rank * shape.Sum();

    /// <summary>Decomposes an N-way tensor (N ≥ 2) into <paramref name="rank"/> rank-one terms.</summary>
    /// <param name="dtype">Dtype of the returned factors and weights; default the tensor's.</param>
    public static CpDecompositionResult Decompose(Tensor tensor, int rank, CpOptions? options = null, ScalarType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        options ??= CpOptions.Default;
        if (tensor.dim() < 2)
            throw new ArgumentException($"CP decomposes a tensor with at least 2 modes, got shape [{string.Join(",", tensor.shape)}]", nameof(tensor));
        if (!tensor.is_floating_point())
            throw new ArgumentException($"the tensor must be floating point, got {tensor.dtype}", nameof(tensor));
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "the CP rank must be at least 1");
        if (options.MaxIterations < 1)
            throw new ArgumentOutOfRangeException("max-iterations", options.MaxIterations, "CP-ALS needs at least one sweep");
        if (!(options.Tolerance >= 0))
            throw new ArgumentOutOfRangeException("tolerance", options.Tolerance, "the tolerance must be a number ≥ 0");
        var outType = dtype ?? tensor.dtype;

        using var scope = NewDisposeScope();
        var x = tensor.detach().to(ScalarType.Float64).contiguous();
        if (!torch.isfinite(x).all().item<bool>())
            throw new ArgumentException("the tensor contains NaN or Inf entries", nameof(tensor));
        var shape = x.shape;
        int n = shape.Length;
        double norm2 = x.square().sum().item<double>();

        int h = Split(shape);
        long left = shape.Take(h).Aggregate(1L, (a, b) => a * b), right = shape.Skip(h).Aggregate(1L, (a, b) => a * b);
        var m = x.reshape(left, right);

        var factors = Initialize(x, rank, options.Initialization);
        for (int k = 0; k < n; k++) factors[k] = Normalized(factors[k], out _);
        var grams = factors.Select(a => a.t().mm(a)).ToArray();
        var weights = ones(rank, dtype: ScalarType.Float64, device: x.device);

        var history = new List<double>();
        bool converged = false;
        if (norm2 == 0)
        {
            // Nothing to fit: λ = 0 reproduces X exactly.
            weights = zeros(rank, dtype: ScalarType.Float64, device: x.device);
            converged = true;
        }
        else
        {
            for (int iteration = 1; iteration <= options.MaxIterations; iteration++)
            {
                using var step = NewDisposeScope();
                // Left half against X contracted with the right half's Khatri–Rao product …
                var t = m.mm(KhatriRao(factors, h, n));
                for (int k = 0; k < h; k++)
                    Update(k, PartialMttkrp(t, shape, 0, h, k, factors), factors, grams, ref weights);
                // … then the right half against the updated left half.
                var u = m.t().mm(KhatriRao(factors, 0, h));
                Tensor last = null!;
                for (int k = h; k < n; k++)
                {
                    last = PartialMttkrp(u, shape, h, n, k, factors);
                    Update(k, last, factors, grams, ref weights);
                }
                // ⟨X, X̂⟩ from the last MTTKRP (all other factors final), ‖X̂‖² from the Grams.
                double inner = (last * factors[n - 1] * weights.unsqueeze(0)).sum().item<double>();
                var hadamard = grams.Aggregate((a, b) => a * b);
                double model2 = weights.unsqueeze(0).mm(hadamard).mm(weights.unsqueeze(1)).item<double>();
                double relative = Math.Sqrt(Math.Max(0, norm2 - 2 * inner + model2) / norm2);
                if (relative < ExplicitErrorBelow) relative = ExplicitRelativeError(m, factors, weights, h, norm2);
                history.Add(relative);
                if (history.Count >= 2 && Math.Abs(history[^2] - relative) < options.Tolerance)
                {
                    converged = true;
                    break;
                }
            }
        }

        // Components in order of weight; the final error from an explicit residual, not the cancelling identity.
        var order = weights.argsort(descending: true);
        var sortedWeights = weights.index_select(0, order);
        var sorted = factors.Select(a => a.index_select(1, order)).ToArray();
        double finalError = norm2 == 0 ? 0 : ExplicitRelativeError(m, sorted, sortedWeights, h, norm2);
        if (history.Count > 0) history[^1] = finalError;

        var outFactors = sorted.Select(a => a.to(outType).contiguous().MoveToOuterDisposeScope()).ToArray();
        var outWeights = sortedWeights.to(outType).contiguous().MoveToOuterDisposeScope();
        return new CpDecompositionResult(shape.ToArray(), rank, outFactors, outWeights, ParameterCount(shape, rank),
            Math.Sqrt(norm2), finalError, history.Count, converged, history.ToArray());
    }

    /// <summary>X̂ = Σ_r λ_r a_r^(1) ∘ ⋯ ∘ a_r^(N), shape [a_1, …, a_N].</summary>
    public static Tensor Reconstruct(IReadOnlyList<Tensor> factors, Tensor weights)
    {
        ArgumentNullException.ThrowIfNull(factors);
        ArgumentNullException.ThrowIfNull(weights);
        if (factors.Count < 2) throw new ArgumentException("a CP needs at least 2 factor matrices", nameof(factors));
        using var scope = NewDisposeScope();
        var shape = factors.Select(a => a.shape[0]).ToArray();
        var rest = KhatriRao(factors, 1, factors.Count);
        return (factors[0] * weights.unsqueeze(0)).mm(rest.t()).reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>The split point h (modes 0..h-1 | h..N-1) with the most balanced halves: it bounds the Khatri–Rao
    /// products and the contracted tensors by max(Π left, Π right)·R.</summary>
    static int Split(long[] shape)
    {
        int best = 1;
        double bestSize = double.PositiveInfinity;
        for (int h = 1; h < shape.Length; h++)
        {
            double l = shape.Take(h).Aggregate(1.0, (a, b) => a * b), r = shape.Skip(h).Aggregate(1.0, (a, b) => a * b);
            if (Math.Max(l, r) < bestSize) { bestSize = Math.Max(l, r); best = h; }
        }
        return best;
    }

    /// <summary>Khatri–Rao product A_from ⊙ ⋯ ⊙ A_{to−1} [Π a, R], the first mode most significant (matches X's
    /// row-major reshape); [1, R] of ones for an empty range.</summary>
    static Tensor KhatriRao(IReadOnlyList<Tensor> factors, int from, int to)
    {
        long rank = factors[0].shape[1];
        if (to <= from) return ones(1, rank, dtype: factors[0].dtype, device: factors[0].device);
        var acc = factors[from];
        for (int k = from + 1; k < to; k++) acc = (acc.unsqueeze(1) * factors[k].unsqueeze(0)).reshape(-1, rank);
        return acc;
    }

    /// <summary>MTTKRP of mode k from T [Π_{m∈[from,to)} a_m, R] = X contracted with the other half's factors:
    /// M[a_k, r] = Σ over the half's other modes of T · Π A_m[·, r].</summary>
    static Tensor PartialMttkrp(Tensor t, long[] shape, int from, int to, int k, IReadOnlyList<Tensor> factors)
    {
        long rank = t.shape[1];
        long pre = shape.Skip(from).Take(k - from).Aggregate(1L, (a, b) => a * b);
        long post = shape.Skip(k + 1).Take(to - k - 1).Aggregate(1L, (a, b) => a * b);
        var t3 = t.reshape(pre, shape[k], post, rank);
        var partial = k > from ? (t3 * KhatriRao(factors, from, k).reshape(pre, 1, 1, rank)).sum(0L) : t3.squeeze(0);
        return k < to - 1 ? (partial * KhatriRao(factors, k + 1, to).reshape(1, post, rank)).sum(1L) : partial.squeeze(1);
    }

    /// <summary>The least-squares update of factor k: A_k = M V⁻¹, V = ∗_{m≠k} A_mᵀA_m, then unit columns with their
    /// norms as λ. The new tensors replace the old ones in the caller's (outer) scope.</summary>
    static void Update(int k, Tensor mttkrp, Tensor[] factors, Tensor[] grams, ref Tensor weights)
    {
        var v = grams.Where((_, m) => m != k).Aggregate((a, b) => a * b);
        var a = Solve(v, mttkrp);
        var normalized = Normalized(a, out var lambda);
        factors[k].Dispose();
        factors[k] = normalized.MoveToOuterDisposeScope();
        grams[k].Dispose();
        grams[k] = factors[k].t().mm(factors[k]).MoveToOuterDisposeScope();
        weights.Dispose();
        weights = lambda.MoveToOuterDisposeScope();
    }

    /// <summary>A = M V⁻¹ for symmetric positive semi-definite V: Cholesky when V is positive definite, the
    /// pseudo-inverse (minimum-norm least squares, still a minimizer, so ALS stays monotone) when not.</summary>
    static Tensor Solve(Tensor v, Tensor m)
    {
        var (l, info) = linalg.cholesky_ex(v);
        if (info.item<int>() == 0) return cholesky_solve(m.t(), l).t();
        return m.mm(linalg.pinv(v, hermitian: true));
    }

    /// <summary>Columns scaled to unit 2-norm (a zero column stays zero), the norms returned.</summary>
    static Tensor Normalized(Tensor a, out Tensor norms)
    {
        norms = linalg.vector_norm(a, dims: new long[] { 0 });
        var safe = torch.where(norms > 0, norms, ones_like(norms));
        return a / safe.unsqueeze(0);
    }

    static double ExplicitRelativeError(Tensor m, IReadOnlyList<Tensor> factors, Tensor weights, int h, double norm2)
    {
        using var scope = NewDisposeScope();
        var model = (KhatriRao(factors, 0, h) * weights.unsqueeze(0)).mm(KhatriRao(factors, h, factors.Count).t());
        return Math.Sqrt((m - model).square().sum().item<double>() / norm2);
    }

    static Tensor[] Initialize(Tensor x, int rank, CpInitialization init)
    {
        var shape = x.shape;
        int n = shape.Length;
        switch (init)
        {
            case CpInitialization.Given g:
                if (g.Factors.Count != n)
                    throw new ArgumentException($"the initialization gives {g.Factors.Count} factor matrices, the tensor has {n} modes", "initialization");
                for (int k = 0; k < n; k++)
                    if (g.Factors[k].dim() != 2 || g.Factors[k].shape[0] != shape[k] || g.Factors[k].shape[1] != rank)
                        throw new ArgumentException(
                            $"initial factor {k} has shape [{string.Join(",", g.Factors[k].shape)}], expected [{shape[k]},{rank}]", "initialization");
                return g.Factors.Select(a => a.detach().to(ScalarType.Float64, x.device).clone()).ToArray();
            case CpInitialization.Random r:
            {
                using var generator = new Generator((ulong)r.Seed);
                return Enumerable.Range(0, n)
                    .Select(k => randn(new[] { shape[k], (long)rank }, dtype: ScalarType.Float64, generator: generator).to(x.device))
                    .ToArray();
            }
            case CpInitialization.Svd s:
            {
                using var generator = new Generator((ulong)s.Seed);
                var result = new Tensor[n];
                for (int k = 0; k < n; k++)
                {
                    // Left singular vectors of the mode-k unfolding = eigenvectors of its Gram [a_k, a_k].
                    var unfolding = x.movedim(new[] { (long)k }, new[] { 0L }).reshape(shape[k], -1);
                    var (_, vectors) = linalg.eigh(unfolding.mm(unfolding.t()));
                    long take = Math.Min(rank, shape[k]);
                    var leading = vectors.flip(1).narrow(1, 0, take);
                    result[k] = take == rank
                        ? leading
                        : cat(new[] { leading, randn(new[] { shape[k], rank - take }, dtype: ScalarType.Float64, generator: generator).to(x.device) }, 1);
                }
                return result;
            }
            default:
                throw new ArgumentException($"unknown CP initialization {init}", nameof(init));
        }
    }
}
