using System.Text.Json.Nodes;
using Mpo.Models.Blocks;

namespace Mpo.Models;

/// <summary>
/// DistilBERT's configuration under HF's <c>config.json</c> keys (Sanh et al. 2019; HF <c>DistilBertConfig</c>,
/// which names the widths <c>dim</c>/<c>hidden_dim</c> and the depth <c>n_layers</c>) with HF's defaults
/// (distilbert-base: 6 layers of width 768, 12 heads). LayerNorm ε is fixed at 1e-12 in HF's code, not a key.
/// </summary>
public sealed record DistilBertConfig : ModelConfig
{
    /// <summary>HF hard-codes this LayerNorm ε in DistilBERT's modules.</summary>
    public const double LayerNormEps = 1e-12;

    public DistilBertConfig()
    {
        VocabSize = 30522;
        PadTokenId = 0;
    }

    public override string ModelType => "distilbert";
    public override int? MaxPositions => MaxPositionEmbeddings;

    /// <summary><c>dim</c>: the model width.</summary>
    public int Dim { get; init; } = 768;
    /// <summary><c>n_layers</c>.</summary>
    public int NLayers { get; init; } = 6;
    /// <summary><c>n_heads</c>; must divide <see cref="Dim"/>.</summary>
    public int NHeads { get; init; } = 12;
    /// <summary><c>hidden_dim</c>: the feed-forward width.</summary>
    public int HiddenDim { get; init; } = 3072;
    /// <summary><c>activation</c>: "gelu" or "relu" (feed-forward and MLM transform).</summary>
    public string Activation { get; init; } = "gelu";
    /// <summary><c>dropout</c>: embeddings and feed-forward output.</summary>
    public double Dropout { get; init; } = 0.1;
    /// <summary><c>attention_dropout</c>: on the attention weights.</summary>
    public double AttentionDropout { get; init; } = 0.1;
    /// <summary><c>seq_classif_dropout</c>: before the classifier.</summary>
    public double SeqClassifDropout { get; init; } = 0.2;
    /// <summary><c>qa_dropout</c>: kept for round-trips (question answering is not built).</summary>
    public double QaDropout { get; init; } = 0.1;
    public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary><c>sinusoidal_pos_embds</c>: the position table starts as fixed sinusoids and is not trained.</summary>
    public bool SinusoidalPosEmbds { get; init; }
    public double InitializerRange { get; init; } = 0.02;

    public static DistilBertConfig FromJson(ConfigReader r)
    {
        var d = new DistilBertConfig();
        return ReadShared(d, r) with
        {
            Dim = r.Int("dim", d.Dim),
            NLayers = r.Int("n_layers", d.NLayers),
            NHeads = r.Int("n_heads", d.NHeads),
            HiddenDim = r.Int("hidden_dim", d.HiddenDim),
            Activation = r.String("activation", d.Activation),
            Dropout = r.Double("dropout", d.Dropout),
            AttentionDropout = r.Double("attention_dropout", d.AttentionDropout),
            SeqClassifDropout = r.Double("seq_classif_dropout", d.SeqClassifDropout),
            QaDropout = r.Double("qa_dropout", d.QaDropout),
            MaxPositionEmbeddings = r.Int("max_position_embeddings", d.MaxPositionEmbeddings),
            SinusoidalPosEmbds = r.Bool("sinusoidal_pos_embds", d.SinusoidalPosEmbds),
            InitializerRange = r.Double("initializer_range", d.InitializerRange),
        };
    }

    protected override void WriteFamilyKeys(JsonObject json)
    {
        json["dim"] = Dim;
        json["n_layers"] = NLayers;
        json["n_heads"] = NHeads;
        json["hidden_dim"] = HiddenDim;
        json["activation"] = Activation;
        json["dropout"] = Dropout;
        json["attention_dropout"] = AttentionDropout;
        json["seq_classif_dropout"] = SeqClassifDropout;
        json["qa_dropout"] = QaDropout;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["sinusoidal_pos_embds"] = SinusoidalPosEmbds;
        json["initializer_range"] = InitializerRange;
    }

    public override void Validate(string source)
    {
        ValidateShared(source);
        Require(NHeads >= 1, source, "n_heads", $"must be ≥ 1, got {NHeads}");
        Require(Dim >= 1 && Dim % NHeads == 0, source, "dim", $"{Dim} is not a positive multiple of n_heads = {NHeads}");
        Require(NLayers >= 1, source, "n_layers", $"must be ≥ 1, got {NLayers}");
        Require(HiddenDim >= 1, source, "hidden_dim", $"must be ≥ 1, got {HiddenDim}");
        Require(Activation is "gelu" or "relu", source, "activation", $"'{Activation}' is not one of gelu, relu (HF's DistilBERT)");
        RequireProbability(Dropout, source, "dropout");
        RequireProbability(AttentionDropout, source, "attention_dropout");
        RequireProbability(SeqClassifDropout, source, "seq_classif_dropout");
        RequireProbability(QaDropout, source, "qa_dropout");
        Require(MaxPositionEmbeddings >= 1, source, "max_position_embeddings", $"must be ≥ 1, got {MaxPositionEmbeddings}");
        Require(!SinusoidalPosEmbds || Dim % 2 == 0, source, "sinusoidal_pos_embds", $"needs an even dim, got {Dim}");
        Require(InitializerRange >= 0, source, "initializer_range", $"must be ≥ 0, got {InitializerRange}");
    }
}
