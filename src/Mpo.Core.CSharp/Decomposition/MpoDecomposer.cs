using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Decomposition;

/// <summary>
/// Matrix → MPO (MPOP Algorithm 1; spec §3.1–3.3), as pure functions of their inputs.
/// <para>
/// The matrix is reshaped to (i_1, j_1, …, i_n, j_n) and split left to right (TT-SVD). The papers then fix the gauge
/// with explicit gauge matrices P_b, Q_b built from λ^{-1/2}. Here the same gauge is reached directly: a TT-SVD from
/// the right, whose singular values at bond b are exactly the Schmidt values λ_b of the bond-b unfolding, then each
/// bond gets √λ_b on both sides. Arbitrary cores (after training) are first made left-orthonormal by a QR sweep and
/// then swept the same way. The ±1 left free per bond index is fixed by one rule (<see cref="FixSigns"/>), so the
/// cores are a function of the matrix alone. All of it runs in float64 on the input's device; results come back in
/// the caller's dtype on that device.
/// </para>
/// </summary>
public static class MpoDecomposer
{
    /// <summary>Schmidt values below this fraction of a bond's largest are numerically zero: the bond index is kept
    /// (shapes stay predictable) but carries zeros on both sides instead of a 1/√λ blow-up (zero-padded rows, rank
    /// deficiency). Reconstruction changes by at most these values.</summary>
    public const double RelativeZero = 1e-13;

    /// <summary>Decomposes a 2-D matrix at full bonds (exact up to round-off).</summary>
    /// <param name="matrix">W [rows, cols]; any floating dtype; any device.</param>
    /// <param name="factorization">Row and column factors; their products must equal (or, with padding, exceed) the shape.</param>
    /// <param name="dtype">Dtype of the returned cores; default the matrix's.</param>
    public static MatrixProductOperator Decompose(Tensor matrix, MpoFactorization factorization, ScalarType? dtype = null)
    {
        using var scope = NewDisposeScope();
        var rest = Interleaved(matrix, factorization);
        var sweep = Sweep(rest, factorization, null, SvdMethod.Exact);
        return MoveOut(SymmetricSplit(sweep.Cores, sweep.Spectra!, factorization, dtype ?? matrix.dtype));
    }

    /// <summary>
    /// Decomposes a 2-D matrix truncated as <paramref name="truncation"/> asks, with its error bound. A bond cap or
    /// explicit bonds fix every kept dimension d'_b before the sweep, so the TT-SVD from the right splits each bond
    /// with <paramref name="svd"/>'s solver, never computing the vectors (with the partial solvers, nor the spectrum)
    /// of the indices it discards, on unfoldings that shrink as the cuts go (MPOP Algorithm 1 with the truncation of
    /// spec §3.4 applied during the sweep rather than after it). The cut cores are then brought into the symmetric
    /// canonical gauge with fixed signs by <see cref="Canonicalize"/>, so the stored spectra are the Schmidt values
    /// of the truncated operator, as after <see cref="MatrixProductOperator.Truncate(TruncationSpec)"/>. Tolerance
    /// and budget need every bond's full spectrum to choose: those decompose at full bonds, then truncate.
    /// When nothing is cut the result is <see cref="Decompose(Tensor, MpoFactorization, ScalarType?)"/>'s, core for core.
    /// </summary>
    /// <param name="svd">Solver per bond; default <see cref="SvdSolver.Auto"/>. A partial solver with tolerance or
    /// budget is refused.</param>
    public static TruncatedDecomposition Decompose(Tensor matrix, MpoFactorization factorization, TruncationSpec truncation,
                                                   SvdMethod? svd = null, ScalarType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(factorization);
        ArgumentNullException.ThrowIfNull(truncation);
        svd ??= new SvdMethod();
        svd.Check();
        int n = factorization.CoreCount;
        using var scope = NewDisposeScope();
        var rest = Interleaved(matrix, factorization);
        var outType = dtype ?? matrix.dtype;
        double norm = rest.norm().item<double>();
        if (truncation is TruncationSpec.Tolerance or TruncationSpec.Budget)
        {
            if (svd.Solver is SvdSolver.Gram or SvdSolver.Randomized)
                throw new ArgumentException(
                    $"truncation {truncation} chooses bonds from every bond's full spectrum, which the {svd.Solver} solver " +
                    "does not compute; use max_bond or bonds with it, or the exact solver", nameof(svd));
            var exact = Sweep(rest, factorization, null, SvdMethod.Exact);
            using var full = SymmetricSplit(exact.Cores, exact.Spectra!, factorization, ScalarType.Float64);
            var planned = Truncation.Plan(factorization, full.Spectra, truncation);
            return new TruncatedDecomposition(MoveOut(Canonicalize(full.Cores, factorization, planned, outType)), planned,
                norm, Truncation.DiscardedWeight(full.Spectra, planned), Enumerable.Repeat(SvdSolver.Exact, n - 1).ToArray());
        }
        var bonds = Truncation.PlanShape(factorization, truncation);
        var sweep = Sweep(rest, factorization, bonds, svd);
        var discarded = sweep.Discarded2.Select(Math.Sqrt).ToArray();
        var mpo = bonds.SequenceEqual(factorization.FullBonds())
            ? SymmetricSplit(sweep.Cores, sweep.Spectra!, factorization, outType)
            : Canonicalize(sweep.Cores, factorization, null, outType);
        return new TruncatedDecomposition(MoveOut(mpo), bonds, norm, discarded, sweep.Solvers);
    }

