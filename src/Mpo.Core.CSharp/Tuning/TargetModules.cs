using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mpo.Models;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// The kinds of matrix MPOP decomposes (spec §4.1: word embedding, the attention projections, the two FFN matrices,
/// the pooler), by the names a tuner configuration uses. GPT-2 fuses query, key and value into one
/// <c>c_attn</c> matrix: that is <see cref="QueryKeyValue"/>.
/// </summary>
public static class MpoFamilies
{
    public const string WordEmbedding = "word_embedding";
    public const string Query = "query";
    public const string Key = "key";
    public const string Value = "value";
    public const string QueryKeyValue = "query_key_value";
    public const string AttentionOutput = "attention_output";
    public const string FfnIn = "ffn_in";
    public const string FfnOut = "ffn_out";
    public const string Pooler = "pooler";

    /// <summary>Every family, in the order a model's layers use them.</summary>
    public static IReadOnlyList<string> All { get; } =
        new[] { WordEmbedding, Query, Key, Value, QueryKeyValue, AttentionOutput, FfnIn, FfnOut, Pooler };

    /// <summary>Names that stand for several families in a configuration's per-family settings: "attention" (the
    /// projections and the output, MPOP's <c>--attention_trunc</c>) and "ffn" (both FFN matrices, <c>--linear_trunc</c>).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Groups { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["attention"] = new[] { Query, Key, Value, QueryKeyValue, AttentionOutput },
        ["ffn"] = new[] { FfnIn, FfnOut },
    };

    /// <summary>The groups a family belongs to.</summary>
    public static IEnumerable<string> GroupsOf(string family) => Groups.Where(g => g.Value.Contains(family)).Select(g => g.Key);
}

/// <summary>What a target module is, for decomposing it and for merging it back into the same kind of module.</summary>
public enum DenseKind
{
    /// <summary><see cref="Linear"/>: weight [out, in].</summary>
    Linear,
    /// <summary>GPT-2's <see cref="Conv1D"/>: weight stored [in, out], decomposed as its [out, in] view.</summary>
    Conv1D,
    /// <summary><see cref="Embedding"/>: table [num_embeddings, dim].</summary>
    Embedding,
}

/// <summary>One module a tuner configuration selects: its dotted path, its family, and the module itself.</summary>
public sealed record TargetModule(string Path, string Family, nn.Module Module)
{
    /// <summary>Linear, Conv1D or Embedding; throws naming the path for anything else (an already swapped layer).</summary>
    public DenseKind Kind => Module switch
    {
        Linear => DenseKind.Linear,
        Conv1D => DenseKind.Conv1D,
        Embedding => DenseKind.Embedding,
        _ => throw new ArgumentException($"'{Path}' ({Family}) is a {Module.GetType().Name}; only Linear, Conv1D and Embedding modules can be decomposed (is it tuned already?)", "target_modules"),
    };

    /// <summary>Rows × columns of the matrix an MPO of this module decomposes ([out, in] for linear maps).</summary>
    public (int Rows, int Cols) MatrixShape => Module switch
    {
        Linear l => ((int)l.weight!.shape[0], (int)l.weight!.shape[1]),
        Conv1D c => ((int)c.OutFeatures, (int)c.InFeatures),
        Embedding e => ((int)e.weight!.shape[0], (int)e.weight!.shape[1]),
        _ => throw new ArgumentException($"'{Path}' is a {Module.GetType().Name}, not a Linear, Conv1D or Embedding module", "target_modules"),
    };
}

/// <summary>
/// Which modules of each supported family hold which MPOP matrix: the one definition of what MPOP decomposes (the
/// tuner applies it; the model-truncation experiment reads it). Patterns match whole dotted module paths and allow a
/// missing base prefix, so they hold for every head class and for bare bodies (an imported <c>BertModel</c> folder
/// has <c>encoder.layer.0…</c>, a <c>BertForSequenceClassification</c> <c>bert.encoder.layer.0…</c>).
/// Not decomposed (spec §4.1): position and token-type tables, T5's relative-position bias, norms, biases, ALBERT's
/// 128→768 embedding projection, heads.
/// </summary>
public static class TargetPatterns
{
    static Regex R(string pattern) => new("(^|\\.)" + pattern + "$", RegexOptions.CultureInvariant);

