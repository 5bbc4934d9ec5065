using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Decomposition;

/// <summary>How to choose truncated bond dimensions ("dimension squeezing" picks them one unit at a time; these are
/// the one-shot rules).</summary>
public abstract record TruncationSpec
{
    private TruncationSpec() { }

    /// <summary>Cap every bond at <paramref name="Bond"/>: d'_k = min(D, d_k), the papers' <c>truncate_num</c>.</summary>
    public sealed record MaxBond(int Bond) : TruncationSpec;
    /// <summary>Explicit bonds d_1..d_{n-1} (inner bonds only); each must not exceed the current bond.</summary>
    public sealed record PerBond(IReadOnlyList<int> Bonds) : TruncationSpec
    {
        public override string ToString() => $"PerBond {{ Bonds = [{string.Join(",", Bonds)}] }}";
    }
    /// <summary>Fewest parameters whose error bound √(Σ ε_k²) stays within <paramref name="Relative"/>·‖W‖_F.</summary>
    public sealed record Tolerance(double Relative) : TruncationSpec;
    /// <summary>Smallest error bound with at most <paramref name="Parameters"/> MPO parameters.</summary>
    public sealed record Budget(long Parameters) : TruncationSpec;
}

/// <summary>
/// Truncation planning and reporting: pure functions of the factorization and the per-bond Schmidt values
/// (spec §3.4, §3.6). Nothing here touches a tensor.
/// </summary>
public static class Truncation
{
    /// <summary>
    /// Bonds d_0..d_n that <paramref name="spec"/> asks for, given the current spectra (bond b at index b-1). These are
    /// the bonds to truncate with (<see cref="MatrixProductOperator.Truncate(IReadOnlyList{int})"/>) and to bound the
    /// error by; the truncated cores carry <see cref="MpoFactorization.Consistent"/> of them, which may be smaller.
    /// </summary>
    public static int[] Plan(MpoFactorization factorization, IReadOnlyList<double[]> spectra, TruncationSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int n = factorization.CoreCount;
        if (spectra.Count != n - 1)
            throw new ArgumentException($"expected spectra for {n - 1} bonds, got {spectra.Count}", nameof(spectra));
        var current = new[] { 1 }.Concat(spectra.Select(s => s.Length)).Append(1).ToArray();
        switch (spec)
        {
            case TruncationSpec.MaxBond m:
                if (m.Bond < 1)
                    throw new ArgumentOutOfRangeException("max-bond", m.Bond, "the bond cap must be at least 1");
                return current.Select((d, k) => k == 0 || k == n ? 1 : Math.Min(d, m.Bond)).ToArray();
            case TruncationSpec.PerBond p:
                if (p.Bonds.Count != n - 1)
                    throw new ArgumentException(
                        $"per-bond truncation needs {n - 1} inner bonds d_1..d_{n - 1}, got {p.Bonds.Count}", "bonds");
                for (int b = 1; b < n; b++)
                    if (p.Bonds[b - 1] < 1 || p.Bonds[b - 1] > current[b])
                        throw new ArgumentOutOfRangeException("bonds", p.Bonds[b - 1],
                            $"bond {b} asks for dimension {p.Bonds[b - 1]}, which is impossible: it must lie in 1..{current[b]}");
                return new[] { 1 }.Concat(p.Bonds).Append(1).ToArray();
            case TruncationSpec.Tolerance t:
                if (!(t.Relative >= 0) || double.IsInfinity(t.Relative))
                    throw new ArgumentOutOfRangeException("tolerance", t.Relative, "the relative tolerance must be a finite number ≥ 0");
                double total = spectra.Count == 0 ? 0 : spectra[0].Sum(l => l * l);
                double allowed = t.Relative * t.Relative * total;
                return Greedy(factorization, spectra, current, (bonds, err2) => err2 <= allowed * (1 + 1e-12), stopWhenFalse: true);
            case TruncationSpec.Budget b:
                long floor = factorization.ParameterCount(Enumerable.Range(0, n + 1).Select(_ => 1).ToArray());
                if (b.Parameters < floor)
                    throw new ArgumentOutOfRangeException("budget", b.Parameters,
                        $"impossible budget: even all bonds at 1 need {floor} parameters for factorization {factorization}");
                return Greedy(factorization, spectra, current, (bonds, _) => factorization.ParameterCount(bonds) > b.Parameters, stopWhenFalse: false);
            default:
                throw new ArgumentException($"unknown truncation {spec}", nameof(spec));
        }
    }

