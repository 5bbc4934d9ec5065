using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Contraction;

/// <summary>
/// Using a CP of a matrix (factors A_k [a_k = i_k·j_k, R] and weights λ on the modes of <see cref="Tensorization"/>)
/// without forming W: W[i, j] = Σ_r λ_r Π_k A_k[(i_k, j_k), r]. A CP is an MPO whose bonds are diagonal, so every
/// step here is the MPO step with the bond index shared instead of contracted: cost ∝ R where the MPO pays d².
/// Device- and dtype-agnostic, differentiable.
/// </summary>
public static class CpContraction
{
    /// <summary>Rows <paramref name="indices"/> of W (embedding lookup): per index, the Kronecker product over the
    /// cores of A_k sliced at the row digit, summed over r with λ.</summary>
    public static Tensor Rows(Tensor indices, IReadOnlyList<Tensor> factors, Tensor weights, MpoFactorization f)
    {
        Check(factors, weights, f);
        using var scope = NewDisposeScope();
        var flat = indices.reshape(-1).to(ScalarType.Int64);
        long count = flat.shape[0], rank = weights.shape[0];
        var digits = MpoContraction.RowDigits(flat, f);
        Tensor Slice(int k) => factors[k].reshape(f.RowFactors[k], f.ColFactors[k], rank).index_select(0, digits[k]); // [count, j_k, R]
        var state = Slice(0);
        for (int k = 1; k < f.CoreCount; k++)
            state = (state.unsqueeze(2) * Slice(k).unsqueeze(1)).reshape(count, -1, rank);
        var rows = state.matmul(weights);
        if (f.Cols != f.PaddedCols) rows = rows.narrow(1, 0, f.Cols);
        return rows.reshape(indices.shape.Append((long)f.Cols).ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>y = x Wᵀ: the input's column digits are consumed one core at a time, the rank index r carried along
    /// as a batch index and summed with λ at the end.</summary>
    /// <remarks>Layout: state [R, j_{k+1}⋯j_n, (tokens, i_1⋯i_k)], so each step is one transpose and one batched
    /// GEMM with A_k viewed as [R, j_k, i_k].</remarks>
    public static Tensor Linear(Tensor input, IReadOnlyList<Tensor> factors, Tensor weights, MpoFactorization f)
    {
        Check(factors, weights, f);
        if (input.shape[^1] != f.Cols)
            throw new ArgumentException($"input has {input.shape[^1]} features, the CP expects {f.Cols}", nameof(input));
        using var scope = NewDisposeScope();
        var leading = input.shape[..^1];
        long tokens = leading.Aggregate(1L, (a, b) => a * b), rank = weights.shape[0];
        var x = input.reshape(tokens, f.Cols);
        if (f.Cols != f.PaddedCols) x = nn.functional.pad(x, new long[] { 0, f.PaddedCols - f.Cols });
        int n = f.CoreCount;
        long p = f.PaddedCols, q = tokens;
        // First core: [p', T, j_1] · A_1 [j_1, i_1·R] → [R, p', T·i_1]
        long j0 = f.ColFactors[0], i0 = f.RowFactors[0];
        p /= j0;
        var a0 = factors[0].reshape(i0, j0, rank).permute(1, 0, 2).reshape(j0, i0 * rank);
        var state = x.reshape(tokens, j0, p).permute(2, 0, 1).reshape(p * tokens, j0).matmul(a0)
                     .reshape(p, tokens, i0, rank).permute(3, 0, 1, 2);
        q *= i0;
        for (int k = 1; k < n; k++)
        {
            long j = f.ColFactors[k], i = f.RowFactors[k];
            p /= j;
            // [R, j, p·q] → [R, p·q, j] · A_k [R, j, i] → [R, p·q, i] = [R, p, q·i]
            var s = state.reshape(rank, j, p * q).transpose(1, 2);
            var a = factors[k].reshape(i, j, rank).permute(2, 1, 0);
            state = s.bmm(a);
            q *= i;
        }
        var y = weights.matmul(state.reshape(rank, tokens * f.PaddedRows)).reshape(tokens, f.PaddedRows);
        if (f.Rows != f.PaddedRows) y = y.narrow(1, 0, f.Rows);
        return y.reshape(leading.Append((long)f.Rows).ToArray()).MoveToOuterDisposeScope();
    }

    static void Check(IReadOnlyList<Tensor> factors, Tensor weights, MpoFactorization f)
    {
        ArgumentNullException.ThrowIfNull(factors);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(f);
        if (factors.Count != f.CoreCount)
            throw new ArgumentException($"expected {f.CoreCount} factor matrices for {f}, got {factors.Count}", nameof(factors));
        for (int k = 0; k < f.CoreCount; k++)
            if (factors[k].dim() != 2 || factors[k].shape[0] != f.Physical(k) || factors[k].shape[1] != weights.shape[0])
                throw new ArgumentException(
                    $"factor {k} has shape [{string.Join(",", factors[k].shape)}], expected [{f.Physical(k)},{weights.shape[0]}]", nameof(factors));
    }
}
