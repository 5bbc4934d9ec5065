using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Decomposition;

/// <summary>
/// How a matrix W of <see cref="Rows"/> x <see cref="Cols"/> is split into n cores (MPOP Sec. 3, spec §2):
/// core k has shape [d_{k-1}, i_k, j_k, d_k] with row factors i_k and column factors j_k. Rows/columns may be fewer
/// than the factor products; the matrix is then zero-padded before decomposition and the padding sliced off after
/// reconstruction (BERT's 30522-word vocabulary is factored as 30720).
/// </summary>
/// <remarks>Pure value: no tensors. Row factors factor the stored first dimension (out_features of a Linear).</remarks>
public sealed record MpoFactorization
{
    public IReadOnlyList<int> RowFactors { get; }
    public IReadOnlyList<int> ColFactors { get; }
    /// <summary>Valid (unpadded) row count, ≤ product of row factors.</summary>
    public int Rows { get; }
    /// <summary>Valid (unpadded) column count, ≤ product of column factors.</summary>
    public int Cols { get; }

    public MpoFactorization(IReadOnlyList<int> rowFactors, IReadOnlyList<int> colFactors, int? rows = null, int? cols = null)
    {
        ArgumentNullException.ThrowIfNull(rowFactors);
        ArgumentNullException.ThrowIfNull(colFactors);
        if (rowFactors.Count != colFactors.Count)
            throw new ArgumentException(
                $"row factors [{string.Join(",", rowFactors)}] and column factors [{string.Join(",", colFactors)}] " +
                "must have the same length (one of each per core)", nameof(colFactors));
        if (rowFactors.Count < 2)
            throw new ArgumentException($"an MPO needs at least 2 cores, got {rowFactors.Count}", nameof(rowFactors));
        if (rowFactors.Any(f => f < 1))
            throw new ArgumentException($"row factors must be positive: [{string.Join(",", rowFactors)}]", nameof(rowFactors));
        if (colFactors.Any(f => f < 1))
            throw new ArgumentException($"column factors must be positive: [{string.Join(",", colFactors)}]", nameof(colFactors));
        RowFactors = rowFactors.ToArray();
        ColFactors = colFactors.ToArray();
        long rp = Product(RowFactors), cp = Product(ColFactors);
        if (rp > int.MaxValue || cp > int.MaxValue)
            throw new ArgumentException("factor products exceed the supported matrix size", nameof(rowFactors));
        Rows = rows ?? (int)rp;
        Cols = cols ?? (int)cp;
        if (Rows < 1 || Rows > rp)
            throw new ArgumentException(
                $"row factors [{string.Join(",", RowFactors)}] multiply to {rp}, which cannot hold {Rows} rows", nameof(rows));
        if (Cols < 1 || Cols > cp)
            throw new ArgumentException(
                $"column factors [{string.Join(",", ColFactors)}] multiply to {cp}, which cannot hold {Cols} columns", nameof(cols));
    }

    /// <summary>Exact factorization of a matrix shape: the products must equal the shape (no padding).</summary>
    public static MpoFactorization Exact(int rows, int cols, IReadOnlyList<int> rowFactors, IReadOnlyList<int> colFactors)
    {
        long rp = Product(rowFactors), cp = Product(colFactors);
        if (rp != rows)
            throw new ArgumentException(
                $"row factors [{string.Join(",", rowFactors)}] multiply to {rp}, not to the {rows} rows of the matrix", "rowFactors");
        if (cp != cols)
            throw new ArgumentException(
                $"column factors [{string.Join(",", colFactors)}] multiply to {cp}, not to the {cols} columns of the matrix", "colFactors");
        return new MpoFactorization(rowFactors, colFactors);
    }

    /// <summary>Number of cores n.</summary>
    public int CoreCount => RowFactors.Count;
    public int PaddedRows => (int)Product(RowFactors);
    public int PaddedCols => (int)Product(ColFactors);
    public bool IsPadded => Rows != PaddedRows || Cols != PaddedCols;

    /// <summary>Physical dimension a_k = i_k · j_k of core k.</summary>
    public int Physical(int k) => RowFactors[k] * ColFactors[k];

    /// <summary>Full (exact) bond dimensions d_0..d_n, d_k = min(a_1⋯a_k, a_{k+1}⋯a_n) (MPOP Eq. 2).</summary>
    public int[] FullBonds()
    {
        int n = CoreCount;
        var bonds = new int[n + 1];
        bonds[0] = bonds[n] = 1;
        for (int k = 1; k < n; k++)
        {
            long left = 1, right = 1;
            for (int m = 0; m < k; m++) left = Math.Min(left * Physical(m), long.MaxValue / 1024);
            for (int m = k; m < n; m++) right = Math.Min(right * Physical(m), long.MaxValue / 1024);
            bonds[k] = (int)Math.Min(left, right);
        }
        return bonds;
    }

