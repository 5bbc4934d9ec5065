using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;

namespace Mpo.Contraction;

/// <summary>One row of MPOP Table 2 for a given matrix and parameter budget: a format in the configuration that
/// fits the budget (<see cref="FormatBudget"/>) and what using it costs per call (<see cref="CostModel"/>).</summary>
/// <param name="Method">"dense", "svd", "mpo", "cp" or "tucker".</param>
/// <param name="Factorization">The factors of the format's modes (dense and SVD: [I, 1] × [1, J]).</param>
/// <param name="Ranks">SVD and MPO: bonds d_0..d_n (the SVD's are [1, r, 1]); CP: [R]; Tucker: d_1..d_n; dense: empty.</param>
/// <param name="Lookup">Cost of <c>lookupTokens</c> rows of W (embedding lookup).</param>
/// <param name="Linear">Cost of y = x Wᵀ for <c>linearTokens</c> rows of x (W as a tied output head or a layer).</param>
public sealed record FormatCost(
    string Method,
    int Cores,
    MpoFactorization Factorization,
    int[] Ranks,
    long Parameters,
    double CompressionRatio,
    PathCost Lookup,
    PathCost Linear);

/// <summary>MPOP Table 2 (inference cost per method) as counts for a concrete matrix, every format at matched
/// parameters. Pure arithmetic on shapes.</summary>
public static class FormatCosts
{
    /// <summary>Dense, truncated SVD (the n = 2 MPO with factors [I]×[J]), then MPO, CP and Tucker for each core
    /// count (factors from <see cref="FactorizationChooser"/>), each in its largest configuration within
    /// <paramref name="budget"/>; a format with no configuration that small is left out.</summary>
    public static IReadOnlyList<FormatCost> AtBudget(int rows, int cols, long budget, IReadOnlyList<int> mpoCores,
                                                     IReadOnlyList<int> tensorCores, long lookupTokens, long linearTokens)
    {
        if (budget < 1) throw new ArgumentOutOfRangeException(nameof(budget), budget, "the parameter budget must be positive");
        double dense = (double)rows * cols;
        var result = new List<FormatCost>();
        result.Add(new FormatCost("dense", 1, FormatBudget.SvdFactorization(rows, cols), Array.Empty<int>(), rows * (long)cols, 1.0,
            new PathCost(ContractionPath.Reconstruct, 0, lookupTokens * (double)cols, lookupTokens * (double)cols, 0) { Calls = 1 },
            new PathCost(ContractionPath.Reconstruct, linearTokens * dense, 0, linearTokens * (double)rows, 0) { Calls = 1 }));

        int r = FormatBudget.SvdRank(rows, cols, budget);
        if (r >= 1)
        {
            var svd = FormatBudget.SvdFactorization(rows, cols);
            var bonds = new[] { 1, r, 1 };
            result.Add(new FormatCost("svd", 2, svd, bonds, svd.ParameterCount(bonds), svd.CompressionRatio(bonds),
                CostModel.Rows(svd, bonds, lookupTokens, false), CostModel.Factorized(svd, bonds, linearTokens, false)));
        }
        foreach (int n in mpoCores)
        {
            var f = FactorizationChooser.Choose(rows, cols, n);
            if (FormatBudget.MpoBonds(f, budget) is { } bonds)
                result.Add(new FormatCost("mpo", n, f, bonds, f.ParameterCount(bonds), f.CompressionRatio(bonds),
                    CostModel.Rows(f, bonds, lookupTokens, false), CostModel.Factorized(f, bonds, linearTokens, false)));
        }
        foreach (int n in tensorCores)
        {
            var f = FactorizationChooser.Choose(rows, cols, n);
            var modes = Tensorization.Modes(f);
            int rank = FormatBudget.CpRank(f, budget);
            if (rank >= 1)
            {
                long p = CpDecomposition.ParameterCount(modes, rank);
                result.Add(new FormatCost("cp", n, f, new[] { rank }, p, p / dense,
                    CostModel.CpRows(f, rank, lookupTokens), CostModel.CpLinear(f, rank, linearTokens)));
            }
        }
        foreach (int n in tensorCores)
        {
            var f = FactorizationChooser.Choose(rows, cols, n);
            var modes = Tensorization.Modes(f);
            if (FormatBudget.TuckerRanks(f, budget) is { } ranks)
            {
                long p = TuckerDecomposition.ParameterCount(modes, ranks);
                result.Add(new FormatCost("tucker", n, f, ranks, p, p / dense,
                    CostModel.TuckerRows(f, ranks, lookupTokens), CostModel.TuckerLinear(f, ranks, linearTokens)));
            }
        }
        return result;
    }
}
