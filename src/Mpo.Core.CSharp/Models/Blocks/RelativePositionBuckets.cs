using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// T5's relative position buckets (Raffel et al. 2020 §2.1; Mesh TensorFlow <c>_relative_position_bucket</c>): a
/// key–query offset maps to one of <c>num_buckets</c> learned biases. Half the buckets are exact offsets, the other
/// half grow logarithmically up to <c>max_distance</c>; farther offsets share the last bucket. Bidirectional (encoder):
/// half the buckets for keys after the query. Causal (decoder): only the past counts; future offsets map to bucket 0.
/// </summary>
public static class RelativePositionBuckets
{
    /// <summary>Bucket ids (int64) for <paramref name="relativePosition"/> = key position − query position.
    /// The logarithm is taken in float32, as in HF and the original code, so boundary offsets land in the same bucket.</summary>
    public static Tensor Bucket(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        if (numBuckets < (bidirectional ? 4 : 2))
            throw new ArgumentException($"need at least {(bidirectional ? 4 : 2)} buckets, got {numBuckets}", nameof(numBuckets));
        using var scope = NewDisposeScope();
        var offset = zeros_like(relativePosition);
        Tensor distance;
        if (bidirectional)
        {
            numBuckets /= 2;
            offset = relativePosition.gt(0).to(ScalarType.Int64).mul(numBuckets);
            distance = relativePosition.abs();
        }
        else
        {
            distance = relativePosition.neg().clamp_min(0);
        }
        int exact = numBuckets / 2;
        if (maxDistance <= exact)
            throw new ArgumentException($"max distance {maxDistance} must exceed the {exact} exact offsets", nameof(maxDistance));
        var logScaled = distance.to(ScalarType.Float32).div(exact).log().div(Math.Log((double)maxDistance / exact)).mul(numBuckets - exact);
        // where() discards the log branch for small distances (including log(0) = -inf)
        var large = logScaled.nan_to_num(neginf: 0).to(ScalarType.Int64).add(exact).clamp_max(numBuckets - 1);
        return offset.add(where(distance.lt(exact), distance, large)).MoveToOuterDisposeScope();
    }

    /// <summary>Buckets [query_length, key_length] for queries at positions past..past+query_length-1 over keys
    /// 0..key_length-1 (incremental decoding has past = cached length).</summary>
    public static Tensor Grid(long queryLength, long keyLength, long past, bool bidirectional, int numBuckets, int maxDistance, Device device)
    {
        using var scope = NewDisposeScope();
        var query = arange(past, past + queryLength, device: device).unsqueeze(1);
        var key = arange(keyLength, device: device).unsqueeze(0);
        return Bucket(key.sub(query), bidirectional, numBuckets, maxDistance).MoveToOuterDisposeScope();
    }
}