    /// <summary>The matrix as every sweep starts from it: checked, float64, zero-padded, reshaped to (i_1..i_n,
    /// j_1..j_n) and permuted to (i_1, j_1, …, i_n, j_n), so the bond-b unfolding is a reshape.</summary>
    static Tensor Interleaved(Tensor matrix, MpoFactorization factorization)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(factorization);
        if (matrix.dim() != 2)
            throw new ArgumentException($"an MPO decomposes a 2-D matrix, got a tensor of shape [{string.Join(",", matrix.shape)}]", nameof(matrix));
        if (!matrix.is_floating_point())
            throw new ArgumentException($"the matrix must be floating point, got {matrix.dtype}", nameof(matrix));
        if (matrix.shape[0] != factorization.Rows || matrix.shape[1] != factorization.Cols)
            throw new ArgumentException(
                $"matrix shape [{matrix.shape[0]},{matrix.shape[1]}] does not match factorization {factorization} " +
                $"(expects {factorization.Rows} x {factorization.Cols})", nameof(factorization));
        var w = matrix.detach().to(ScalarType.Float64);
        if (!torch.isfinite(w).all().item<bool>())
            throw new ArgumentException("the matrix contains NaN or Inf entries", nameof(matrix));
        if (factorization.IsPadded)
            w = nn.functional.pad(w, new long[] { 0, factorization.PaddedCols - factorization.Cols, 0, factorization.PaddedRows - factorization.Rows });
        int n = factorization.CoreCount;
        var shape = factorization.RowFactors.Concat(factorization.ColFactors).Select(f => (long)f).ToArray();
        var interleave = Enumerable.Range(0, n).SelectMany(k => new long[] { k, n + k }).ToArray();
        return w.reshape(shape).permute(interleave).contiguous();
    }

    /// <summary>What a TT-SVD sweep leaves: cores 1..n-1 with orthonormal rows, core 0 carrying the weight; the kept
    /// singular values per bond (null where a partial solver did not compute them); the weight each split discarded,
    /// squared; the solver each bond used.</summary>
    sealed record SweepResult(Tensor[] Cores, Tensor[]? Spectra, double[] Discarded2, SvdSolver[] Solvers);

    /// <summary>
    /// TT-SVD from the right: each split keeps an orthonormal basis V of the unfolding's row space as the next core
    /// and carries M·V left. Because everything to its right is already orthonormal, an exact split's singular values
    /// are the Schmidt values of that bond's unfolding; one SVD per bond, each no larger than the raw unfolding's: the
    /// floor any exact gauge has to pay. With <paramref name="bonds"/>, bond b keeps d'_b and the next unfolding is
    /// d'_b columns narrower. Each split keeps M·V·Vᵀ, an orthogonal projection on the side already split off, so
    /// the splits' errors are mutually orthogonal and ‖W − W̃‖² = Σ_b ε_b² with ε_b² = ‖M_b‖² − ‖M_b V_b‖² the
    /// weight split b discards (Oseledets 2011, Thm 2.2, with equality for the sweep's own ε_b).
    /// </summary>
    static SweepResult Sweep(Tensor rest, MpoFactorization factorization, IReadOnlyList<int>? bonds, SvdMethod svd)
    {
        int n = factorization.CoreCount;
        var cores = new Tensor[n];
        var spectra = new Tensor[n - 1];
        var discarded2 = new double[n - 1];
        var solvers = new SvdSolver[n - 1];
        bool complete = true;
        // One generator per sweep, drawn bond by bond in sweep order: the same seed gives the same sketches.
        using var generator = svd.Solver is SvdSolver.Exact ? null : new Generator(svd.Seed, rest.device);
        long right = 1;
        for (int k = n - 1; k >= 1; k--)
        {
            var m = rest.reshape(-1, factorization.Physical(k) * right);
            long s = Math.Min(m.shape[0], m.shape[1]);
            long keep = bonds is null ? s : Math.Min(s, bonds[k]);
            solvers[k - 1] = svd.SolverFor(m.shape[0], m.shape[1], keep);
            Tensor core;
            if (solvers[k - 1] == SvdSolver.Exact)
            {
                var (u, sv, vh) = linalg.svd(m, fullMatrices: false);
                if (keep < s) discarded2[k - 1] = sv.narrow(0, keep, s - keep).square().sum().item<double>();
                sv = sv.narrow(0, 0, keep);
                core = vh.narrow(0, 0, keep);
                rest = u.narrow(1, 0, keep) * sv.unsqueeze(0);
                spectra[k - 1] = sv;
            }
            else
            {
                var (basis, projected) = solvers[k - 1] == SvdSolver.Gram
                    ? PartialSvd.Gram(m, keep)
                    : PartialSvd.Randomized(m, keep, svd.Oversample, svd.PowerIterations, generator!);
                // The kept weight is ‖M·V‖² (V orthonormal); ‖M‖² is measured from M itself, not from any spectrum.
                discarded2[k - 1] = Math.Max(0, Squared(m) - Squared(projected));
                core = basis.t();
                rest = projected;
                complete = false;
            }
            cores[k] = core.reshape(-1, factorization.RowFactors[k], factorization.ColFactors[k], right);
            right = keep;
        }
        cores[0] = rest.reshape(1, factorization.RowFactors[0], factorization.ColFactors[0], right);
        return new SweepResult(cores, complete ? spectra : null, discarded2, solvers);
    }

    /// <summary>
    /// Brings arbitrary cores (e.g. after fine-tuning) into the symmetric canonical gauge, optionally truncating to
    /// <paramref name="bonds"/>. Truncation is sequential (right to left on left-orthonormal cores), so the error is
    /// at most √(Σ_b ε_b²) with ε_b the discarded Schmidt weight of the input at bond b, and exactly ε_b when one bond
    /// is cut (spec §3.6).
    /// </summary>
    public static MatrixProductOperator Canonicalize(IReadOnlyList<Tensor> cores, MpoFactorization factorization,
                                                     IReadOnlyList<int>? bonds = null, ScalarType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(cores);
        if (cores.Count != factorization.CoreCount)
            throw new ArgumentException($"expected {factorization.CoreCount} cores, got {cores.Count}", nameof(cores));
        for (int k = 0; k < cores.Count; k++)
        {
            var s = cores[k].shape;
            if (s.Length != 4 || s[1] != factorization.RowFactors[k] || s[2] != factorization.ColFactors[k]
                || (k == 0 && s[0] != 1) || (k == cores.Count - 1 && s[3] != 1) || (k > 0 && s[0] != cores[k - 1].shape[3]))
                throw new ArgumentException(
                    $"core {k} has shape [{string.Join(",", s)}], which does not chain for factorization {factorization}", nameof(cores));
        }
        if (bonds is not null) factorization.CheckBonds(bonds);
        var outType = dtype ?? cores[0].dtype;

        using var scope = NewDisposeScope();
        var work = cores.Select(c => c.detach().to(ScalarType.Float64)).ToArray();
        LeftOrthonormalize(work);
        MatrixProductOperator result;
        if (bonds is null)
            result = GaugeLeftOrthonormal(work, factorization, null, outType);
        else
        {
            // Truncating sweep, then one exact sweep pair so the stored spectra are the Schmidt values of the
            // truncated operator itself (later truncations, e.g. dimension squeezing, rely on them).
            var truncated = GaugeLeftOrthonormal(work, factorization, bonds, ScalarType.Float64);
            var again = truncated.Cores.ToArray();
            LeftOrthonormalize(again);
            result = GaugeLeftOrthonormal(again, factorization, null, outType);
        }
        return MoveOut(result);
    }

    static double Squared(Tensor m)
    {
        double norm = m.norm().item<double>();
        return norm * norm;
    }

    /// <summary>QR sweep left to right, in place: every core but the last becomes left-orthonormal.</summary>
    static void LeftOrthonormalize(Tensor[] cores)
    {
        for (int k = 0; k < cores.Length - 1; k++)
        {
            var s = cores[k].shape;
            var (q, r) = linalg.qr(cores[k].reshape(s[0] * s[1] * s[2], s[3]), linalg.QRMode.Reduced);
            cores[k] = q.reshape(s[0], s[1], s[2], q.shape[1]);
            var next = cores[k + 1].shape;
            cores[k + 1] = r.matmul(cores[k + 1].reshape(next[0], -1)).reshape(r.shape[0], next[1], next[2], next[3]);
        }
    }

    /// <summary>Keeps the result's cores alive past the caller's dispose scope (everything else made there goes).</summary>
    static MatrixProductOperator MoveOut(MatrixProductOperator mpo)
    {
        foreach (var c in mpo.Cores) c.MoveToOuterDisposeScope();
        return mpo;
    }

    /// <summary>
    /// Right-to-left SVD sweep over left-orthonormal cores (optionally keeping only d_b indices per bond), then the
    /// symmetric split: core k := diag(√λ_k) · B_k · diag(λ_{k+1}^{-1/2}) with B_k right-orthonormal.
    /// </summary>
    static MatrixProductOperator GaugeLeftOrthonormal(Tensor[] cores, MpoFactorization factorization, IReadOnlyList<int>? bonds, ScalarType outType)
    {
        int n = cores.Length;
        var spectra = new Tensor[n - 1];
        var work = cores.ToArray();
        for (int k = n - 1; k >= 1; k--)
        {
            var s = work[k].shape;
            var (u, sv, vh) = linalg.svd(work[k].reshape(s[0], s[1] * s[2] * s[3]), fullMatrices: false);
            long keep = bonds is null ? sv.shape[0] : Math.Min(sv.shape[0], bonds[k]);
            u = u.narrow(1, 0, keep);
            sv = sv.narrow(0, 0, keep);
            work[k] = vh.narrow(0, 0, keep).reshape(keep, s[1], s[2], s[3]);
            var prev = work[k - 1].shape;
            work[k - 1] = work[k - 1].reshape(-1, prev[3]).matmul(u * sv.unsqueeze(0)).reshape(prev[0], prev[1], prev[2], keep);
            spectra[k - 1] = sv;
        }
        return SymmetricSplit(work, spectra, factorization, outType);
    }

    /// <summary>
    /// The canonical gauge is unique only up to a ±1 per bond index (an SVD may return either sign of a singular
    /// vector pair, and which one depends on the LAPACK build and on the cores it started from). This fixes it, so that
    /// the central tensor of a matrix is the same tensor wherever and from whatever cores it was computed (an adapter
    /// trained against it records its hash): bond by bond, left to right, the largest-|x| entry of each index's slice
    /// of the left core, <c>core[b-1][..., m]</c>, is made positive (the first such entry in row-major order on a
    /// tie), flipping <c>core[b][m, ...]</c> with it. The numpy reference's rule (tools/reference). Indices whose slice
    /// is zero (numerically zero Schmidt values) keep +1; degenerate Schmidt values leave a rotation no sign can fix.
    /// </summary>
    static void FixSigns(Tensor[] cores)
    {
        for (int b = 1; b < cores.Length; b++)
        {
            var s = cores[b - 1].shape;
            var left = cores[b - 1].reshape(-1, s[3]);
            var largest = left.abs().argmax(0);   // the first maximal index, as torch documents
            var sign = left.gather(0, largest.unsqueeze(0)).squeeze(0).sign();
            sign = where(sign.eq(0), ones_like(sign), sign);
            cores[b - 1] = cores[b - 1] * sign.reshape(1, 1, 1, -1);
            cores[b] = cores[b] * sign.reshape(-1, 1, 1, 1);
        }
    }

    /// <summary>
    /// Given right-orthonormal cores 1..n-1 (core 0 carrying the weight) and the Schmidt values of every bond, gives
    /// each bond √λ on both sides: core k := diag(√λ_k) · B_k · diag(λ_{k+1}^{-1/2}).
    /// </summary>
    static MatrixProductOperator SymmetricSplit(Tensor[] work, Tensor[] spectra, MpoFactorization factorization, ScalarType outType)
    {
        int n = work.Length;
        // Symmetric gauge. λ at or below RelativeZero·λ_max gets a zero instead of λ^{-1/2}; its partner side has
        // √λ ≈ 0, so the pair contributes ≈ λ, as before, without huge entries in the cores.
        var sqrt = spectra.Select(l => l.sqrt()).ToArray();
        var invSqrt = spectra.Select(l =>
        {
            var floor = l.max() * RelativeZero;
            return torch.where(l > floor, l.rsqrt(), torch.zeros_like(l));
        }).ToArray();
        var result = new Tensor[n];
        for (int k = 0; k < n; k++)
        {
            var core = work[k];
            if (k > 0) core = core * sqrt[k - 1].reshape(-1, 1, 1, 1);
            if (k < n - 1) core = core * invSqrt[k].reshape(1, 1, 1, -1);
            result[k] = core;
        }
        FixSigns(result);
        for (int k = 0; k < n; k++) result[k] = result[k].to(outType).contiguous();
        var spectraValues = spectra.Select(l => l.cpu().data<double>().ToArray()).ToArray();
        return new MatrixProductOperator(factorization, result, spectraValues);
    }
}

