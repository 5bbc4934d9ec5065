using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// The two steps of a post-LayerNorm Transformer encoder layer (Vaswani et al. 2017; BERT, ALBERT, DistilBERT):
/// multi-head self-attention, and the residual "add &amp; norm". Families keep their own modules (and so HF's names)
/// and call these, so the arithmetic is written once. Projections are passed as modules, so an MPO layer swapped in
/// by a tuner is what runs.
/// </summary>
public static class EncoderLayerMath
{
    /// <summary>
    /// softmax(Q·Kᵀ/√d + bias)·V over the heads of x's own queries, keys and values, heads merged back:
    /// [batch, seq, width] (no output projection; families name it differently). <paramref name="bias"/> is the
    /// padding bias [batch, 1, 1, seq] from <see cref="AttentionMath.PaddingBias"/>, or null for no padding.
    /// </summary>
    public static Tensor SelfAttention(Tensor x, nn.Module<Tensor, Tensor> query, nn.Module<Tensor, Tensor> key,
                                       nn.Module<Tensor, Tensor> value, int heads, Tensor? bias, double dropout, bool training)
    {
        using var scope = NewDisposeScope();
        var q = AttentionMath.SplitHeads(query.forward(x), heads);
        var k = AttentionMath.SplitHeads(key.forward(x), heads);
        var v = AttentionMath.SplitHeads(value.forward(x), heads);
        double scale = 1.0 / Math.Sqrt(q.shape[3]);
        var context = AttentionMath.Attend(q, k, v, bias, scale, dropout, training);
        return AttentionMath.MergeHeads(context).MoveToOuterDisposeScope();
    }

    /// <summary>LayerNorm(residual + dropout(update)): the post-LN residual connection.</summary>
    public static Tensor AddAndNorm(Tensor update, Tensor residual, nn.Module<Tensor, Tensor> norm, double dropout, bool training)
    {
        using var scope = NewDisposeScope();
        var dropped = training && dropout > 0 ? nn.functional.dropout(update, dropout, training) : update;
        return norm.forward(dropped.add(residual)).MoveToOuterDisposeScope();
    }
}
