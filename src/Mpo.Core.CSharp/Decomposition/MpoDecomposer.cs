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
        var outType = dtype ?? matrix.dtype;

        using var scope = NewDisposeScope();
        var w = matrix.detach().to(ScalarType.Float64);
        if (!torch.isfinite(w).all().item<bool>())
            throw new ArgumentException("the matrix contains NaN or Inf entries", nameof(matrix));
        if (factorization.IsPadded)
            w = nn.functional.pad(w, new long[] { 0, factorization.PaddedCols - factorization.Cols, 0, factorization.PaddedRows - factorization.Rows });

        int n = factorization.CoreCount;
        var shape = factorization.RowFactors.Concat(factorization.ColFactors).Select(f => (long)f).ToArray();
        var interleave = Enumerable.Range(0, n).SelectMany(k => new long[] { k, n + k }).ToArray();
        var rest = w.reshape(shape).permute(interleave).contiguous();

        // TT-SVD from the right: each SVD splits off one core with orthonormal rows, and because everything to its
        // right is already orthonormal, its singular values are exactly the Schmidt values of that bond's unfolding.
        // One SVD per bond, each no larger than the raw unfolding's: the floor any exact gauge has to pay.
        var cores = new Tensor[n];
        var spectra = new Tensor[n - 1];
        long right = 1;
        for (int k = n - 1; k >= 1; k--)
        {
            var (u, sv, vh) = linalg.svd(rest.reshape(-1, factorization.Physical(k) * right), fullMatrices: false);
            cores[k] = vh.reshape(-1, factorization.RowFactors[k], factorization.ColFactors[k], right);
            spectra[k - 1] = sv;
            rest = u * sv.unsqueeze(0);
            right = sv.shape[0];
        }
        cores[0] = rest.reshape(1, factorization.RowFactors[0], factorization.ColFactors[0], right);

        return MoveOut(SymmetricSplit(cores, spectra, factorization, outType));
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
