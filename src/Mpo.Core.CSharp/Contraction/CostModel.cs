using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;

namespace Mpo.Contraction;

/// <summary>How an MPO layer computes y = x Wᵀ.</summary>
public enum ContractionPath
{
    /// <summary>Pick per call from the cost model.</summary>
    Auto,
    /// <summary>Rebuild W from the cores, then one dense GEMM (what the papers' code does every forward).</summary>
    Reconstruct,
    /// <summary>Contract the input with one core at a time, never forming W.</summary>
    Factorized,
}

/// <summary>Estimated work of one path: multiply-accumulates, elements copied by reshapes, and the largest
/// intermediate (elements) that must be live — the last drives peak memory (activations saved for backward).</summary>
public readonly record struct PathCost(ContractionPath Path, double Macs, double CopiedElements, double PeakElements, double SavedElements)
{
    /// <summary>A single figure to compare paths by: MACs plus copies weighted by <see cref="CostModel.CopyWeight"/>.</summary>
    public double Effective => Macs + CostModel.CopyWeight * CopiedElements + CostModel.CallOverheadMacs * Calls;
    internal int Calls { get; init; }
    /// <summary>For the factorized path: sweep the cores last to first (cheaper for some factor orders).</summary>
    public bool Reverse { get; init; }
}

/// <summary>
/// Cost of the two contraction paths for a given token count (spec §3.1 of peers.md), training step (forward and
/// backward) or inference. Pure arithmetic on the shapes.
/// </summary>
public static class CostModel
{
    /// <summary>One copied element costs about this many multiply-accumulates (memory-bound permutes versus
    /// compute-bound GEMMs). Fitted to the crossover sweep of bench/ (`mpo-bench crossover`, BERT FFN 3072×768,
    /// bonds 4…full, 1…4096 tokens, 2-core EPYC): it minimizes the worst auto/best time ratio over that grid.</summary>
    public const double CopyWeight = 100.0;

    /// <summary>Fixed cost of one kernel call expressed in MACs (small GEMMs run far below peak); same fit.</summary>
    public const double CallOverheadMacs = 200_000;

    /// <summary>Cost of the factorized path for <paramref name="tokens"/> input rows, in the cheaper sweep direction.</summary>
    public static PathCost Factorized(MpoFactorization f, IReadOnlyList<int> bonds, long tokens, bool training)
    {
        var forward = Sweep(f.RowFactors, f.ColFactors, bonds, tokens, training);
        var backward = Sweep(f.RowFactors.Reverse().ToArray(), f.ColFactors.Reverse().ToArray(), bonds.Reverse().ToArray(), tokens, training);
        // reading backwards costs two more reorderings (input digits in, output digits out)
        double extra = (training ? 2 : 1) * tokens * ((double)f.PaddedRows + f.PaddedCols);
        backward = backward with { CopiedElements = backward.CopiedElements + extra, Reverse = true, Calls = backward.Calls + 2 };
        return backward.Effective < forward.Effective ? backward : forward;
    }

    /// <summary>Cost of the factorized path sweeping the cores first to last (pass reversed factors and bonds for the
    /// other direction, without the extra reorderings).</summary>
    public static PathCost Sweep(IReadOnlyList<int> rowFactors, IReadOnlyList<int> colFactors, IReadOnlyList<int> bonds, long tokens, bool training)
    {
        var f = new MpoFactorization(rowFactors, colFactors);
        int n = f.CoreCount;
        double macs = 0, copied = 0, peak = 0, saved = 0;
        double q = tokens, p = f.PaddedCols;
        copied += tokens * (double)f.PaddedCols; // initial reordering of the input
        for (int k = 0; k < n; k++)
        {
            double j = f.ColFactors[k], i = f.RowFactors[k], d = bonds[k], dNext = bonds[k + 1];
            p /= j;
            double stateIn = p * j * q * d;
            double stateOut = p * q * i * dNext;
            macs += p * q * d * j * i * dNext;
            copied += stateIn;
            peak = Math.Max(peak, stateIn + stateOut);
            saved += stateIn;
            q *= i;
        }
        int calls = 2 * n;
        if (training) { macs *= 3; copied *= 2; calls *= 3; }
        return new PathCost(ContractionPath.Factorized, macs, copied, peak, training ? saved : 0) { Calls = calls };
    }

