using System.Text.Json.Nodes;
using Mpo.Models.Blocks;

namespace Mpo.Models;

/// <summary>
/// ALBERT's configuration under HF's <c>config.json</c> keys (Lan et al. 2020; HF <c>AlbertConfig</c>) with HF's
/// defaults (albert-xxlarge: width 4096, 64 heads, embeddings of 128, one shared layer group). ALBERT's two
/// parameter-reduction ideas are keys here: the factorized embedding (<see cref="EmbeddingSize"/> &lt; hidden) and
/// cross-layer sharing (<see cref="NumHiddenLayers"/> applications of <see cref="NumHiddenGroups"/> groups of
/// <see cref="InnerGroupNum"/> layers each).
/// </summary>
public sealed record AlbertConfig : ModelConfig
{
    public AlbertConfig()
    {
        VocabSize = 30000;
        PadTokenId = 0;
        BosTokenId = 2;
        EosTokenId = 3;
    }

    public override string ModelType => "albert";
    public override int? MaxPositions => MaxPositionEmbeddings;

    /// <summary><c>embedding_size</c>: width of the token/position/type tables, mapped up to the hidden width.</summary>
    public int EmbeddingSize { get; init; } = 128;
    public int HiddenSize { get; init; } = 4096;
    /// <summary><c>num_hidden_layers</c>: how many times a layer group is applied.</summary>
    public int NumHiddenLayers { get; init; } = 12;
    /// <summary><c>num_hidden_groups</c>: distinct parameter sets; layer i uses group ⌊i / (layers / groups)⌋.</summary>
    public int NumHiddenGroups { get; init; } = 1;
    /// <summary><c>inner_group_num</c>: layers inside one group, run one after another at every application.</summary>
    public int InnerGroupNum { get; init; } = 1;
    public int NumAttentionHeads { get; init; } = 64;
    public int IntermediateSize { get; init; } = 16384;
    public string HiddenAct { get; init; } = "gelu_new";
    public double HiddenDropoutProb { get; init; } = 0.0;
    public double AttentionProbsDropoutProb { get; init; } = 0.0;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double LayerNormEps { get; init; } = 1e-12;
    public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>classifier_dropout_prob</c>: the sequence-classification head's dropout.</summary>
    public double ClassifierDropoutProb { get; init; } = 0.1;
    /// <summary><c>position_embedding_type</c>; only "absolute" is supported.</summary>
    public string PositionEmbeddingType { get; init; } = "absolute";

    public static AlbertConfig FromJson(ConfigReader r)
    {
        var d = new AlbertConfig();
        return ReadShared(d, r) with
        {
            EmbeddingSize = r.Int("embedding_size", d.EmbeddingSize),
            HiddenSize = r.Int("hidden_size", d.HiddenSize),
            NumHiddenLayers = r.Int("num_hidden_layers", d.NumHiddenLayers),
            NumHiddenGroups = r.Int("num_hidden_groups", d.NumHiddenGroups),
            InnerGroupNum = r.Int("inner_group_num", d.InnerGroupNum),
            NumAttentionHeads = r.Int("num_attention_heads", d.NumAttentionHeads),
            IntermediateSize = r.Int("intermediate_size", d.IntermediateSize),
            HiddenAct = r.String("hidden_act", d.HiddenAct),
            HiddenDropoutProb = r.Double("hidden_dropout_prob", d.HiddenDropoutProb),
            AttentionProbsDropoutProb = r.Double("attention_probs_dropout_prob", d.AttentionProbsDropoutProb),
            MaxPositionEmbeddings = r.Int("max_position_embeddings", d.MaxPositionEmbeddings),
            TypeVocabSize = r.Int("type_vocab_size", d.TypeVocabSize),
            LayerNormEps = r.Double("layer_norm_eps", d.LayerNormEps),
            InitializerRange = r.Double("initializer_range", d.InitializerRange),
            ClassifierDropoutProb = r.Double("classifier_dropout_prob", d.ClassifierDropoutProb),
            PositionEmbeddingType = r.String("position_embedding_type", d.PositionEmbeddingType),
        };
    }

    protected override void WriteFamilyKeys(JsonObject json)
    {
        json["embedding_size"] = EmbeddingSize;
        json["hidden_size"] = HiddenSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_hidden_groups"] = NumHiddenGroups;
        json["inner_group_num"] = InnerGroupNum;
        json["num_attention_heads"] = NumAttentionHeads;
        json["intermediate_size"] = IntermediateSize;
        json["hidden_act"] = HiddenAct;
        json["hidden_dropout_prob"] = HiddenDropoutProb;
        json["attention_probs_dropout_prob"] = AttentionProbsDropoutProb;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["type_vocab_size"] = TypeVocabSize;
        json["layer_norm_eps"] = LayerNormEps;
        json["initializer_range"] = InitializerRange;
        json["classifier_dropout_prob"] = ClassifierDropoutProb;
        json["position_embedding_type"] = PositionEmbeddingType;
    }

    /// <summary>The layer group that application <paramref name="layer"/> (0-based) runs: HF computes
    /// int(layer / (num_hidden_layers / num_hidden_groups)) in floating point, so uneven splits match it.</summary>
    public int GroupOf(int layer) => (int)(layer / ((double)NumHiddenLayers / NumHiddenGroups));

    public override void Validate(string source)
    {
        ValidateShared(source);
        Require(EmbeddingSize >= 1, source, "embedding_size", $"must be ≥ 1, got {EmbeddingSize}");
        Require(NumAttentionHeads >= 1, source, "num_attention_heads", $"must be ≥ 1, got {NumAttentionHeads}");
        Require(HiddenSize >= 1 && HiddenSize % NumAttentionHeads == 0, source, "hidden_size",
                $"{HiddenSize} is not a positive multiple of num_attention_heads = {NumAttentionHeads}");
        Require(NumHiddenLayers >= 1, source, "num_hidden_layers", $"must be ≥ 1, got {NumHiddenLayers}");
        Require(NumHiddenGroups >= 1, source, "num_hidden_groups", $"must be ≥ 1, got {NumHiddenGroups}");
        Require(InnerGroupNum >= 1, source, "inner_group_num", $"must be ≥ 1, got {InnerGroupNum}");
        Require(IntermediateSize >= 1, source, "intermediate_size", $"must be ≥ 1, got {IntermediateSize}");
        Activations.Get(HiddenAct, source, "hidden_act");
        RequireProbability(HiddenDropoutProb, source, "hidden_dropout_prob");
        RequireProbability(AttentionProbsDropoutProb, source, "attention_probs_dropout_prob");
        RequireProbability(ClassifierDropoutProb, source, "classifier_dropout_prob");
        Require(MaxPositionEmbeddings >= 1, source, "max_position_embeddings", $"must be ≥ 1, got {MaxPositionEmbeddings}");
        Require(TypeVocabSize >= 1, source, "type_vocab_size", $"must be ≥ 1, got {TypeVocabSize}");
        Require(LayerNormEps > 0, source, "layer_norm_eps", $"must be > 0, got {LayerNormEps}");
        Require(InitializerRange >= 0, source, "initializer_range", $"must be ≥ 0, got {InitializerRange}");
        Require(PositionEmbeddingType == "absolute", source, "position_embedding_type",
                $"'{PositionEmbeddingType}' is not supported; only \"absolute\" (a learned position table)");
    }
}
