using System;
using System.Collections.Generic;
using Mpo.Decomposition;

namespace Mpo.Experts;

/// <summary>
/// Parameter counts of MoE layers from shapes alone (MPOE §3.1, spec §5.4), per FFN matrix of T = rows·cols
/// parameters replaced by n experts. Dense experts (Switch/MoE): n·T. MPO experts: one shared central tensor plus n
/// sets of auxiliary tensors, C + n·A, which is (γ + n)/(γ + 1)·T at full bonds when the MPO holds about T (γ = C/A).
/// A router per layer: d·n + n (with bias). Biases, when the FFN has them, are per expert. Pure arithmetic; a model's
/// total is its base count plus <see cref="AddedByDenseExperts"/> / <see cref="AddedByMpoExperts"/> per FFN matrix
/// plus one router per layer.
/// </summary>
public static class ExpertParameterCounts
{
    /// <summary>n dense copies of a [rows, cols] matrix (and its bias).</summary>
    public static long DenseExperts(long rows, long cols, int experts, bool bias = false)
    {
        Check(rows, cols, experts);
        return experts * (rows * cols + (bias ? rows : 0));
    }

    /// <summary>n MPO experts sharing one central tensor: C + n·(A + bias) with the factorization's core sizes at
    /// <paramref name="bonds"/> (the full bonds when null).</summary>
    public static long MpoExperts(MpoFactorization factorization, int experts, IReadOnlyList<int>? bonds = null, bool bias = false)
    {
        ArgumentNullException.ThrowIfNull(factorization);
        Check(factorization.Rows, factorization.Cols, experts);
        var (central, auxiliary) = Split(factorization, bonds);
        return central + experts * (auxiliary + (bias ? factorization.Rows : 0));
    }

    /// <summary>What replacing one dense [rows, cols] matrix (and its bias) by n dense experts adds: (n − 1)·(T + bias).</summary>
    public static long AddedByDenseExperts(long rows, long cols, int experts, bool bias = false) =>
        DenseExperts(rows, cols, experts, bias) - DenseExperts(rows, cols, 1, bias);

    /// <summary>What replacing one dense matrix (and its bias) by n MPO experts adds: C + n·(A + bias) − (T + bias).
    /// For T5-base's FFN at full bonds C = T = 2,359,296 and A = 184,720, so each matrix adds n·A.</summary>
    public static long AddedByMpoExperts(MpoFactorization factorization, int experts, IReadOnlyList<int>? bonds = null, bool bias = false) =>
        MpoExperts(factorization, experts, bonds, bias) - ((long)factorization.Rows * factorization.Cols + (bias ? factorization.Rows : 0));

    /// <summary>A router Linear(d, n): d·n weights and n biases.</summary>
    public static long Router(long features, int experts, bool bias = true)
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "features must be positive");
        if (experts < 1) throw new ArgumentOutOfRangeException(nameof(experts), experts, "at least one expert");
        return features * experts + (bias ? experts : 0);
    }

    /// <summary>(central, auxiliary) parameters of one MPO at <paramref name="bonds"/> (full when null).</summary>
    public static (long Central, long Auxiliary) Split(MpoFactorization factorization, IReadOnlyList<int>? bonds = null)
    {
        ArgumentNullException.ThrowIfNull(factorization);
        var b = bonds ?? factorization.FullBonds();
        long central = factorization.CentralParameterCount(b);
        return (central, factorization.ParameterCount(b) - central);
    }

    static void Check(long rows, long cols, int experts)
    {
        if (rows < 1 || cols < 1) throw new ArgumentOutOfRangeException(nameof(rows), $"matrix [{rows}, {cols}] must have positive sides");
        if (experts < 1) throw new ArgumentOutOfRangeException(nameof(experts), experts, "at least one expert");
    }
}
