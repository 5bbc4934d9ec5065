using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// Multi-head attention as pure functions of tensors, shared by every family (their modules differ only in names and
/// in where biases, scaling and position information go).
/// </summary>
public static class AttentionMath
{
    /// <summary>[batch, seq, heads·dim] → [batch, heads, seq, dim].</summary>
    public static Tensor SplitHeads(Tensor x, int heads)
    {
        long b = x.shape[0], s = x.shape[1], width = x.shape[2];
        return x.view(b, s, heads, width / heads).transpose(1, 2);
    }

    /// <summary>[batch, heads, seq, dim] → [batch, seq, heads·dim].</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        long b = x.shape[0], h = x.shape[1], s = x.shape[2], d = x.shape[3];
        return x.transpose(1, 2).contiguous().view(b, s, h * d);
    }

    /// <summary>
    /// softmax(q·kᵀ·scale + bias)·v with dropout on the probabilities. <paramref name="bias"/> is additive and
    /// broadcast to [batch, heads, q_len, k_len]: padding and causal masks (see <see cref="PaddingBias"/>,
    /// <see cref="CausalBias"/>) and T5's relative position bias all enter here. T5 passes scale = 1 (its
    /// initialization absorbs 1/√d).
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? bias, double scale, double dropout, bool training)
    {
        using var scope = NewDisposeScope();
        var scores = matmul(q, k.transpose(-1, -2));
        if (scale != 1.0) scores = scores.mul(scale);
        if (bias is not null) scores = scores.add(bias);
        // softmax in float32 at least: half-precision scores overflow for long rows
        var probs = scores.softmax(-1, scores.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32).to(v.dtype);
        if (training && dropout > 0) probs = nn.functional.dropout(probs, dropout, training);
        return matmul(probs, v).MoveToOuterDisposeScope();
    }

    /// <summary>The value added to masked scores: the dtype's lowest finite value (HF's choice; −∞ gives NaN rows
    /// when a whole row is masked).</summary>
    public static double MaskValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>Attention mask [batch, k_len] (1 keep, 0 pad) → additive bias [batch, 1, 1, k_len].</summary>
    public static Tensor PaddingBias(Tensor attentionMask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var keep = attentionMask.to(dtype).unsqueeze(1).unsqueeze(2);
        return ones_like(keep).sub(keep).mul(MaskValue(dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>Causal bias [1, 1, q_len, k_len] for queries at positions <paramref name="past"/>..past+q_len-1 over
    /// keys 0..k_len-1 (incremental decoding has past = cached length).</summary>
    public static Tensor CausalBias(long queryLength, long keyLength, long past, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var q = arange(past, past + queryLength, device: device).unsqueeze(1);
        var k = arange(keyLength, device: device).unsqueeze(0);
        var masked = k.gt(q);
        return zeros(queryLength, keyLength, dtype, device).masked_fill(masked, MaskValue(dtype)).view(1, 1, queryLength, keyLength).MoveToOuterDisposeScope();
    }
}
