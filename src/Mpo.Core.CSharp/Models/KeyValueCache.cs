using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// Keys and values of the positions already decoded, one pair per decoder layer, each [batch, heads, length, head_dim].
/// Incremental decoding feeds only the new tokens and appends their keys/values here, so a step costs O(length)
/// instead of re-running the whole prefix. Encoder-decoder models (T5) also keep each layer's cross-attention
/// keys/values here: they depend only on the encoder output, so they are computed on the first step and reused.
/// The cache owns its tensors (they survive the step's dispose scope).
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    readonly List<(Tensor Key, Tensor Value)?> layers;
    readonly List<(Tensor Key, Tensor Value)?> cross;

    public KeyValueCache(int layerCount)
    {
        layers = new List<(Tensor, Tensor)?>(new (Tensor, Tensor)?[layerCount]);
        cross = new List<(Tensor, Tensor)?>(new (Tensor, Tensor)?[layerCount]);
    }

    /// <summary>Number of positions cached (0 before the first step).</summary>
    public long Length => layers.Count > 0 && layers[0] is { } first ? first.Key.shape[2] : 0;

    /// <summary>Appends this step's keys/values for <paramref name="layer"/> and returns the full ones (cached + new).</summary>
    public (Tensor Key, Tensor Value) Append(int layer, Tensor key, Tensor value)
    {
        var (k, v) = layers[layer] is { } old
            ? (cat(new[] { old.Key, key }, 2), cat(new[] { old.Value, value }, 2))
            : (key.alias(), value.alias());
        if (layers[layer] is { } previous) { previous.Key.Dispose(); previous.Value.Dispose(); }
        layers[layer] = (k.DetachFromDisposeScope(), v.DetachFromDisposeScope());
        return (k, v);
    }

    /// <summary>The cross-attention keys/values of <paramref name="layer"/>: computed by <paramref name="compute"/> on the
    /// first call, the stored ones afterwards.</summary>
    public (Tensor Key, Tensor Value) CrossAttention(int layer, Func<(Tensor Key, Tensor Value)> compute)
    {
        if (cross[layer] is { } stored) return stored;
        var (k, v) = compute();
        cross[layer] = (k.DetachFromDisposeScope(), v.DetachFromDisposeScope());
        return (k, v);
    }

    /// <summary>Reorders the batch dimension (beam search / dropping finished rows).</summary>
    public void Select(Tensor batchIndex)
    {
        foreach (var list in new[] { layers, cross })
            for (int i = 0; i < list.Count; i++)
                if (list[i] is { } kv)
                {
                    var k = kv.Key.index_select(0, batchIndex).DetachFromDisposeScope();
                    var v = kv.Value.index_select(0, batchIndex).DetachFromDisposeScope();
                    kv.Key.Dispose(); kv.Value.Dispose();
                    list[i] = (k, v);
                }
    }

    public void Dispose()
    {
        foreach (var kv in layers)
            if (kv is { } x) { x.Key.Dispose(); x.Value.Dispose(); }
        foreach (var kv in cross)
            if (kv is { } x) { x.Key.Dispose(); x.Value.Dispose(); }
        layers.Clear();
        cross.Clear();
    }
}
