using System.Collections.Generic;
using System.Linq;

namespace Mpo.Decomposition;

/// <summary>
/// What a truncation costs and saves (spec §3.6), in the terms of the paper: per-bond discarded weight ε_b, the bound
/// √(Σ ε_b²), the measured error, parameters (central / auxiliary), the compression ratio ρ and per-bond entropy.
/// <see cref="RequestedBonds"/> are the cuts asked for (ε_b and the bound come from them); <see cref="Bonds"/> are the
/// bonds the truncated cores carry (parameters come from them), smaller where a cut forces a neighbour down.
/// Plain data, serializable to JSON as is.
/// </summary>
public sealed record TruncationReport(
    int[] RowFactors,
    int[] ColFactors,
    int Rows,
    int Cols,
    int CentralIndex,
    int[] FullBonds,
    int[] RequestedBonds,
    int[] Bonds,
    long DenseParameters,
    long Parameters,
    long CentralParameters,
    long AuxiliaryParameters,
    double CompressionRatio,
    double FrobeniusNorm,
    double[] DiscardedWeight,
    double ErrorBound,
    double? ActualError,
    double[] Entropy,
    double[][] Spectra)
{
    /// <summary>Actual error relative to ‖W‖_F (null until measured).</summary>
    public double? RelativeError => ActualError is { } e && FrobeniusNorm > 0 ? e / FrobeniusNorm : null;
    public double RelativeBound => FrobeniusNorm > 0 ? ErrorBound / FrobeniusNorm : 0;

    /// <summary>Report for truncating <paramref name="source"/> (its spectra are the reference) with the requested
    /// <paramref name="bonds"/>.</summary>
    public static TruncationReport Create(MatrixProductOperator source, IReadOnlyList<int> bonds, double? actualError = null)
    {
        var f = source.Factorization;
        f.CheckBonds(bonds);
        var carried = f.Consistent(bonds);
        long parameters = f.ParameterCount(carried);
        long central = f.CentralParameterCount(carried);
        return new TruncationReport(
            f.RowFactors.ToArray(), f.ColFactors.ToArray(), f.Rows, f.Cols, f.CentralIndex,
            f.FullBonds(), bonds.ToArray(), carried,
            (long)f.Rows * f.Cols, parameters, central, parameters - central,
            f.CompressionRatio(carried), source.FrobeniusNorm,
            Truncation.DiscardedWeight(source.Spectra, bonds), Truncation.ErrorBound(source.Spectra, bonds), actualError,
            Truncation.Entropy(source.Spectra), source.Spectra.Select(s => s.ToArray()).ToArray());
    }
}
