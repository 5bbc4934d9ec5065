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
                double allowed = t.Relative * t.Relative * total * (1 + 1e-12);
                return Optimal(factorization, spectra, allowed, long.MaxValue).FirstOrDefault(p => p.Error2 <= allowed)?.Bonds
                       ?? throw new InvalidOperationException("no truncation meets the tolerance, not even none");
            case TruncationSpec.Budget b:
                long floor = factorization.ParameterCount(Enumerable.Range(0, n + 1).Select(_ => 1).ToArray());
                if (b.Parameters < floor)
                    throw new ArgumentOutOfRangeException("budget", b.Parameters,
                        $"impossible budget: even all bonds at 1 need {floor} parameters for factorization {factorization}");
                return Optimal(factorization, spectra, double.PositiveInfinity, b.Parameters).Last(p => p.Parameters <= b.Parameters).Bonds;
            default:
                throw new ArgumentException($"unknown truncation {spec}", nameof(spec));
        }
    }

    /// <summary>
    /// The bonds <paramref name="spec"/> asks for without any spectrum, from the full bonds alone: what a cap or
    /// explicit bonds give a matrix of this factorization whatever its values (counting parameters from a
    /// configuration). Tolerance and budget depend on the singular values and are refused.
    /// </summary>
    public static int[] PlanShape(MpoFactorization factorization, TruncationSpec spec)
    {
        if (spec is TruncationSpec.Tolerance or TruncationSpec.Budget)
            throw new ArgumentException(
                $"truncation {spec} depends on the weights' singular values; without weights only max_bond and bonds can be planned", nameof(spec));
        var full = factorization.FullBonds();
        var flat = full.Skip(1).Take(full.Length - 2).Select(d => new double[d]).ToArray();
        return Plan(factorization, flat, spec);
    }

    /// <summary>One truncation on the trade-off curve: requested bonds, the parameters of the cores they leave, the
    /// bound squared.</summary>
    sealed record Choice(int[] Bonds, long Parameters, double Error2);

    /// <summary>
    /// Every truncation on the Pareto front of (parameters, bound²), fewest parameters first (the bound falling along
    /// it), among those with bound² ≤ <paramref name="maxError2"/> and parameters ≤ <paramref name="maxParameters"/>:
    /// exact, so the first within a tolerance has the fewest parameters and the last within a budget the smallest
    /// bound (a greedy removal of one bond index at a time is not: it can stop where another order goes on).
    /// <para>What makes it a chain: only requested cuts discard weight, and a bond a cut forces down costs nothing
    /// (<see cref="MatrixProductOperator.Truncate(IReadOnlyList{int})"/>). So every truncation is a set of "active"
    /// bonds with values (each charged its ε_b²) and "passive" bonds left at their current size, which carry what
    /// their nearest active neighbours (or the ends) let through: c_j = min(d_j, c_L·a_L⋯a_{j-1}, a_j⋯a_{R-1}·c_R).
    /// Parameters of the cores between two consecutive active bonds depend on those two values only, so a dynamic
    /// programme over (active bond, value) with a Pareto front per state finds all optimal trade-offs.</para>
    /// </summary>
    static List<Choice> Optimal(MpoFactorization f, IReadOnlyList<double[]> spectra, double maxError2, long maxParameters)
    {
        int n = f.CoreCount;
        var current = new int[n + 1];
        current[0] = current[n] = 1;
        for (int b = 1; b < n; b++) current[b] = spectra[b - 1].Length;
        // tail[b][d]: bound² contribution of keeping d indices of bond b
        var tail = new double[n + 1][];
        tail[0] = new double[2];
        tail[n] = new double[2];
        for (int b = 1; b < n; b++)
        {
            tail[b] = new double[current[b] + 1];
            for (int d = current[b] - 1; d >= 0; d--) tail[b][d] = tail[b][d + 1] + spectra[b - 1][d] * spectra[b - 1][d];
        }
        long cap = current.Max();
        long Through(int lo, int hi)   // a_lo ⋯ a_{hi-1}, saturated (only compared with bonds)
        {
            long product = 1;
            for (int m = lo; m < hi && product <= cap; m++) product *= f.Physical(m);
            return Math.Min(product, cap + 1);
        }

        // front[b][v]: (parameters of cores 0..b-1, bound² of bonds 1..b, back-pointer) with bond b active at value v
        var front = new List<Point>?[n + 1][];
        for (int b = 0; b <= n; b++) front[b] = new List<Point>?[current[b] + 1];
        front[0][1] = new List<Point> { new(0, 0, -1, 0, -1) };
        var carried = new long[n + 1];
        for (int right = 1; right <= n; right++)
        {
            for (int vr = 1; vr <= current[right]; vr++)
            {
                var candidates = new List<Point>();
                double charged = right < n ? tail[right][vr] : 0;
                if (charged > maxError2) continue;
                for (int left = right - 1; left >= 0; left--)
                {
                    long through = Through(left, right);
                    for (int vl = 1; vl <= current[left]; vl++)
                    {
                        if (front[left][vl] is not { Count: > 0 } points) continue;
                        // both ends really are what the cores carry (neither forces the other lower)
                        if (vr > vl * through || vl > vr * through) continue;
                        carried[left] = vl;
                        carried[right] = vr;
                        for (int j = left + 1; j < right; j++)
                            carried[j] = Math.Min(current[j], Math.Min(vl * Through(left, j), vr * Through(j, right)));
                        long cost = 0;
                        for (int k = left; k < right; k++) cost += carried[k] * f.Physical(k) * carried[k + 1];
                        for (int i = 0; i < points.Count; i++)
                        {
                            var p = points[i];
                            long parameters = p.Parameters + cost;
                            double error2 = p.Error2 + charged;
                            if (parameters > maxParameters || error2 > maxError2) continue;
                            candidates.Add(new Point(parameters, error2, left, vl, i));
                        }
                    }
                }
                if (candidates.Count > 0) front[right][vr] = ParetoFront(candidates);
            }
        }

        var result = new List<Choice>();
        foreach (var end in front[n][1] ?? new List<Point>())
        {
            var bonds = current.ToArray();   // passive bonds ask for their current size
            for (var point = end; point.FromBond >= 0; point = front[point.FromBond][point.FromValue]![point.FromIndex])
                bonds[point.FromBond] = point.FromValue;
            result.Add(new Choice(bonds, end.Parameters, end.Error2));
        }
        return result;
    }

    readonly record struct Point(long Parameters, double Error2, int FromBond, int FromValue, int FromIndex);

    /// <summary>The points no other beats on both counts, by parameters ascending (bound² then strictly falling).</summary>
    static List<Point> ParetoFront(List<Point> points)
    {
        points.Sort((x, y) => x.Parameters != y.Parameters ? x.Parameters.CompareTo(y.Parameters) : x.Error2.CompareTo(y.Error2));
        var kept = new List<Point>();
        double best = double.PositiveInfinity;
        foreach (var p in points)
            if (p.Error2 < best)
            {
                kept.Add(p);
                best = p.Error2;
            }
        return kept;
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