/// <summary>
/// A decomposition truncated during its sweep: the MPO (symmetric canonical gauge, spectra of the truncated operator),
/// the bonds asked for, and what the cuts cost, measured by the sweep: ε_b per bond (index b-1) and the bound
/// √(Σ ε_b²) on ‖W − MPO‖_F (spec §3.6). Owns the MPO (dispose it, or let a layer adopt the cores).
/// </summary>
/// <param name="RequestedBonds">d_0..d_n asked for (the cores carry <see cref="MpoFactorization.Consistent"/> of them).</param>
/// <param name="FrobeniusNorm">‖W‖_F of the input, computed from the matrix.</param>
/// <param name="DiscardedWeight">ε_b: for bonds split exactly, the root-sum-of-squares of the discarded singular
/// values; for bonds split by a partial solver, √(‖M_b‖_F² − ‖M_b V_b‖_F²) of the matrix M_b the sweep split there;
/// 0 where nothing was cut.</param>
/// <param name="Solvers">The solver each bond b used (index b-1).</param>
public sealed record TruncatedDecomposition(MatrixProductOperator Mpo, int[] RequestedBonds, double FrobeniusNorm,
                                            double[] DiscardedWeight, SvdSolver[] Solvers) : IDisposable
{
    public double ErrorBound => Math.Sqrt(DiscardedWeight.Sum(e => e * e));
    public double RelativeBound => FrobeniusNorm > 0 ? ErrorBound / FrobeniusNorm : 0;
    public void Dispose() => Mpo.Dispose();
}
