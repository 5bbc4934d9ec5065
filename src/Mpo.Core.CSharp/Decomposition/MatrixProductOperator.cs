using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Decomposition;

/// <summary>
/// An MPO in the symmetric canonical gauge (spec §3.3): cores T(k)[d_{k-1}, i_k, j_k, d_k] whose bond indices are
/// ordered Schmidt indices, each bond carrying √λ on both sides, plus the Schmidt (singular) values λ_b of every bond.
/// Immutable: truncation returns a new MPO. Owns its core tensors (dispose it, or let a layer adopt the cores).
/// </summary>
public sealed class MatrixProductOperator : IDisposable
{
    public MpoFactorization Factorization { get; }
    /// <summary>Cores in order; the central one is at <see cref="MpoFactorization.CentralIndex"/>.</summary>
    public IReadOnlyList<Tensor> Cores { get; }
    /// <summary>Bond dimensions d_0..d_n.</summary>
    public IReadOnlyList<int> Bonds { get; }
    /// <summary>Schmidt values of bonds 1..n-1 (index b-1), descending, length d_b; equal to the singular values of the
    /// bond-b unfolding of the matrix these cores represent.</summary>
    public IReadOnlyList<double[]> Spectra { get; }

    internal MatrixProductOperator(MpoFactorization factorization, Tensor[] cores, double[][] spectra)
    {
        Factorization = factorization;
        Cores = cores;
        Spectra = spectra;
        Bonds = new[] { 1 }.Concat(spectra.Select(s => s.Length)).Append(1).ToArray();
        factorization.CheckBonds(Bonds);
    }

    public int CentralIndex => Factorization.CentralIndex;
    public Tensor Central => Cores[CentralIndex];
    /// <summary>The auxiliary tensors: every core but the central one, in core order.</summary>
    public IEnumerable<Tensor> Auxiliary => Cores.Where((_, k) => k != CentralIndex);
    public long ParameterCount => Factorization.ParameterCount(Bonds);
    /// <summary>‖W‖_F, read off the spectrum of any bond (all bonds carry the same total weight).</summary>
    public double FrobeniusNorm => Math.Sqrt(Spectra.Count == 0 ? 0 : Spectra[0].Sum(l => l * l));

    /// <summary>The dense matrix [Rows, Cols] these cores represent (padding sliced off).</summary>
    public Tensor Reconstruct() => Contraction.MpoContraction.Reconstruct(Cores, Factorization);

    /// <summary>Truncates bonds as <paramref name="spec"/> asks (see <see cref="Truncation"/>) and re-gauges.</summary>
    public MatrixProductOperator Truncate(TruncationSpec spec) =>
        Truncate(Truncation.Plan(Factorization, Spectra, spec));

    /// <summary>
    /// Truncates to the requested bonds d_0..d_n (each ≤ the current bond) and re-gauges. Only the requested cuts
    /// discard anything: a bond that a cut elsewhere forces down (see <see cref="MpoFactorization.Consistent"/>) has
    /// that rank in the cut operator already, so the result carries <c>Consistent(bonds)</c> at no extra error, and
    /// the bound is that of the requested bonds (<see cref="Truncation.ErrorBound"/>).
    /// </summary>
    public MatrixProductOperator Truncate(IReadOnlyList<int> bonds)
    {
        Factorization.CheckBonds(bonds);
        for (int b = 1; b < Bonds.Count - 1; b++)
            if (bonds[b] > Bonds[b])
                throw new ArgumentException($"bond {b} asks for {bonds[b]} but this MPO only has {Bonds[b]}", nameof(bonds));
        return MpoDecomposer.Canonicalize(Cores, Factorization, bonds, Cores[0].dtype);
    }

    /// <summary>
    /// Truncates as <paramref name="spec"/> asks and measures what it cost: the one way every caller truncates and
    /// reports (a sweep of settings, a whole model, the command line, a layer squeezed in place).
    /// </summary>
    /// <param name="reference">The matrix the error is measured against (e.g. the original dense weight, so the
    /// decomposition's round-off counts too); default this MPO's own reconstruction.</param>
    public MeasuredTruncation TruncateMeasured(TruncationSpec spec, Tensor? reference = null)
    {
        var bonds = Truncation.Plan(Factorization, Spectra, spec);
        var truncated = Truncate(bonds);
        Tensor matrix;
        double error;
        using (var scope = NewDisposeScope())
        {
            matrix = truncated.Reconstruct();
            var against = reference ?? Reconstruct();
            error = (matrix.to(ScalarType.Float64) - against.to(ScalarType.Float64)).norm().item<double>();
            matrix.MoveToOuterDisposeScope();
        }
        return new MeasuredTruncation(truncated, matrix, TruncationReport.Create(this, bonds, error));
    }

    public void Dispose()
    {
        foreach (var c in Cores) c.Dispose();
    }
}

/// <summary>A truncated MPO, the dense matrix it represents, and its report with the error measured; owns both
/// tensors' lifetimes (dispose it, or take what you keep).</summary>
public sealed record MeasuredTruncation(MatrixProductOperator Mpo, Tensor Matrix, TruncationReport Report) : IDisposable
{
    public void Dispose()
    {
        Mpo.Dispose();
        Matrix.Dispose();
    }
}
