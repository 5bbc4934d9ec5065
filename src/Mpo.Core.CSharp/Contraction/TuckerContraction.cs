using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Contraction;

/// <summary>
/// Using a Tucker decomposition of a matrix (core G [d_1, …, d_n], factors U_k [a_k = i_k·j_k, d_k] on the modes of
/// <see cref="Tensorization"/>) without forming W: W[i, j] = Σ_r G[r_1, …, r_n] Π_k U_k[(i_k, j_k), r_k].
/// Every step contracts one factor; the core enters once, which is where the d^n term of MPOP Table 2 comes from.
/// Device- and dtype-agnostic, differentiable.
/// </summary>
public static class TuckerContraction
{
    /// <summary>Rows <paramref name="indices"/> of W (embedding lookup): the core contracted, mode by mode, with
    /// U_k sliced at each index's row digit.</summary>
    /// <remarks>Layout: state [count, j_1⋯j_k, d_{k+1}⋯d_n].</remarks>
    public static Tensor Rows(Tensor indices, Tensor core, IReadOnlyList<Tensor> factors, MpoFactorization f)
    {
        var ranks = Check(core, factors, f);
        using var scope = NewDisposeScope();
        var flat = indices.reshape(-1).to(ScalarType.Int64);
        long count = flat.shape[0];
        var digits = MpoContraction.RowDigits(flat, f);
        Tensor Slice(int k) => factors[k].reshape(f.RowFactors[k], f.ColFactors[k], ranks[k]).index_select(0, digits[k]); // [count, j_k, d_k]
        int n = f.CoreCount;
        long rest = ranks.Skip(1).Aggregate(1L, (a, b) => a * b);
        // [count·j_1, d_1] · G [d_1, d_2⋯d_n]
        var state = Slice(0).reshape(count * f.ColFactors[0], ranks[0]).matmul(core.reshape(ranks[0], rest)).reshape(count, f.ColFactors[0], rest);
        long jq = f.ColFactors[0];
        for (int k = 1; k < n; k++)
        {
            long d = ranks[k], j = f.ColFactors[k];
            rest /= d;
            // [count, jq, d, rest] → [count, jq·rest, d] · [count, d, j] → [count, jq, rest, j] → [count, jq·j, rest]
            var s = state.reshape(count, jq, d, rest).permute(0, 1, 3, 2).reshape(count, jq * rest, d);
            state = s.bmm(Slice(k).transpose(1, 2)).reshape(count, jq, rest, j).permute(0, 1, 3, 2).reshape(count, jq * j, rest);
            jq *= j;
        }
        var rows = state.reshape(count, f.PaddedCols);
        if (f.Cols != f.PaddedCols) rows = rows.narrow(1, 0, f.Cols);
        return rows.reshape(indices.shape.Append((long)f.Cols).ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>y = x Wᵀ: the first factor consumes j_1 and brings in the core; every later factor consumes its
    /// column digit and its core index together and produces its row digit.</summary>
    /// <remarks>Layout: state [j_{k+1}⋯j_n, (tokens, i_1⋯i_k), d_{k+1}⋯d_n].</remarks>
    public static Tensor Linear(Tensor input, Tensor core, IReadOnlyList<Tensor> factors, MpoFactorization f)
    {
        var ranks = Check(core, factors, f);
        if (input.shape[^1] != f.Cols)
            throw new ArgumentException($"input has {input.shape[^1]} features, the Tucker decomposition expects {f.Cols}", nameof(input));
        using var scope = NewDisposeScope();
        var leading = input.shape[..^1];
        long tokens = leading.Aggregate(1L, (a, b) => a * b);
        var x = input.reshape(tokens, f.Cols);
        if (f.Cols != f.PaddedCols) x = nn.functional.pad(x, new long[] { 0, f.PaddedCols - f.Cols });
        int n = f.CoreCount;
        long j0 = f.ColFactors[0], i0 = f.RowFactors[0], d0 = ranks[0];
        long p = f.PaddedCols / j0, q = tokens * i0, rest = ranks.Skip(1).Aggregate(1L, (a, b) => a * b);
        // [p, T, j_1] · U_1 [j_1, i_1·d_1] → [p·T·i_1, d_1] · G [d_1, d_2⋯d_n] → [p, T·i_1, d_2⋯d_n]
        var u0 = factors[0].reshape(i0, j0, d0).permute(1, 0, 2).reshape(j0, i0 * d0);
        var state = x.reshape(tokens, j0, p).permute(2, 0, 1).reshape(p * tokens, j0).matmul(u0)
                     .reshape(p * q, d0).matmul(core.reshape(d0, rest));
        for (int k = 1; k < n; k++)
        {
            long j = f.ColFactors[k], i = f.RowFactors[k], d = ranks[k];
            p /= j;
            rest /= d;
            // [j, p, q, d, rest] → [p, q, rest, j, d] · U_k [j·d, i] → [p, q, rest, i] → [p, q·i, rest]
            var s = state.reshape(j, p, q, d, rest).permute(1, 2, 4, 0, 3).reshape(p * q * rest, j * d);
            var u = factors[k].reshape(i, j, d).permute(1, 2, 0).reshape(j * d, i);
            state = s.matmul(u).reshape(p, q, rest, i).permute(0, 1, 3, 2);
            q *= i;
        }
        var y = state.reshape(tokens, f.PaddedRows);
        if (f.Rows != f.PaddedRows) y = y.narrow(1, 0, f.Rows);
        return y.reshape(leading.Append((long)f.Rows).ToArray()).MoveToOuterDisposeScope();
    }

    static long[] Check(Tensor core, IReadOnlyList<Tensor> factors, MpoFactorization f)
    {
        ArgumentNullException.ThrowIfNull(core);
        ArgumentNullException.ThrowIfNull(factors);
        ArgumentNullException.ThrowIfNull(f);
        if (factors.Count != f.CoreCount || core.dim() != f.CoreCount)
            throw new ArgumentException($"expected {f.CoreCount} factor matrices and a {f.CoreCount}-way core for {f}, got {factors.Count} and a {core.dim()}-way core", nameof(factors));
        for (int k = 0; k < f.CoreCount; k++)
            if (factors[k].dim() != 2 || factors[k].shape[0] != f.Physical(k) || factors[k].shape[1] != core.shape[k])
                throw new ArgumentException(
                    $"factor {k} has shape [{string.Join(",", factors[k].shape)}], expected [{f.Physical(k)},{core.shape[k]}]", nameof(factors));
        return core.shape.ToArray();
    }
}