    /// <summary>
    /// Index of the central tensor: the core holding the most parameters at full bonds (ties go to the middle).
    /// For the paper's five-core shapes this is core 2 (0-based), fixed for the life of the MPO.
    /// </summary>
    public int CentralIndex
    {
        get
        {
            var sizes = CoreSizes(FullBonds());
            double mid = (CoreCount - 1) / 2.0;
            return Enumerable.Range(0, CoreCount)
                .OrderByDescending(k => sizes[k]).ThenBy(k => Math.Abs(k - mid)).ThenBy(k => k).First();
        }
    }

    /// <summary>Shape [d_{k-1}, i_k, j_k, d_k] of core k under the given bonds.</summary>
    public long[] CoreShape(int k, IReadOnlyList<int> bonds) =>
        new long[] { bonds[k], RowFactors[k], ColFactors[k], bonds[k + 1] };

    /// <summary>Element count of every core under the given bonds.</summary>
    public long[] CoreSizes(IReadOnlyList<int> bonds)
    {
        CheckBonds(bonds);
        return Enumerable.Range(0, CoreCount).Select(k => (long)bonds[k] * Physical(k) * bonds[k + 1]).ToArray();
    }

    /// <summary>N_MPO = Σ_k d_{k-1} i_k j_k d_k (MPOP Eq. 5 numerator).</summary>
    public long ParameterCount(IReadOnlyList<int> bonds) => CoreSizes(bonds).Sum();

    /// <summary>Parameters of the central tensor under the given bonds.</summary>
    public long CentralParameterCount(IReadOnlyList<int> bonds) => CoreSizes(bonds)[CentralIndex];

    /// <summary>ρ = N_MPO / (rows·cols) of the valid matrix; ρ &gt; 1 means more parameters than dense.</summary>
    public double CompressionRatio(IReadOnlyList<int> bonds) => ParameterCount(bonds) / ((double)Rows * Cols);

    /// <summary>
    /// The largest bonds, no larger than <paramref name="bonds"/>, that cores can actually carry: a bond can never exceed
    /// what flows in from either side, d_k ≤ d_{k-1}·a_k and d_k ≤ a_{k+1}·d_{k+1}. (Cutting bond 1 to 2 limits bond 2 to
    /// 2·a_2, whatever was asked.)
    /// </summary>
    public int[] Consistent(IReadOnlyList<int> bonds)
    {
        CheckBonds(bonds);
        var d = bonds.ToArray();
        int n = CoreCount;
        for (int k = 1; k < n; k++) d[k] = (int)Math.Min(d[k], (long)d[k - 1] * Physical(k - 1));
        for (int k = n - 1; k >= 1; k--) d[k] = (int)Math.Min(d[k], (long)Physical(k) * d[k + 1]);
        return d;
    }

    /// <summary>Checks a bond vector against this factorization: n+1 entries, ends 1, 1 ≤ d_k ≤ full d_k.</summary>
    public void CheckBonds(IReadOnlyList<int> bonds, string argument = "bonds")
    {
        int n = CoreCount;
        if (bonds.Count != n + 1)
            throw new ArgumentException($"expected {n + 1} bond dimensions d_0..d_{n}, got {bonds.Count}", argument);
        if (bonds[0] != 1 || bonds[n] != 1)
            throw new ArgumentException($"boundary bonds d_0 and d_{n} must be 1, got {bonds[0]} and {bonds[n]}", argument);
        var full = FullBonds();
        for (int k = 1; k < n; k++)
            if (bonds[k] < 1 || bonds[k] > full[k])
                throw new ArgumentException(
                    $"bond {k} asks for dimension {bonds[k]}, but it must lie in 1..{full[k]} (full bond) " +
                    $"for factors [{string.Join(",", RowFactors)}] x [{string.Join(",", ColFactors)}]", argument);
    }

    public override string ToString() =>
        $"[{string.Join(",", RowFactors)}] x [{string.Join(",", ColFactors)}]" +
        (IsPadded ? $" (valid {Rows} x {Cols} of {PaddedRows} x {PaddedCols})" : "");

    public bool Equals(MpoFactorization? other) =>
        other is not null && RowFactors.SequenceEqual(other.RowFactors) && ColFactors.SequenceEqual(other.ColFactors)
        && Rows == other.Rows && Cols == other.Cols;

    public override int GetHashCode() =>
        HashCode.Combine(string.Join(",", RowFactors), string.Join(",", ColFactors), Rows, Cols);

    internal static long Product(IEnumerable<int> factors) => factors.Aggregate(1L, (a, f) => a * f);
}
