using System.Text.Json.Nodes;
using Mpo.Models.Blocks;

namespace Mpo.Models;

/// <summary>
/// BERT's configuration under HF's <c>config.json</c> keys (Devlin et al. 2019; HF <c>BertConfig</c>), with HF's
/// defaults (bert-base: 12 layers of width 768, 12 heads).
/// </summary>
public sealed record BertConfig : ModelConfig
{
    public BertConfig()
    {
        VocabSize = 30522;
        PadTokenId = 0;
    }

    public override string ModelType => "bert";
    public override int? MaxPositions => MaxPositionEmbeddings;

    /// <summary><c>hidden_size</c>: the model width.</summary>
    public int HiddenSize { get; init; } = 768;
    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumHiddenLayers { get; init; } = 12;
    /// <summary><c>num_attention_heads</c>; must divide <see cref="HiddenSize"/>.</summary>
    public int NumAttentionHeads { get; init; } = 12;
    /// <summary><c>intermediate_size</c>: the feed-forward width.</summary>
    public int IntermediateSize { get; init; } = 3072;
    /// <summary><c>hidden_act</c> (feed-forward and MLM transform), see <see cref="Activations"/>.</summary>
    public string HiddenAct { get; init; } = "gelu";
    /// <summary><c>hidden_dropout_prob</c>: embeddings, attention output, feed-forward output.</summary>
    public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary><c>attention_probs_dropout_prob</c>: on the attention weights.</summary>
    public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary><c>max_position_embeddings</c>: the position table's length, the longest input.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary><c>type_vocab_size</c>: number of segments (token_type_ids).</summary>
    public int TypeVocabSize { get; init; } = 2;
    public double LayerNormEps { get; init; } = 1e-12;
    /// <summary><c>initializer_range</c>: standard deviation of the N(0, σ) initialization.</summary>
    public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>classifier_dropout</c>: the classification head's dropout; null → <see cref="HiddenDropoutProb"/>.</summary>
    public double? ClassifierDropout { get; init; }
    /// <summary><c>position_embedding_type</c>; only "absolute" (BERT's learned table) is supported.</summary>
    public string PositionEmbeddingType { get; init; } = "absolute";

    public static BertConfig FromJson(ConfigReader r)
    {
        var d = new BertConfig();
        return ReadShared(d, r) with
        {
            HiddenSize = r.Int("hidden_size", d.HiddenSize),
            NumHiddenLayers = r.Int("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = r.Int("num_attention_heads", d.NumAttentionHeads),
            IntermediateSize = r.Int("intermediate_size", d.IntermediateSize),
            HiddenAct = r.String("hidden_act", d.HiddenAct),
            HiddenDropoutProb = r.Double("hidden_dropout_prob", d.HiddenDropoutProb),
            AttentionProbsDropoutProb = r.Double("attention_probs_dropout_prob", d.AttentionProbsDropoutProb),
            MaxPositionEmbeddings = r.Int("max_position_embeddings", d.MaxPositionEmbeddings),
            TypeVocabSize = r.Int("type_vocab_size", d.TypeVocabSize),
            LayerNormEps = r.Double("layer_norm_eps", d.LayerNormEps),
            InitializerRange = r.Double("initializer_range", d.InitializerRange),
            ClassifierDropout = r.Has("classifier_dropout") ? r.Double("classifier_dropout") : null,
            PositionEmbeddingType = r.String("position_embedding_type", d.PositionEmbeddingType),
        };
    }

    protected override void WriteFamilyKeys(JsonObject json)
    {
        json["hidden_size"] = HiddenSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["intermediate_size"] = IntermediateSize;
        json["hidden_act"] = HiddenAct;
        json["hidden_dropout_prob"] = HiddenDropoutProb;
        json["attention_probs_dropout_prob"] = AttentionProbsDropoutProb;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["type_vocab_size"] = TypeVocabSize;
        json["layer_norm_eps"] = LayerNormEps;
        json["initializer_range"] = InitializerRange;
        json["classifier_dropout"] = ClassifierDropout;
        json["position_embedding_type"] = PositionEmbeddingType;
    }

    public override void Validate(string source)
    {
        ValidateShared(source);
        Require(NumAttentionHeads >= 1, source, "num_attention_heads", $"must be ≥ 1, got {NumAttentionHeads}");
        Require(HiddenSize >= 1 && HiddenSize % NumAttentionHeads == 0, source, "hidden_size",
                $"{HiddenSize} is not a positive multiple of num_attention_heads = {NumAttentionHeads}");
        Require(NumHiddenLayers >= 1, source, "num_hidden_layers", $"must be ≥ 1, got {NumHiddenLayers}");
        Require(IntermediateSize >= 1, source, "intermediate_size", $"must be ≥ 1, got {IntermediateSize}");
        Activations.Get(HiddenAct, source, "hidden_act");
        RequireProbability(HiddenDropoutProb, source, "hidden_dropout_prob");
        RequireProbability(AttentionProbsDropoutProb, source, "attention_probs_dropout_prob");
        if (ClassifierDropout is { } p) RequireProbability(p, source, "classifier_dropout");
        Require(MaxPositionEmbeddings >= 1, source, "max_position_embeddings", $"must be ≥ 1, got {MaxPositionEmbeddings}");
        Require(TypeVocabSize >= 1, source, "type_vocab_size", $"must be ≥ 1, got {TypeVocabSize}");
        Require(LayerNormEps > 0, source, "layer_norm_eps", $"must be > 0, got {LayerNormEps}");
        Require(InitializerRange >= 0, source, "initializer_range", $"must be ≥ 0, got {InitializerRange}");
        Require(PositionEmbeddingType == "absolute", source, "position_embedding_type",
                $"'{PositionEmbeddingType}' is not supported; only \"absolute\" (a learned position table)");
    }
}
