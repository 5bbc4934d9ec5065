using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Decomposition;

/// <summary>How one bond of a truncating TT-SVD sweep finds the singular vectors it keeps.</summary>
public enum SvdSolver
{
    /// <summary>Per bond the cheapest of the three below (<see cref="SvdMethod.SolverFor"/>); the default.</summary>
    Auto,
    /// <summary>The reduced SVD of the whole unfolding, then the first d'_b triplets: what a full-bond sweep pays.</summary>
    Exact,
    /// <summary>The top d'_b eigenvectors of the Gram matrix of the unfolding's smaller side.</summary>
    Gram,
    /// <summary>Halko–Martinsson–Tropp randomized subspace iteration (Gaussian sketch, power iterations).</summary>
    Randomized,
}

/// <summary>
/// Singular-vector solver of a truncating decomposition (<see cref="MpoDecomposer.Decompose(Tensor, MpoFactorization,
/// TruncationSpec, SvdMethod?, ScalarType?)"/>). A bond whose kept dimension d'_b is known before its split (a
/// <see cref="TruncationSpec.MaxBond"/> or <see cref="TruncationSpec.PerBond"/> cut) need not compute the vectors, nor
/// the spectrum, of the indices it discards; a bond cut by <see cref="TruncationSpec.Tolerance"/> or
/// <see cref="TruncationSpec.Budget"/> is chosen from full spectra and always takes the exact path. Whatever the
/// solver, each split is an orthogonal projection of the unfolding's rows, so the discarded weight
/// ε_b² = ‖M_b‖_F² − ‖M_b V_b‖_F² is measured exactly from the matrix M_b being split and √(Σ ε_b²) stays the true
/// error of the sweep (spec §3.6), not an estimate.
/// </summary>
/// <param name="Solver">Exact, Gram or Randomized on every truncated bond, or Auto (per bond by cost).</param>
/// <param name="Oversample">p: sketch columns beyond d'_b (HMT §4.2: p = 5–10 makes the range finder's failure
/// probability negligible).</param>
/// <param name="PowerIterations">q: passes of (M Mᵀ) before the final basis, each re-orthonormalized by QR (HMT
/// Alg. 4.4); they sharpen a slowly decaying spectrum by σ^(2q+1).</param>
/// <param name="Seed">Seed of the Gaussian sketches, drawn bond by bond in sweep order: the same seed gives the same
/// cores.</param>
public sealed record SvdMethod(SvdSolver Solver = SvdSolver.Auto, int Oversample = 10, int PowerIterations = 2, ulong Seed = 20210603)
{
    public static SvdMethod Exact { get; } = new(SvdSolver.Exact);

    /// <summary>Throws for options no solver can use, naming the option.</summary>
    public void Check()
    {
        if (!Enum.IsDefined(Solver))
            throw new ArgumentOutOfRangeException("solver", Solver, "unknown SVD solver");
        if (Oversample < 0)
            throw new ArgumentOutOfRangeException("oversample", Oversample, "the randomized SVD's oversampling must be ≥ 0");
        if (PowerIterations < 0)
            throw new ArgumentOutOfRangeException("power-iterations", PowerIterations, "the randomized SVD's power iterations must be ≥ 0");
    }