    static readonly Dictionary<string, IReadOnlyDictionary<string, Regex>> byModelType = new()
    {
        ["bert"] = new Dictionary<string, Regex>
        {
            [MpoFamilies.WordEmbedding] = R(@"embeddings\.word_embeddings"),
            [MpoFamilies.Query] = R(@"layer\.\d+\.attention\.self\.query"),
            [MpoFamilies.Key] = R(@"layer\.\d+\.attention\.self\.key"),
            [MpoFamilies.Value] = R(@"layer\.\d+\.attention\.self\.value"),
            [MpoFamilies.AttentionOutput] = R(@"layer\.\d+\.attention\.output\.dense"),
            [MpoFamilies.FfnIn] = R(@"layer\.\d+\.intermediate\.dense"),
            [MpoFamilies.FfnOut] = R(@"layer\.\d+\.output\.dense"),
            [MpoFamilies.Pooler] = R(@"pooler\.dense"),
        },
        ["albert"] = new Dictionary<string, Regex>
        {
            [MpoFamilies.WordEmbedding] = R(@"embeddings\.word_embeddings"),
            [MpoFamilies.Query] = R(@"albert_layers\.\d+\.attention\.query"),
            [MpoFamilies.Key] = R(@"albert_layers\.\d+\.attention\.key"),
            [MpoFamilies.Value] = R(@"albert_layers\.\d+\.attention\.value"),
            [MpoFamilies.AttentionOutput] = R(@"albert_layers\.\d+\.attention\.dense"),
            [MpoFamilies.FfnIn] = R(@"albert_layers\.\d+\.ffn"),
            [MpoFamilies.FfnOut] = R(@"albert_layers\.\d+\.ffn_output"),
            [MpoFamilies.Pooler] = R(@"pooler"),
        },
        ["distilbert"] = new Dictionary<string, Regex>
        {
            [MpoFamilies.WordEmbedding] = R(@"embeddings\.word_embeddings"),
            [MpoFamilies.Query] = R(@"layer\.\d+\.attention\.q_lin"),
            [MpoFamilies.Key] = R(@"layer\.\d+\.attention\.k_lin"),
            [MpoFamilies.Value] = R(@"layer\.\d+\.attention\.v_lin"),
            [MpoFamilies.AttentionOutput] = R(@"layer\.\d+\.attention\.out_lin"),
            [MpoFamilies.FfnIn] = R(@"layer\.\d+\.ffn\.lin1"),
            [MpoFamilies.FfnOut] = R(@"layer\.\d+\.ffn\.lin2"),
        },
        ["gpt2"] = new Dictionary<string, Regex>
        {
            [MpoFamilies.WordEmbedding] = R(@"wte"),
            [MpoFamilies.QueryKeyValue] = R(@"h\.\d+\.attn\.c_attn"),
            [MpoFamilies.AttentionOutput] = R(@"h\.\d+\.attn\.c_proj"),
            [MpoFamilies.FfnIn] = R(@"h\.\d+\.mlp\.c_fc"),
            [MpoFamilies.FfnOut] = R(@"h\.\d+\.mlp\.c_proj"),
        },
        ["t5"] = new Dictionary<string, Regex>
        {
            [MpoFamilies.WordEmbedding] = new Regex("^shared$", RegexOptions.CultureInvariant),
            [MpoFamilies.Query] = R(@"(SelfAttention|EncDecAttention)\.q"),
            [MpoFamilies.Key] = R(@"(SelfAttention|EncDecAttention)\.k"),
            [MpoFamilies.Value] = R(@"(SelfAttention|EncDecAttention)\.v"),
            [MpoFamilies.AttentionOutput] = R(@"(SelfAttention|EncDecAttention)\.o"),
            [MpoFamilies.FfnIn] = R(@"DenseReluDense\.wi"),
            [MpoFamilies.FfnOut] = R(@"DenseReluDense\.wo"),
        },
    };

    /// <summary>Family → pattern for a <c>model_type</c>; throws naming it when Mpo has none.</summary>
    public static IReadOnlyDictionary<string, Regex> For(string modelType) =>
        byModelType.TryGetValue(modelType, out var patterns) ? patterns
        : throw new ArgumentException($"model_type '{modelType}' has no MPO target patterns; supported: {string.Join(", ", byModelType.Keys.OrderBy(k => k))}", "model_type");

    /// <summary>
    /// The modules of <paramref name="model"/> in <paramref name="families"/> (null: every family this model has), in
    /// module order. A named family that this model type lacks or that matches no module is an error naming it.
    /// </summary>
    public static IReadOnlyList<TargetModule> Match(PretrainedModel model, IReadOnlyCollection<string>? families = null)
    {
        var patterns = For(model.Config.ModelType);
        if (families is not null)
            foreach (var family in families)
            {
                if (!MpoFamilies.All.Contains(family))
                    throw new ArgumentException($"target_modules: unknown family '{family}'; known: {string.Join(", ", MpoFamilies.All)}", "target_modules");
                if (!patterns.ContainsKey(family))
                    throw new ArgumentException(
                        $"target_modules: a {model.Config.ModelType} model has no '{family}' matrix (its families: {string.Join(", ", patterns.Keys)})", "target_modules");
            }
        var wanted = (IEnumerable<string>?)families ?? patterns.Keys;
        var found = new List<TargetModule>();
        foreach (var (path, module) in model.named_modules())
            foreach (var family in wanted)
                if (patterns[family].IsMatch(path))
                {
                    found.Add(new TargetModule(path, family, module));
                    break;
                }
        if (families is not null)
            foreach (var family in families)
                if (!found.Any(t => t.Family == family))
                    throw new ArgumentException(
                        $"target_modules: '{family}' (pattern {patterns[family]}) matches no module of this {model.Architecture}", "target_modules");
        if (found.Count == 0)
            throw new ArgumentException($"target_modules: no module of this {model.Architecture} matches any MPO family", "target_modules");
        return found;
    }

    /// <summary>The family of the module at <paramref name="path"/> in a <paramref name="modelType"/> model, or null.</summary>
    public static string? FamilyOf(string modelType, string path) =>
        For(modelType).FirstOrDefault(kv => kv.Value.IsMatch(path)).Key;

    /// <summary>The <c>padding_idx</c> of a word-embedding target (the pad token's row of BERT-style embeddings),
    /// read from the embeddings block that owns it; null for tables without one (GPT-2's <c>wte</c>, T5's <c>shared</c>).</summary>
    public static long? PaddingIdx(PretrainedModel model, TargetModule target)
    {
        if (target.Kind != DenseKind.Embedding) return null;
        int dot = target.Path.LastIndexOf('.');
        if (dot < 0) return null;
        return ModuleSurgery.Find(model, target.Path[..dot]) is EncoderEmbeddings owner && ReferenceEquals(owner.WordEmbeddings, target.Module)
            ? owner.PaddingIdx : null;
    }
}
