using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Training;

namespace Mpo.Experts;

/// <summary>
/// Expert loads summed over a training run, per MoE layer: real tokens, choices routed to and kept by each expert, and
/// dropped tokens (<see cref="MoeStep.Loads"/> of every training step). A trainer callback only for its state: the
/// sums go into every checkpoint, so a resumed run reports exactly what an uninterrupted one would.
/// </summary>
public sealed class ExpertLoadTally : TrainerCallback
{
    sealed class Sums
    {
        public long Tokens, Dropped;
        public long[] Routed = Array.Empty<long>(), Kept = Array.Empty<long>();
    }

    readonly Dictionary<string, Sums> layers = new(StringComparer.Ordinal);
    readonly List<string> order = new();

    public override string Name => "expert_loads";

    /// <summary>Adds one step's loads (call it from the loss function, once per training forward pass).</summary>
    public void Add(IEnumerable<ExpertLoad> loads)
    {
        ArgumentNullException.ThrowIfNull(loads);
        foreach (var l in loads)
        {
            if (!layers.TryGetValue(l.Layer, out var s))
            {
                s = new Sums { Routed = new long[l.Routed.Length], Kept = new long[l.Kept.Length] };
                layers[l.Layer] = s;
                order.Add(l.Layer);
            }
            if (s.Routed.Length != l.Routed.Length)
                throw new ArgumentException($"MoE layer '{l.Layer}' reported {l.Routed.Length} experts, earlier {s.Routed.Length}", nameof(loads));
            s.Tokens += l.Tokens;
            s.Dropped += l.DroppedTokens;
            for (int e = 0; e < l.Routed.Length; e++) { s.Routed[e] += l.Routed[e]; s.Kept[e] += l.Kept[e]; }
        }
    }

    /// <summary>The layers in the order they first reported.</summary>
    public IReadOnlyList<string> Layers => order;

    /// <summary>Real tokens the layer saw over the run.</summary>
    public long Tokens(string layer) => layers[layer].Tokens;
    /// <summary>Tokens none of whose choices an expert kept (the residual alone carried them).</summary>
    public long Dropped(string layer) => layers[layer].Dropped;
    /// <summary>Choices per expert before capacity dropping.</summary>
    public IReadOnlyList<long> Routed(string layer) => layers[layer].Routed;
    /// <summary>Choices per expert each expert computed.</summary>
    public IReadOnlyList<long> Kept(string layer) => layers[layer].Kept;

    /// <summary>The share of the layer's kept choices each expert computed (sums to 1; 0s when nothing was kept).</summary>
    public double[] KeptFractions(string layer)
    {
        var kept = layers[layer].Kept;
        double total = kept.Sum();
        return kept.Select(k => total == 0 ? 0.0 : k / total).ToArray();
    }

    public override JsonNode? SaveState()
    {
        var json = new JsonObject();
        foreach (var name in order)
        {
            var s = layers[name];
            json[name] = new JsonObject
            {
                ["tokens"] = s.Tokens,
                ["dropped"] = s.Dropped,
                ["routed"] = new JsonArray(s.Routed.Select(x => (JsonNode)x).ToArray()),
                ["kept"] = new JsonArray(s.Kept.Select(x => (JsonNode)x).ToArray()),
            };
        }
        return json;
    }

    public override void LoadState(JsonNode state)
    {
        ArgumentNullException.ThrowIfNull(state);
        layers.Clear();
        order.Clear();
        foreach (var (name, node) in state.AsObject())
        {
            long[] Longs(string key) => (node?[key] as JsonArray ?? throw new FormatException($"expert load state of '{name}' lacks '{key}'"))
                .Select(x => x!.GetValue<long>()).ToArray();
            layers[name] = new Sums
            {
                Tokens = node?["tokens"]?.GetValue<long>() ?? throw new FormatException($"expert load state of '{name}' lacks 'tokens'"),
                Dropped = node?["dropped"]?.GetValue<long>() ?? throw new FormatException($"expert load state of '{name}' lacks 'dropped'"),
                Routed = Longs("routed"),
                Kept = Longs("kept"),
            };
            order.Add(name);
        }
    }
}
