using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Contraction;

/// <summary>
/// The ways to use an MPO (spec §3.5, §3.1 of peers.md): rebuild the dense matrix, or contract an input with the cores
/// one at a time. All differentiable (autograd flows into the cores), device- and dtype-agnostic.
/// </summary>
public static class MpoContraction
{
    /// <summary>W = T(1)·T(2)⋯T(n) as a [Rows, Cols] matrix; zero padding sliced off.</summary>
    public static Tensor Reconstruct(IReadOnlyList<Tensor> cores, MpoFactorization f)
    {
        int n = f.CoreCount;
        using var scope = NewDisposeScope();
        // Chain the cores on their bonds: [a_1, d_1] · [d_1, a_2 d_2] → [a_1 a_2, d_2] …
        var t = cores[0].reshape(-1, cores[0].shape[3]);
        for (int k = 1; k < n; k++)
            t = t.matmul(cores[k].reshape(cores[k].shape[0], -1)).reshape(-1, cores[k].shape[3]);
        // (i_1, j_1, …, i_n, j_n) → (i_1 … i_n, j_1 … j_n)
        var shape = Enumerable.Range(0, n).SelectMany(k => new long[] { f.RowFactors[k], f.ColFactors[k] }).ToArray();
        var perm = Enumerable.Range(0, n).Select(k => (long)(2 * k)).Concat(Enumerable.Range(0, n).Select(k => (long)(2 * k + 1))).ToArray();
        var w = t.reshape(shape).permute(perm).reshape(f.PaddedRows, f.PaddedCols);
        if (f.IsPadded) w = w.narrow(0, 0, f.Rows).narrow(1, 0, f.Cols);
        return w.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>y = x Wᵀ (+ b) with W rebuilt first: one dense GEMM, cost independent of the bonds once W exists.</summary>
    public static Tensor LinearReconstructed(Tensor input, IReadOnlyList<Tensor> cores, MpoFactorization f, Tensor? bias = null)
    {
        using var scope = NewDisposeScope();
        var w = Reconstruct(cores, f);
        return nn.functional.linear(input, w, bias).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// y = x Wᵀ (+ b) without forming W: the input's column modes are consumed one core at a time, producing the row
    /// modes. Cheaper than rebuilding when bonds are small or tokens few (see <see cref="CostModel"/>).
    /// </summary>
    /// <param name="reverse">Sweep from the last core to the first (the chain read backwards). The two directions
    /// differ in cost when the factors are not symmetric; null lets the cost model pick the cheaper.</param>
    public static Tensor LinearFactorized(Tensor input, IReadOnlyList<Tensor> cores, MpoFactorization f, Tensor? bias = null,
                                          bool? reverse = null)
    {
        if (input.shape[^1] != f.Cols)
            throw new ArgumentException($"input has {input.shape[^1]} features, the MPO expects {f.Cols}", nameof(input));
        int n = f.CoreCount;
        using var scope = NewDisposeScope();
        var leading = input.shape[..^1];
        long tokens = leading.Aggregate(1L, (a, b) => a * b);
        var bonds = new[] { 1 }.Concat(cores.Select(c => (int)c.shape[3])).ToArray();
        bool training = input.requires_grad || cores.Any(c => c.requires_grad);
        bool backwards = reverse ?? CostModel.Factorized(f, bonds, tokens, training).Reverse;
        var x = input.reshape(tokens, f.Cols);
        if (f.Cols != f.PaddedCols) x = nn.functional.pad(x, new long[] { 0, f.PaddedCols - f.Cols });
        Tensor y;
        if (!backwards)
            y = Sweep(x, cores, f.RowFactors, f.ColFactors);
        else
        {
            // Reading the chain backwards is the same contraction with cores T(n)..T(1), bonds swapped, and the digits
            // of both indices reversed.
            var flip = Enumerable.Range(1, n).Reverse().Select(k => (long)k).Prepend(0L).ToArray();
            var xr = x.reshape(f.ColFactors.Select(j => (long)j).Prepend(tokens).ToArray()).permute(flip).reshape(tokens, f.PaddedCols);
            var rcores = cores.Reverse().Select(c => c.permute(3, 1, 2, 0)).ToArray();
            var yr = Sweep(xr, rcores, f.RowFactors.Reverse().ToArray(), f.ColFactors.Reverse().ToArray());
            y = yr.reshape(f.RowFactors.Reverse().Select(i => (long)i).Prepend(tokens).ToArray()).permute(flip).reshape(tokens, f.PaddedRows);
        }
        if (f.Rows != f.PaddedRows) y = y.narrow(1, 0, f.Rows);
        if (bias is not null) y = y + bias;
        return y.reshape(leading.Append((long)f.Rows).ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>[T, ∏j] → [T, ∏i] through the cores in order.</summary>
    /// <remarks>
    /// Layout: the state is kept as [j_n⋯j_{k+1}, j_k, (tokens, i_1⋯i_{k-1}), d_{k-1}], so each step is one permute
    /// and one GEMM with the core viewed as [d_{k-1}·j_k, i_k·d_k], and the result is already in the next step's layout.
    /// </remarks>
    static Tensor Sweep(Tensor x, IReadOnlyList<Tensor> cores, IReadOnlyList<int> rowFactors, IReadOnlyList<int> colFactors)
    {
        int n = cores.Count;
        long tokens = x.shape[0];
        // [T, j_1..j_n] → [j_n, …, j_1, T]
        var jShape = colFactors.Select(j => (long)j).Prepend(tokens).ToArray();
        var reverse = Enumerable.Range(1, n).Reverse().Select(k => (long)k).Append(0L).ToArray();
        var state = x.reshape(jShape).permute(reverse);
        long q = tokens, d = 1, p = x.shape[1];
        for (int k = 0; k < n; k++)
        {
            long j = colFactors[k], i = rowFactors[k], dNext = cores[k].shape[3];
            p /= j;
            // [p, j, q, d] → [p, q, d, j] · core[d, j, i, d'] → [p, q, i, d']  (= [p', j_{k+1}, q·i, d'])
            var s = state.reshape(p, j, q, d).permute(0, 2, 3, 1).reshape(p * q, d * j);
            var core = cores[k].permute(0, 2, 1, 3).reshape(d * j, i * dNext);
            state = s.matmul(core);
            q *= i;
            d = dNext;
        }
        return state.reshape(tokens, -1);
    }

    /// <summary>Row indices → their digits (i_1 most significant), one tensor per core: what every factorized
    /// lookup slices its cores with.</summary>
    internal static Tensor[] RowDigits(Tensor flat, MpoFactorization f)
    {
        var digits = new Tensor[f.CoreCount];
        var rest = flat;
        for (int k = f.CoreCount - 1; k >= 0; k--)
        {
            digits[k] = rest.remainder(f.RowFactors[k]);
            rest = rest.div(f.RowFactors[k], rounding_mode: RoundingMode.floor);
        }
        return digits;
    }

    /// <summary>
    /// Rows <paramref name="indices"/> of W without forming W (embedding lookup). Cost grows with the number of
    /// distinct indices, not the vocabulary: repeated ids are contracted once, and rows that share leading digits
    /// share the chain's prefix. The chain runs over a trie of the distinct rows' digits: level k holds one state
    /// [j_1⋯j_k, d_k] per distinct prefix (i_1, …, i_k), and the states of level k+1 are made digit value by digit value
    /// — every prefix whose next digit is v is multiplied by the same core slice T⁽ᵏ⁺¹⁾[:, v, :, :] in one GEMM — so no
    /// core slice is ever copied per row (a per-row gather of the central tensor costs more than rebuilding W).
    /// </summary>
    public static Tensor RowsFactorized(Tensor indices, IReadOnlyList<Tensor> cores, MpoFactorization f)
    {
        int n = f.CoreCount;
        using var scope = NewDisposeScope();
        var flat = indices.reshape(-1).to(ScalarType.Int64);
        var (distinct, inverse, _) = unique(flat, sorted: true, return_inverse: true);
        // prefixes[k] = the distinct values of row / (i_{k+2}⋯i_n): the trie's level k (sorted, as unique returns them)
        var prefixes = new Tensor[n];
        prefixes[n - 1] = distinct;
        for (int k = n - 2; k >= 0; k--)
            prefixes[k] = unique(prefixes[k + 1].div(f.RowFactors[k + 1], rounding_mode: RoundingMode.floor), sorted: true).output;
        // level 0: [P_0, j_1, d_1]
        var state = cores[0].index_select(1, prefixes[0]).permute(1, 0, 2, 3).reshape(prefixes[0].shape[0], f.ColFactors[0], cores[0].shape[3]);
        for (int k = 1; k < n; k++)
        {
            long i = f.RowFactors[k], j = f.ColFactors[k], d = cores[k].shape[0], dNext = cores[k].shape[3];
            long width = state.shape[1];
            var parent = searchsorted(prefixes[k - 1], prefixes[k].div(i, rounding_mode: RoundingMode.floor));
            var digit = prefixes[k].remainder(i);
            var parts = new List<Tensor>();
            var order = new List<Tensor>();
            for (long v = 0; v < i; v++)
            {
                var members = digit.eq(v).nonzero().reshape(-1);
                long m = members.shape[0];
                if (m == 0) continue;
                var s = state.index_select(0, parent.index_select(0, members)).reshape(m * width, d);
                var slice = cores[k].select(1, v).reshape(d, j * dNext);
                parts.Add(s.matmul(slice).reshape(m, width * j, dNext));
                order.Add(members);
            }
            // back to the sorted order of the level's prefixes
            var position = argsort(cat(order.ToArray()));
            state = cat(parts.ToArray()).index_select(0, position);
        }
        var rows = state.reshape(distinct.shape[0], f.PaddedCols);
        if (f.Cols != f.PaddedCols) rows = rows.narrow(1, 0, f.Cols);
        return rows.index_select(0, inverse!).reshape(indices.shape.Append((long)f.Cols).ToArray()).MoveToOuterDisposeScope();
    }
}
