using System.Text.Json.Nodes;
using Mpo.Models.Blocks;

namespace Mpo.Models;

/// <summary>
/// T5 v1.0's <c>config.json</c> (HF <c>T5Config</c>; keys and defaults as there, defaults = "t5-small"). T5 v1.1 and
/// its descendants (gated-GELU feed-forward <c>wi_0</c>/<c>wi_1</c>, untied <c>lm_head</c>) are refused with the key
/// that says so.
/// </summary>
public sealed record T5Config : ModelConfig
{
    public T5Config()
    {
        VocabSize = 32128;
        PadTokenId = 0;
        EosTokenId = 1;
    }

    public override string ModelType => "t5";
    /// <summary>None: positions enter only as relative buckets.</summary>
    public override int? MaxPositions => null;

    public int DModel { get; init; } = 512;
    /// <summary><c>d_kv</c>: per-head width; n_heads·d_kv need not equal d_model.</summary>
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 2048;
    /// <summary><c>num_layers</c>: encoder blocks.</summary>
    public int NumLayers { get; init; } = 6;
    /// <summary><c>num_decoder_layers</c>: decoder blocks (HF: num_layers when absent).</summary>
    public int NumDecoderLayers { get; init; } = 6;
    public int NumHeads { get; init; } = 8;
    public int RelativeAttentionNumBuckets { get; init; } = 32;
    public int RelativeAttentionMaxDistance { get; init; } = 128;
    public double DropoutRate { get; init; } = 0.1;
    public double LayerNormEpsilon { get; init; } = 1e-6;
    /// <summary><c>initializer_factor</c>: multiplies every initial standard deviation (1.0; tests use other values).</summary>
    public double InitializerFactor { get; init; } = 1.0;
    /// <summary><c>feed_forward_proj</c>: the FFN activation, "relu" in T5 v1.0.</summary>
    public string FeedForwardProj { get; init; } = "relu";
    /// <summary><c>decoder_start_token_id</c>: the first decoder input (T5 uses the pad id, 0).</summary>
    public int DecoderStartTokenId { get; init; }
    /// <summary><c>tie_word_embeddings</c>: must be true (v1.0); the head reuses <c>shared</c> with a d_model^-0.5 rescale.</summary>
    public bool TieWordEmbeddings { get; init; } = true;

    public int InnerDim => NumHeads * DKv;

    public static T5Config FromJson(ConfigReader r)
    {
        var d = new T5Config();
        int layers = r.Int("num_layers", d.NumLayers);
        var c = ReadShared(d, r) with
        {
            DModel = r.Int("d_model", d.DModel),
            DKv = r.Int("d_kv", d.DKv),
            DFf = r.Int("d_ff", d.DFf),
            NumLayers = layers,
            NumDecoderLayers = r.Int("num_decoder_layers", layers),
            NumHeads = r.Int("num_heads", d.NumHeads),
            RelativeAttentionNumBuckets = r.Int("relative_attention_num_buckets", d.RelativeAttentionNumBuckets),
            RelativeAttentionMaxDistance = r.Int("relative_attention_max_distance", d.RelativeAttentionMaxDistance),
            DropoutRate = r.Double("dropout_rate", d.DropoutRate),
            LayerNormEpsilon = r.Double("layer_norm_epsilon", d.LayerNormEpsilon),
            InitializerFactor = r.Double("initializer_factor", d.InitializerFactor),
            FeedForwardProj = r.String("feed_forward_proj", d.FeedForwardProj),
            TieWordEmbeddings = r.Bool("tie_word_embeddings", true),
        };
        int pad = r.Has("pad_token_id") ? r.Int("pad_token_id") : d.PadTokenId!.Value;
        return c with
        {
            PadTokenId = pad,
            EosTokenId = r.Has("eos_token_id") ? c.EosTokenId : d.EosTokenId,
            DecoderStartTokenId = r.Int("decoder_start_token_id", pad),   // HF generation falls back to the pad id
        };
    }

    protected override void WriteFamilyKeys(JsonObject json)
    {
        json["d_model"] = DModel;
        json["d_kv"] = DKv;
        json["d_ff"] = DFf;
        json["num_layers"] = NumLayers;
        json["num_decoder_layers"] = NumDecoderLayers;
        json["num_heads"] = NumHeads;
        json["relative_attention_num_buckets"] = RelativeAttentionNumBuckets;
        json["relative_attention_max_distance"] = RelativeAttentionMaxDistance;
        json["dropout_rate"] = DropoutRate;
        json["layer_norm_epsilon"] = LayerNormEpsilon;
        json["initializer_factor"] = InitializerFactor;
        json["feed_forward_proj"] = FeedForwardProj;
        json["decoder_start_token_id"] = DecoderStartTokenId;
        json["tie_word_embeddings"] = TieWordEmbeddings;
        json["is_encoder_decoder"] = true;
    }

    public override void Validate(string source)
    {
        Require(VocabSize >= 1, source, "vocab_size", $"must be ≥ 1, got {VocabSize}");
        Require(DModel >= 1, source, "d_model", $"must be ≥ 1, got {DModel}");
        Require(DKv >= 1, source, "d_kv", $"must be ≥ 1, got {DKv}");
        Require(DFf >= 1, source, "d_ff", $"must be ≥ 1, got {DFf}");
        Require(NumLayers >= 1, source, "num_layers", $"must be ≥ 1, got {NumLayers}");
        Require(NumDecoderLayers >= 1, source, "num_decoder_layers", $"must be ≥ 1, got {NumDecoderLayers}");
        Require(NumHeads >= 1, source, "num_heads", $"must be ≥ 1, got {NumHeads}");
        // the encoder's buckets split in two directions, each with half exact and half logarithmic buckets
        Require(RelativeAttentionNumBuckets >= 4, source, "relative_attention_num_buckets", $"must be ≥ 4, got {RelativeAttentionNumBuckets}");
        Require(RelativeAttentionMaxDistance > RelativeAttentionNumBuckets / 2, source, "relative_attention_max_distance",
            $"must exceed the decoder's {RelativeAttentionNumBuckets / 2} exact offsets (num_buckets / 2), got {RelativeAttentionMaxDistance}");
        Require(DropoutRate is >= 0 and < 1, source, "dropout_rate", $"must lie in [0, 1), got {DropoutRate}");
        Require(LayerNormEpsilon > 0, source, "layer_norm_epsilon", $"must be > 0, got {LayerNormEpsilon}");
        Require(InitializerFactor > 0, source, "initializer_factor", $"must be > 0, got {InitializerFactor}");
        Require(PadTokenId is { } pad && pad >= 0 && pad < VocabSize, source, "pad_token_id", $"must lie in 0..{VocabSize - 1}, got {PadTokenId}");
        Require(DecoderStartTokenId >= 0 && DecoderStartTokenId < VocabSize, source, "decoder_start_token_id", $"must lie in 0..{VocabSize - 1}, got {DecoderStartTokenId}");
        Require(!FeedForwardProj.StartsWith("gated-", System.StringComparison.Ordinal), source, "feed_forward_proj",
            $"'{FeedForwardProj}' is T5 v1.1's gated feed-forward (wi_0, wi_1); T5 v1.1 is unsupported, Mpo builds T5 v1.0 ('relu')");
        Activations.Get(FeedForwardProj, source, "feed_forward_proj");
        Require(TieWordEmbeddings, source, "tie_word_embeddings", "an untied lm_head is T5 v1.1's; T5 v1.1 is unsupported, Mpo builds T5 v1.0 (tied)");
    }
}
