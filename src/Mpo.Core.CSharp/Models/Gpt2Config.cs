using System.Text.Json.Nodes;
using Mpo.Models.Blocks;

namespace Mpo.Models;

/// <summary>
/// GPT-2's <c>config.json</c> (HF <c>GPT2Config</c>; keys and defaults as there, defaults = the 124M "gpt2" model).
/// HF's aliases (<c>hidden_size</c> = n_embd, <c>num_hidden_layers</c> = n_layer, <c>num_attention_heads</c> = n_head,
/// <c>max_position_embeddings</c> = n_positions) are properties here, never written.
/// </summary>
public sealed record Gpt2Config : ModelConfig
{
    public Gpt2Config()
    {
        VocabSize = 50257;
        BosTokenId = 50256;
        EosTokenId = 50256;
    }

    public override string ModelType => "gpt2";
    public override int? MaxPositions => NPositions;

    /// <summary><c>n_embd</c>: the residual width.</summary>
    public int NEmbd { get; init; } = 768;
    /// <summary><c>n_layer</c>.</summary>
    public int NLayer { get; init; } = 12;
    /// <summary><c>n_head</c>; must divide <see cref="NEmbd"/>.</summary>
    public int NHead { get; init; } = 12;
    /// <summary><c>n_positions</c>: rows of the learned position table, the longest sequence.</summary>
    public int NPositions { get; init; } = 1024;
    /// <summary><c>n_inner</c>: the MLP width; null means 4·n_embd.</summary>
    public int? NInner { get; init; }
    /// <summary><c>activation_function</c> of the MLP ("gelu_new" = tanh approximation).</summary>
    public string ActivationFunction { get; init; } = "gelu_new";
    public double ResidPdrop { get; init; } = 0.1;
    public double EmbdPdrop { get; init; } = 0.1;
    public double AttnPdrop { get; init; } = 0.1;
    public double LayerNormEpsilon { get; init; } = 1e-5;
    public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>scale_attn_weights</c>: divide scores by √head_dim (true in every released GPT-2).</summary>
    public bool ScaleAttnWeights { get; init; } = true;
    /// <summary><c>scale_attn_by_inverse_layer_idx</c>: also divide layer i's scores by i+1 (Mistral/Stanford CRFM runs).</summary>
    public bool ScaleAttnByInverseLayerIdx { get; init; }
    /// <summary><c>reorder_and_upcast_attn</c>: HF computes scores in float32 under mixed precision. The same function;
    /// accepted and kept for the round trip (scores are softmaxed in at least float32 anyway).</summary>
    public bool ReorderAndUpcastAttn { get; init; }

    public int HiddenSize => NEmbd;
    public int InnerSize => NInner ?? 4 * NEmbd;
    public int HeadDim => NEmbd / NHead;

    public static Gpt2Config FromJson(ConfigReader r)
    {
        if (r.Bool("add_cross_attention", false))
            throw new InvalidModelConfigException(r.Source, "add_cross_attention", "GPT-2 with cross-attention (encoder-decoder use) is not supported");
        var d = new Gpt2Config();
        var c = ReadShared(d, r) with
        {
            NEmbd = r.Int("n_embd", d.NEmbd),
            NLayer = r.Int("n_layer", d.NLayer),
            NHead = r.Int("n_head", d.NHead),
            NPositions = r.Int("n_positions", d.NPositions),
            NInner = r.OptionalInt("n_inner"),
            ActivationFunction = r.String("activation_function", d.ActivationFunction),
            ResidPdrop = r.Double("resid_pdrop", d.ResidPdrop),
            EmbdPdrop = r.Double("embd_pdrop", d.EmbdPdrop),
            AttnPdrop = r.Double("attn_pdrop", d.AttnPdrop),
            LayerNormEpsilon = r.Double("layer_norm_epsilon", d.LayerNormEpsilon),
            InitializerRange = r.Double("initializer_range", d.InitializerRange),
            ScaleAttnWeights = r.Bool("scale_attn_weights", d.ScaleAttnWeights),
            ScaleAttnByInverseLayerIdx = r.Bool("scale_attn_by_inverse_layer_idx", false),
            ReorderAndUpcastAttn = r.Bool("reorder_and_upcast_attn", false),
        };
        // HF's GPT2Config defaults both to <|endoftext|> = 50256; ReadShared leaves absent ids null
        return c with { BosTokenId = r.Has("bos_token_id") ? c.BosTokenId : d.BosTokenId, EosTokenId = r.Has("eos_token_id") ? c.EosTokenId : d.EosTokenId };
    }

    protected override void WriteFamilyKeys(JsonObject json)
    {
        json["n_embd"] = NEmbd;
        json["n_layer"] = NLayer;
        json["n_head"] = NHead;
        json["n_positions"] = NPositions;
        json["n_ctx"] = NPositions;   // older transformers versions read the causal-mask size from n_ctx
        json["n_inner"] = NInner is { } inner ? JsonValue.Create(inner) : null;
        json["activation_function"] = ActivationFunction;
        json["resid_pdrop"] = ResidPdrop;
        json["embd_pdrop"] = EmbdPdrop;
        json["attn_pdrop"] = AttnPdrop;
        json["layer_norm_epsilon"] = LayerNormEpsilon;
        json["initializer_range"] = InitializerRange;
        json["scale_attn_weights"] = ScaleAttnWeights;
        json["scale_attn_by_inverse_layer_idx"] = ScaleAttnByInverseLayerIdx;
        json["reorder_and_upcast_attn"] = ReorderAndUpcastAttn;
    }

    public override void Validate(string source)
    {
        Require(VocabSize >= 1, source, "vocab_size", $"must be ≥ 1, got {VocabSize}");
        Require(NEmbd >= 1, source, "n_embd", $"must be ≥ 1, got {NEmbd}");
        Require(NLayer >= 1, source, "n_layer", $"must be ≥ 1, got {NLayer}");
        Require(NHead >= 1, source, "n_head", $"must be ≥ 1, got {NHead}");
        Require(NEmbd % NHead == 0, source, "n_head", $"n_embd = {NEmbd} is not divisible by n_head = {NHead}");
        Require(NPositions >= 1, source, "n_positions", $"must be ≥ 1, got {NPositions}");
        Require(NInner is null or >= 1, source, "n_inner", $"must be ≥ 1 or null, got {NInner}");
        Require(ResidPdrop is >= 0 and < 1, source, "resid_pdrop", $"must lie in [0, 1), got {ResidPdrop}");
        Require(EmbdPdrop is >= 0 and < 1, source, "embd_pdrop", $"must lie in [0, 1), got {EmbdPdrop}");
        Require(AttnPdrop is >= 0 and < 1, source, "attn_pdrop", $"must lie in [0, 1), got {AttnPdrop}");
        Require(LayerNormEpsilon > 0, source, "layer_norm_epsilon", $"must be > 0, got {LayerNormEpsilon}");
        Require(InitializerRange > 0, source, "initializer_range", $"must be > 0, got {InitializerRange}");
        Activations.Get(ActivationFunction, source, "activation_function");
    }
}
