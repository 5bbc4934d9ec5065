using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Decomposition;

/// <summary>
/// Proposes row and column factors for a matrix (spec §3.7). The papers factor each dimension "by convenience":
/// small factors at the ends, the largest in the middle, so that the central tensor holds most parameters
/// (768 → [3,4,4,4,4], 3072 → [4,4,8,6,4], 4096 → [4,4,8,8,4], 30000 → [5,10,10,10,6]). This reproduces them with
/// one rule:
/// <list type="number">
/// <item>factors are 5-smooth numbers (2^a·3^b·5^c) no larger than max(16, 2·⌈D^(1/n)⌉);</item>
/// <item>among the factorizations of D into n such factors take the one with the smallest largest factor, then the
/// largest smallest factor (the most balanced);</item>
/// <item>place them centre-out: the largest at the centre, the next to its right, the next to its left, and so on;</item>
/// <item>a dimension with no such factorization (30522 = 2·3·5087) is zero-padded to the next size that has one
/// (30720, as in MPOP's BERT embedding);</item>
/// <item>for a square matrix the column factors are the mirror of the row factors, so the physical dimensions are
/// symmetric and the bonds balanced (MPOP appendix: 768×768 as [3,4,4,4,4]×[4,4,4,4,3]).</item>
/// </list>
/// </summary>
public static class FactorizationChooser
{
    /// <summary>Default number of cores (MPOP Fig. 2b: n = 5 trades error against size best).</summary>
    public const int DefaultCores = 5;

    /// <summary>Factors for a whole matrix; pads rows/columns where a dimension factors badly.</summary>
    public static MpoFactorization Choose(int rows, int cols, int cores = DefaultCores)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "rows must be positive");
        if (cols < 1) throw new ArgumentOutOfRangeException(nameof(cols), cols, "columns must be positive");
        if (cores < 2) throw new ArgumentOutOfRangeException(nameof(cores), cores, "an MPO needs at least 2 cores");
        var rowFactors = Factor(rows, cores);
        var colFactors = rows == cols ? rowFactors.Reverse().ToArray() : Factor(cols, cores);
        return new MpoFactorization(rowFactors, colFactors, rows, cols);
    }

    /// <summary>Centre-out factors of the smallest padded size ≥ <paramref name="dimension"/> that factors well.</summary>
    public static int[] Factor(int dimension, int cores = DefaultCores)
    {
        if (dimension < 1) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "dimension must be positive");
        if (cores < 2) throw new ArgumentOutOfRangeException(nameof(cores), cores, "an MPO needs at least 2 cores");
        int maxFactor = Math.Max(16, 2 * (int)Math.Ceiling(Math.Pow(dimension, 1.0 / cores) - 1e-9));
        var allowed = SmoothNumbers(maxFactor);
        for (long padded = dimension; padded <= 2L * dimension + 16; padded++)
        {
            var best = MostBalanced(padded, cores, allowed);
            if (best is not null) return CentreOut(best);
        }
        // Unreachable in practice: some power of two in [D, 2D] always factors into n factors of at most maxFactor.
        throw new ArgumentException($"cannot factor {dimension} into {cores} factors", nameof(dimension));
    }

    /// <summary>Padded size that <see cref="Factor"/> settles on.</summary>
    public static int PaddedSize(int dimension, int cores = DefaultCores) =>
        (int)MpoFactorization.Product(Factor(dimension, cores));

    static int[] SmoothNumbers(int max) =>
        Enumerable.Range(1, max).Where(f => { int g = f; foreach (int p in new[] { 2, 3, 5 }) while (g % p == 0) g /= p; return g == 1; })
                  .ToArray();

    /// <summary>Factorization of <paramref name="value"/> into exactly <paramref name="count"/> allowed factors,
    /// minimizing the largest factor, then maximizing the smallest; null when none exists.</summary>
    static int[]? MostBalanced(long value, int count, int[] allowed)
    {
        int[]? best = null;
        var current = new int[count];

        // Depth-first over non-increasing factor sequences, so each multiset is visited once.
        void Search(long rest, int position, int maxAllowed)
        {
            if (position == count)
            {
                if (rest != 1) return;
                var candidate = current.ToArray();
                if (best is null || Better(candidate, best)) best = candidate;
                return;
            }
            int remaining = count - position;
            foreach (int f in allowed.Reverse())
            {
                if (f > maxAllowed || rest % f != 0) continue;
                // the remaining factors are ≤ f, so they can multiply to at most f^remaining
                if (Math.Pow(f, remaining) < rest - 0.5) break;
                if (best is not null && position == 0 && f > best[0]) continue;
                current[position] = f;
                Search(rest / f, position + 1, f);
            }
        }

        Search(value, 0, allowed[^1]);
        return best;
    }

    static bool Better(int[] a, int[] b)
    {
        // sequences are sorted non-increasing: a[0] is the largest factor, a[^1] the smallest
        if (a[0] != b[0]) return a[0] < b[0];
        if (a[^1] != b[^1]) return a[^1] > b[^1];
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return a[i] < b[i];
        return false;
    }

    /// <summary>Largest at the centre, then alternately right and left of it: [4,4,8,6,4] for {8,6,4,4,4}.</summary>
    static int[] CentreOut(int[] descending)
    {
        int n = descending.Length;
        var placed = new int[n];
        int centre = (n - 1) / 2;
        var order = new List<int> { centre };
        for (int step = 1; order.Count < n; step++)
        {
            if (centre + step < n) order.Add(centre + step);
            if (centre - step >= 0 && order.Count < n) order.Add(centre - step);
        }
        for (int i = 0; i < n; i++) placed[order[i]] = descending[i];
        return placed;
    }
}
