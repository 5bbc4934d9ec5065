using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;

namespace Mpo.Tuning;

/// <summary>Where a parameter sits in a transformer: the input embeddings, one numbered layer of a stack, what sits on
/// top of the last layer (BERT's pooler, GPT-2's <c>ln_f</c>, T5's final norms), the task head, or none of these.</summary>
public enum PartKind
{
    Embeddings,
    Layer,
    Top,
    Head,
    Other,
}

/// <summary>The part of a model a parameter belongs to; <see cref="Stack"/> and <see cref="Index"/> for layers (T5 has
/// an encoder and a decoder stack; every other family one, named "").</summary>
public readonly record struct ModelPart(PartKind Kind, string Stack = "", int Index = -1);

/// <summary>
/// The one definition of a model's parts per family, next to <see cref="TargetPatterns"/> (which says which matrices
/// a tuner decomposes or adapts): which parameters are the embeddings, the numbered transformer layers, the top, and
/// the task head. Fine-tuning only the last k layers (MPOP Table 5) and LoRA's <c>modules_to_save</c> (the head peft
/// trains beside the adapter for a classification task) read it. Patterns allow a missing base prefix, as
/// <see cref="TargetPatterns"/> do. ALBERT shares one layer's weights across its depth: its numbered layers are the
/// layer groups (<c>num_hidden_groups</c>), which is all there is to train separately.
/// </summary>
public static class ModelParts
{
    static Regex R(string pattern) => new("(^|\\.)" + pattern, RegexOptions.CultureInvariant);

    sealed record Patterns(Regex Embeddings, Regex Layer, Regex? Top, Regex Head);

    // Heads: the modules a task head adds on top of the body (BERT/ALBERT's classifier, DistilBERT's pre_classifier
    // and classifier, GPT-2's score, an untied LM head or MLM transform); tied LM heads hold no parameter of their own.
    static readonly Dictionary<string, Patterns> byModelType = new()
    {
        ["bert"] = new(R(@"embeddings\."), R(@"encoder\.layer\.(?<index>\d+)\."), R(@"pooler\."), R(@"(classifier|cls)\.")),
        ["albert"] = new(R(@"(embeddings\.|encoder\.embedding_hidden_mapping_in\.)"), R(@"encoder\.albert_layer_groups\.(?<index>\d+)\."),
                         R(@"pooler\."), R(@"(classifier|predictions)\.")),
        ["distilbert"] = new(R(@"embeddings\."), R(@"transformer\.layer\.(?<index>\d+)\."), null,
                             R(@"(pre_classifier|classifier|vocab_transform|vocab_layer_norm|vocab_projector)\.")),
        ["gpt2"] = new(R(@"(wte|wpe)\."), R(@"h\.(?<index>\d+)\."), R(@"ln_f\."), R(@"(score|lm_head)\.")),
        ["t5"] = new(new Regex(@"^shared\.", RegexOptions.CultureInvariant), R(@"(?<stack>encoder|decoder)\.block\.(?<index>\d+)\."),
                     R(@"(encoder|decoder)\.final_layer_norm\."), new Regex(@"^lm_head\.", RegexOptions.CultureInvariant)),
    };

    static Patterns For(string modelType) =>
        byModelType.TryGetValue(modelType, out var p) ? p
        : throw new ArgumentException($"model_type '{modelType}' has no known layer structure; supported: {string.Join(", ", byModelType.Keys.OrderBy(k => k))}", "model_type");

    /// <summary>The part of the parameter (or module) named <paramref name="name"/> in a <paramref name="modelType"/> model.</summary>
    public static ModelPart Of(string modelType, string name)
    {
        var p = For(modelType);
        var dotted = name + ".";   // a module path matches like its parameters
        var layer = p.Layer.Match(dotted);
        if (layer.Success)
            return new ModelPart(PartKind.Layer, layer.Groups["stack"].Success ? layer.Groups["stack"].Value : "", int.Parse(layer.Groups["index"].Value));
        if (p.Embeddings.IsMatch(dotted)) return new ModelPart(PartKind.Embeddings);
        if (p.Top?.IsMatch(dotted) == true) return new ModelPart(PartKind.Top);
        if (p.Head.IsMatch(dotted)) return new ModelPart(PartKind.Head);
        return new ModelPart(PartKind.Other);
    }

    /// <summary>Layers per stack ("" for single-stack families), from the parameter names present.</summary>
    public static IReadOnlyDictionary<string, int> LayerCounts(string modelType, IEnumerable<string> parameterNames) =>
        parameterNames.Select(n => Of(modelType, n))
            .Where(p => p.Kind == PartKind.Layer)
            .GroupBy(p => p.Stack)
            .ToDictionary(g => g.Key, g => g.Max(p => p.Index) + 1);
}
