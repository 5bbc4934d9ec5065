using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Decomposition;

/// <summary>
/// A matrix as the n-way tensor every tensor format here decomposes (spec §3.1): W [I, J], zero-padded to the
/// factorization's padded size, reshaped row-major to (i_1, …, i_n, j_1, …, j_n) and interleaved to
/// (i_1, j_1, …, i_n, j_n); mode k merges (i_k, j_k) into one index of size a_k = i_k·j_k (i_k major).
/// <para>
/// The MPO's cores split this very tensor; CP and Tucker see the same modes, so their parameter counts and errors
/// compare with the MPO's at equal n (MPOP Fig. 2a, Table 2 treat CP and Tucker as the other ways to split the same
/// n local indices).
/// </para>
/// </summary>
public static class Tensorization
{
    /// <summary>Modes a_1..a_n of the tensor (padded sizes).</summary>
    public static long[] Modes(MpoFactorization f) => Enumerable.Range(0, f.CoreCount).Select(k => (long)f.Physical(k)).ToArray();

    /// <summary>W [Rows, Cols] → X [a_1, …, a_n], contiguous, in W's dtype and device.</summary>
    public static Tensor ToTensor(Tensor matrix, MpoFactorization f)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(f);
        if (matrix.dim() != 2 || matrix.shape[0] != f.Rows || matrix.shape[1] != f.Cols)
            throw new ArgumentException(
                $"matrix of shape [{string.Join(",", matrix.shape)}] does not match factorization {f} (expects {f.Rows} x {f.Cols})",
                nameof(matrix));
        using var scope = NewDisposeScope();
        var w = matrix;
        if (f.IsPadded)
            w = nn.functional.pad(w, new long[] { 0, f.PaddedCols - f.Cols, 0, f.PaddedRows - f.Rows });
        int n = f.CoreCount;
        var shape = f.RowFactors.Concat(f.ColFactors).Select(x => (long)x).ToArray();
        var interleave = Enumerable.Range(0, n).SelectMany(k => new long[] { k, n + k }).ToArray();
        return w.reshape(shape).permute(interleave).reshape(Modes(f)).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>X [a_1, …, a_n] → W [Rows, Cols]: the inverse of <see cref="ToTensor"/>, padding sliced off.</summary>
    public static Tensor ToMatrix(Tensor tensor, MpoFactorization f)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentNullException.ThrowIfNull(f);
        var modes = Modes(f);
        if (!tensor.shape.SequenceEqual(modes))
            throw new ArgumentException(
                $"tensor of shape [{string.Join(",", tensor.shape)}] does not match factorization {f} (expects modes [{string.Join(",", modes)}])",
                nameof(tensor));
        using var scope = NewDisposeScope();
        int n = f.CoreCount;
        var shape = Enumerable.Range(0, n).SelectMany(k => new long[] { f.RowFactors[k], f.ColFactors[k] }).ToArray();
        var perm = Enumerable.Range(0, n).Select(k => (long)(2 * k)).Concat(Enumerable.Range(0, n).Select(k => (long)(2 * k + 1))).ToArray();
        var w = tensor.reshape(shape).permute(perm).reshape(f.PaddedRows, f.PaddedCols);
        if (f.IsPadded) w = w.narrow(0, 0, f.Rows).narrow(1, 0, f.Cols);
        return w.contiguous().MoveToOuterDisposeScope();
    }
}