    /// <summary>
    /// The solver for splitting a <paramref name="rows"/>×<paramref name="cols"/> unfolding keeping
    /// <paramref name="keep"/> of its s = min(rows, cols) indices. A bond that keeps them all is exact (it discards
    /// nothing, and a sweep without cuts must give the full decomposition's cores). Randomized needs d'_b + p &lt; s
    /// (a sketch as wide as the matrix is a full basis, no cheaper than the SVD).
    /// <para>Auto keeps the exact path when d'_b ≥ s/2: the partial solvers' savings shrink as d'_b nears s (Gram
    /// still decomposes all of its s×s matrix) and the exact SVD's vectors are the accurate ones. Below that it counts
    /// multiply-adds, the only term that grows with both sides: Gram ≈ r·c·(s + 2d'_b) (form the s×s Gram matrix, then
    /// M·V), randomized ≈ r·c·(d'_b + p)·(2q + 2) (sketch, q pairs of power passes, the final M·Q); eigh's s³ and the
    /// QRs' (r + c)·(d'_b + p)² are lower order for the unfoldings of a 5-core MPO. Gram wins when one side is small
    /// compared with the kept rank times the passes; randomized when both sides dwarf it.</para>
    /// </summary>
    public SvdSolver SolverFor(long rows, long cols, long keep)
    {
        long s = Math.Min(rows, cols);
        bool sketchFits = keep + Oversample < s;
        if (keep >= s) return SvdSolver.Exact;
        switch (Solver)
        {
            case SvdSolver.Exact: return SvdSolver.Exact;
            case SvdSolver.Gram: return SvdSolver.Gram;
            case SvdSolver.Randomized: return sketchFits ? SvdSolver.Randomized : SvdSolver.Exact;
        }
        if (2 * keep >= s) return SvdSolver.Exact;
        double gram = s + 2.0 * keep;
        double randomized = (keep + Oversample) * (2.0 * PowerIterations + 2);
        return sketchFits && randomized < gram ? SvdSolver.Randomized : SvdSolver.Gram;
    }
}

/// <summary>
/// Partial SVDs for the truncating sweep: an orthonormal basis V [cols, d'] of the leading right singular subspace of
/// M [rows, cols], and M·V. Keeping M·V·Vᵀ is an orthogonal projection on the unfolding's right side, the side the
/// sweep has already split off, which is what makes the per-bond errors orthogonal (spec §3.6).
/// </summary>
static class PartialSvd
{
    /// <summary>Top-<paramref name="keep"/> eigenvectors of the smaller Gram matrix. Squaring the spectrum loses
    /// directions below ~1e-8·σ_1 in float64: those are the ones a cut discards, and the bound is measured, not read
    /// off these eigenvalues.</summary>
    public static (Tensor Basis, Tensor Projected) Gram(Tensor m, long keep)
    {
        long rows = m.shape[0], cols = m.shape[1];
        Tensor v;
        if (cols <= rows)
        {
            var (_, vectors) = linalg.eigh(m.t().matmul(m));   // ascending eigenvalues
            v = vectors.narrow(1, cols - keep, keep).flip(1);
        }
        else
        {
            var (_, vectors) = linalg.eigh(m.matmul(m.t()));
            var u = vectors.narrow(1, rows - keep, keep).flip(1);
            // The rows Uᵀ M span the same right subspace; QR makes it an exactly orthonormal basis.
            v = linalg.qr(m.t().matmul(u), linalg.QRMode.Reduced).Q;
        }
        return (v, m.matmul(v));
    }

    /// <summary>HMT Algorithm 4.4 (randomized subspace iteration) on Mᵀ, whose range is M's row space, then the best
    /// <paramref name="keep"/>-dimensional subspace of the sketched one from the small SVD of M·Q (HMT Algorithm 5.1).</summary>
    public static (Tensor Basis, Tensor Projected) Randomized(Tensor m, long keep, int oversample, int powerIterations, Generator generator)
    {
        long width = keep + oversample;
        var omega = randn(new[] { m.shape[0], width }, dtype: m.dtype, device: m.device, generator: generator);
        var q = Orthonormal(m.t().matmul(omega));
        for (int i = 0; i < powerIterations; i++)
            q = Orthonormal(m.t().matmul(Orthonormal(m.matmul(q))));
        var projected = m.matmul(q);
        var (_, _, wh) = linalg.svd(projected, fullMatrices: false);
        var rotation = wh.narrow(0, 0, keep).t();
        return (q.matmul(rotation), projected.matmul(rotation));
    }

    static Tensor Orthonormal(Tensor y) => linalg.qr(y, linalg.QRMode.Reduced).Q;
}
