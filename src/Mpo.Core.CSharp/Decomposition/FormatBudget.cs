using System;
using System.Linq;

namespace Mpo.Decomposition;

/// <summary>
/// Each way of splitting a matrix at matched parameters (MPOP Fig. 2a, Table 2): the configuration of a format that
/// stores the most parameters within a budget. Pure arithmetic on shapes; CP and Tucker use the MPO's modes
/// a_k = i_k·j_k (<see cref="Tensorization"/>).
/// </summary>
public static class FormatBudget
{
    /// <summary>Truncated SVD W ≈ U_r Σ_r V_rᵀ: the largest rank r with r·(rows + cols) ≤ budget (at most min(rows, cols)).</summary>
    public static int SvdRank(int rows, int cols, long budget) =>
        (int)Math.Max(0, Math.Min(Math.Min(rows, cols), budget / ((long)rows + cols)));

    /// <summary>The SVD as a two-core MPO, factors [rows, 1] × [1, cols]: its one bond is the SVD's rank (the MPO
    /// n = 2 row of MPOP Table 2).</summary>
    public static MpoFactorization SvdFactorization(int rows, int cols) => new(new[] { rows, 1 }, new[] { 1, cols });

    /// <summary>MPO bonds from one uniform cap (the papers' truncate_num): the largest cap whose consistent bonds fit
    /// the budget; null when even cap 1 does not.</summary>
    public static int[]? MpoBonds(MpoFactorization f, long budget)
    {
        var full = f.FullBonds();
        int[]? best = null;
        for (int cap = 1; cap <= full.Max(); cap++)
        {
            var bonds = f.Consistent(full.Select(d => Math.Min(d, cap)).ToArray());
            if (f.ParameterCount(bonds) > budget) break;
            best = bonds;
            if (bonds.SequenceEqual(full)) break;
        }
        return best;
    }

    /// <summary>CP: the largest rank R with R·Σ a_k ≤ budget (0 when none fits).</summary>
    public static int CpRank(MpoFactorization f, long budget) =>
        (int)Math.Min(int.MaxValue, budget / CpDecomposition.ParameterCount(Tensorization.Modes(f), 1));

    /// <summary>Tucker with one rank cap for every mode (d_k = min(cap, a_k)): the largest cap within the budget;
    /// null when even rank 1 does not fit.</summary>
    public static int[]? TuckerRanks(MpoFactorization f, long budget)
    {
        var modes = Tensorization.Modes(f);
        int[]? best = null;
        for (int cap = 1; cap <= modes.Max(); cap++)
        {
            var ranks = TuckerDecomposition.UniformRanks(modes, cap);
            if (TuckerDecomposition.ParameterCount(modes, ranks) > budget) break;
            best = ranks;
        }
        return best;
    }
}