    /// <summary>
    /// Removes one bond index at a time, always the one that adds the least squared error per parameter saved
    /// (bond indices go in Schmidt order, so a bond's next loss is its smallest kept λ²).
    /// Tolerance mode stops before a step would break the tolerance; budget mode goes on while over budget.
    /// Bonds are kept consistent after every step, and the error is always the bound of the bonds as they are.
    /// </summary>
    static int[] Greedy(MpoFactorization f, IReadOnlyList<double[]> spectra, int[] start,
                        Func<int[], double, bool> condition, bool stopWhenFalse)
    {
        var bonds = f.Consistent(start);
        int n = f.CoreCount;
        double Err2(int[] d) { double e = ErrorBound(spectra, d); return e * e; }
        double err2 = Err2(bonds);
        while (true)
        {
            if (!stopWhenFalse && !condition(bonds, err2)) return bonds;
            long parameters = f.ParameterCount(bonds);
            int[]? best = null;
            double bestCost = double.PositiveInfinity, bestErr2 = 0;
            for (int b = 1; b < n; b++)
            {
                if (bonds[b] <= 1) continue;
                var candidate = bonds.ToArray();
                candidate[b]--;
                candidate = f.Consistent(candidate);
                long saved = parameters - f.ParameterCount(candidate);
                double e2 = Err2(candidate);
                double cost = saved > 0 ? (e2 - err2) / saved : double.PositiveInfinity;
                if (best is null || cost < bestCost) { best = candidate; bestCost = cost; bestErr2 = e2; }
            }
            if (best is null) return bonds;
            if (stopWhenFalse && !condition(best, bestErr2)) return bonds;
            bonds = best;
            err2 = bestErr2;
        }
    }

    /// <summary>ε_b = √(Σ_{i ≥ d'_b} λ_{b,i}²): the Schmidt weight bond b loses (MPOP Eq. 3, as root-sum-of-squares).</summary>
    public static double[] DiscardedWeight(IReadOnlyList<double[]> spectra, IReadOnlyList<int> bonds) =>
        spectra.Select((s, i) => Math.Sqrt(s.Skip(bonds[i + 1]).Sum(l => l * l))).ToArray();

    /// <summary>‖W − MPO(W)‖_F ≤ √(Σ_b ε_b²) (MPOP Eq. 4, appendix Theorem 1).</summary>
    public static double ErrorBound(IReadOnlyList<double[]> spectra, IReadOnlyList<int> bonds) =>
        Math.Sqrt(DiscardedWeight(spectra, bonds).Sum(e => e * e));

    /// <summary>
    /// Entanglement entropy of each bond, S_b = −Σ_j p_j ln p_j with p_j = λ_j² / Σ λ² (MPOP Eq. 6). The paper leaves
    /// open whether the normalized λ or λ² are the probabilities; λ² is the physics convention and makes
    /// Σ p = 1, so S_b ≤ ln d_b with equality for a flat spectrum.
    /// </summary>
    public static double[] Entropy(IReadOnlyList<double[]> spectra) =>
        spectra.Select(s =>
        {
            double total = s.Sum(l => l * l);
            if (total <= 0) return 0.0;
            return -s.Select(l => l * l / total).Where(p => p > 0).Sum(p => p * Math.Log(p));
        }).ToArray();
}