    /// <summary>Cost of rebuilding W and multiplying (the rebuild is paid once per call, whatever the token count).</summary>
    public static PathCost Reconstruct(MpoFactorization f, IReadOnlyList<int> bonds, long tokens, bool training)
    {
        int n = f.CoreCount;
        double macs = 0, chain = f.Physical(0), peak = 0;
        for (int k = 1; k < n; k++)
        {
            // [a_1⋯a_k, d_k] · [d_k, a_{k+1} d_{k+1}]
            macs += chain * bonds[k] * f.Physical(k) * bonds[k + 1];
            chain *= f.Physical(k);
            peak = Math.Max(peak, chain * bonds[k + 1]);
        }
        double weight = (double)f.PaddedRows * f.PaddedCols;
        double copied = weight; // the final permute
        double gemm = (double)tokens * f.Rows * f.Cols;
        macs += gemm;
        peak = Math.Max(peak, weight + (double)tokens * f.Rows);
        int calls = n + 2;
        if (training) { macs *= 3; copied *= 2; calls *= 3; }
        return new PathCost(ContractionPath.Reconstruct, macs, copied, peak, training ? weight : 0) { Calls = calls };
    }

    /// <summary>Cost of producing <paramref name="count"/> distinct rows of W without forming it (embedding lookup):
    /// per row, the chain [j_1⋯j_{k-1}, d_{k-1}] · [d_{k-1}, j_k d_k] with the core sliced at the row's digit (an upper
    /// bound: rows sharing leading digits share the chain's first steps), and each step gathers the parent states.</summary>
    public static PathCost Rows(MpoFactorization f, IReadOnlyList<int> bonds, long count, bool training)
    {
        double perRow = 0, width = 1, peak = 0, gathered = 0;
        for (int k = 0; k < f.CoreCount; k++)
        {
            perRow += width * bonds[k] * f.ColFactors[k] * bonds[k + 1];
            gathered += width * bonds[k];
            width *= f.ColFactors[k];
            peak = Math.Max(peak, width * bonds[k + 1]);
        }
        double macs = perRow * count, copied = count * gathered;
        // one GEMM per digit value per core
        int calls = f.RowFactors.Sum() + f.CoreCount;
        if (training) { macs *= 3; copied *= 2; calls *= 3; }
        return new PathCost(ContractionPath.Factorized, macs, copied, peak * count, training ? peak * count : 0) { Calls = calls };
    }

    // MPOP Table 2's other rows, for inference, each as its contraction in Contraction/ computes it. A CP of rank R
    // ("Tucker (d = 1)") is an MPO whose bonds are diagonal: its steps pay R where the MPO's pay d_{k-1}·d_k. A Tucker
    // core of ranks d_k is contracted once, the d^n term.

    /// <summary>Cost of <see cref="CpContraction.Rows"/>: <paramref name="count"/> rows of a rank-R CP.</summary>
    public static PathCost CpRows(MpoFactorization f, int rank, long count)
    {
        double width = f.ColFactors[0], macs = 0, copied = (double)count * rank * f.ColFactors[0];
        for (int k = 1; k < f.CoreCount; k++)
        {
            width *= f.ColFactors[k];
            macs += count * width * rank;              // Kronecker step, one product per entry and r
            copied += (double)count * rank * f.ColFactors[k];
        }
        macs += (double)count * f.PaddedCols * rank;   // Σ_r λ_r
        return new PathCost(ContractionPath.Factorized, macs, copied, (double)count * f.PaddedCols * rank, 0) { Calls = 2 * f.CoreCount + 1 };
    }

    /// <summary>Cost of <see cref="CpContraction.Linear"/>: y = x Wᵀ for <paramref name="tokens"/> rows.</summary>
    public static PathCost CpLinear(MpoFactorization f, int rank, long tokens)
    {
        double p = f.PaddedCols, q = tokens, macs = 0, copied = tokens * (double)f.PaddedCols, peak = 0;
        for (int k = 0; k < f.CoreCount; k++)
        {
            double j = f.ColFactors[k], i = f.RowFactors[k];
            p /= j;
            double stateIn = (k == 0 ? 1 : rank) * p * j * q, stateOut = rank * p * q * i;
            macs += rank * p * q * j * i;
            copied += stateIn;
            peak = Math.Max(peak, stateIn + stateOut);
            q *= i;
        }
        macs += rank * (double)tokens * f.PaddedRows;  // Σ_r λ_r
        return new PathCost(ContractionPath.Factorized, macs, copied, peak, 0) { Calls = 2 * f.CoreCount + 1 };
    }

    /// <summary>Cost of <see cref="TuckerContraction.Rows"/>: <paramref name="count"/> rows of a Tucker decomposition
    /// with core ranks d_1..d_n.</summary>
    public static PathCost TuckerRows(MpoFactorization f, IReadOnlyList<int> ranks, long count)
    {
        double rest = ranks.Aggregate(1.0, (a, d) => a * d);
        double jq = f.ColFactors[0];
        double macs = count * jq * rest, copied = count * jq * (double)ranks[0];
        rest /= ranks[0];                              // state [count, j_1, d_2⋯d_n]
        double peak = count * jq * rest;
        for (int k = 1; k < f.CoreCount; k++)
        {
            rest /= ranks[k];
            macs += count * jq * rest * ranks[k] * f.ColFactors[k];
            copied += count * jq * rest * ranks[k] + count * (double)f.ColFactors[k] * ranks[k];
            jq *= f.ColFactors[k];
            peak = Math.Max(peak, count * jq * rest);
        }
        return new PathCost(ContractionPath.Factorized, macs, copied, peak, 0) { Calls = 3 * f.CoreCount };
    }

    /// <summary>Cost of <see cref="TuckerContraction.Linear"/>: y = x Wᵀ for <paramref name="tokens"/> rows.</summary>
    public static PathCost TuckerLinear(MpoFactorization f, IReadOnlyList<int> ranks, long tokens)
    {
        double j0 = f.ColFactors[0], i0 = f.RowFactors[0], d0 = ranks[0];
        double p = f.PaddedCols / j0, q = tokens * i0, rest = ranks.Skip(1).Aggregate(1.0, (a, d) => a * d);
        double macs = p * tokens * j0 * i0 * d0 + p * q * d0 * rest;   // first factor, then the core
        double copied = tokens * (double)f.PaddedCols, peak = p * q * Math.Max(d0, rest);
        for (int k = 1; k < f.CoreCount; k++)
        {
            double j = f.ColFactors[k], i = f.RowFactors[k], d = ranks[k];
            p /= j;
            rest /= d;
            double stateIn = p * q * rest * j * d, stateOut = p * q * rest * i;
            macs += p * q * rest * j * d * i;
            copied += stateIn;
            peak = Math.Max(peak, stateIn + stateOut);
            q *= i;
        }
        return new PathCost(ContractionPath.Factorized, macs, copied, peak, 0) { Calls = 3 * f.CoreCount };
    }

    /// <summary>Cost of a plain dense Linear of the same size (the baseline).</summary>
    public static PathCost Dense(MpoFactorization f, long tokens, bool training)
    {
        double macs = (double)tokens * f.Rows * f.Cols * (training ? 3 : 1);
        return new PathCost(ContractionPath.Reconstruct, macs, 0, (double)f.Rows * f.Cols, 0) { Calls = training ? 3 : 1 };
    }

    /// <summary>The cheaper of the two paths by <see cref="PathCost.Effective"/>.</summary>
    public static ContractionPath Choose(MpoFactorization f, IReadOnlyList<int> bonds, long tokens, bool training)
    {
        var factorized = Factorized(f, bonds, tokens, training);
        var reconstruct = Reconstruct(f, bonds, tokens, training);
        return factorized.Effective < reconstruct.Effective ? ContractionPath.Factorized : ContractionPath.Reconstruct;
    }
}
