using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// T5's layer norm (HF <c>T5LayerNorm</c>): RMS normalization, x / √(mean(x²) + ε) · weight; no mean subtraction, no
/// bias (Raffel et al. 2020 §2.1). The mean square is taken in at least float32 (HF: always float32; float64 models
/// keep float64 here).
/// </summary>
public sealed class T5LayerNorm : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    readonly double eps;

    public T5LayerNorm(long size, double eps) : base(nameof(T5LayerNorm))
    {
        weight = new Parameter(ones(size));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var wide = x.dtype == ScalarType.Float64 ? x : x.to(ScalarType.Float32);
        var normalized = wide.mul(wide.square().mean(new long[] { -1 }, keepdim: true).add(eps).rsqrt());
        return weight.mul(normalized.to(weight.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// T5's attention (HF <c>T5Attention</c>): bias-free q, k, v [d_model → heads·d_kv] and o; scores are not divided by
/// √d_kv (Mesh TensorFlow folds that into q's initialization). The first block of each stack owns
/// <c>relative_attention_bias</c> [buckets, heads], whose bias every block of the stack reuses.
/// </summary>
public sealed class T5Attention : nn.Module
{
    public nn.Module<Tensor, Tensor> q, k, v, o;
    /// <summary>Learned bias per (bucket, head); null in all but the first block of a stack and in cross-attention.</summary>
    public nn.Module<Tensor, Tensor>? relative_attention_bias;
    readonly int heads, numBuckets, maxDistance;
    readonly bool bidirectional;
    readonly double dropout;

    public T5Attention(T5Config config, bool isDecoder, bool hasRelativeAttentionBias) : base(nameof(T5Attention))
    {
        heads = config.NumHeads;
        numBuckets = config.RelativeAttentionNumBuckets;
        maxDistance = config.RelativeAttentionMaxDistance;
        bidirectional = !isDecoder;
        dropout = config.DropoutRate;
        q = nn.Linear(config.DModel, config.InnerDim, hasBias: false);
        k = nn.Linear(config.DModel, config.InnerDim, hasBias: false);
        v = nn.Linear(config.DModel, config.InnerDim, hasBias: false);
        o = nn.Linear(config.InnerDim, config.DModel, hasBias: false);
        if (hasRelativeAttentionBias) relative_attention_bias = nn.Embedding(numBuckets, heads);
        RegisterComponents();
    }

    /// <summary>The relative position bias [1, heads, query_length, key_length] for queries at past..past+query_length-1
    /// (bidirectional buckets in the encoder, causal in the decoder).</summary>
    public Tensor PositionBias(long queryLength, long keyLength, long past, Device device)
    {
        var table = relative_attention_bias ?? throw new InvalidOperationException("only a stack's first self-attention has a relative_attention_bias");
        using var scope = NewDisposeScope();
        var buckets = RelativePositionBuckets.Grid(queryLength, keyLength, past, bidirectional, numBuckets, maxDistance, device);
        return table.forward(buckets).permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <param name="x">Queries' hidden states [batch, seq, d_model] (already normed).</param>
    /// <param name="encoderHidden">Keys/values source for cross-attention; null for self-attention.</param>
    /// <param name="bias">Position bias + mask, broadcast to [batch, heads, seq, keys].</param>
    /// <param name="cache">Self-attention: this step's keys/values are appended. Cross-attention: the encoder's
    /// keys/values are computed once and reused.</param>
    public Tensor forward(Tensor x, Tensor? encoderHidden, Tensor bias, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        var query = AttentionMath.SplitHeads(q.forward(x), heads);
        Tensor key, value;
        if (encoderHidden is null)
        {
            (key, value) = (AttentionMath.SplitHeads(k.forward(x), heads), AttentionMath.SplitHeads(v.forward(x), heads));
            if (cache is not null) (key, value) = cache.Append(layerIndex, key, value);
        }
        else if (cache is not null)
            (key, value) = cache.CrossAttention(layerIndex, () => (AttentionMath.SplitHeads(k.forward(encoderHidden), heads), AttentionMath.SplitHeads(v.forward(encoderHidden), heads)));
        else
            (key, value) = (AttentionMath.SplitHeads(k.forward(encoderHidden), heads), AttentionMath.SplitHeads(v.forward(encoderHidden), heads));
        var context = AttentionMath.Attend(query, key, value, bias, 1.0, dropout, training);
        return o.forward(AttentionMath.MergeHeads(context)).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>T5LayerSelfAttention</c> (block sub-layer 0): x + dropout(SelfAttention(layer_norm(x))).</summary>
public sealed class T5LayerSelfAttention : nn.Module
{
    public T5Attention SelfAttention;
    public nn.Module<Tensor, Tensor> layer_norm;
    public nn.Module<Tensor, Tensor> dropout;

    public T5LayerSelfAttention(T5Config config, bool isDecoder, bool hasRelativeAttentionBias) : base(nameof(T5LayerSelfAttention))
    {
        SelfAttention = new T5Attention(config, isDecoder, hasRelativeAttentionBias);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        dropout = nn.Dropout(config.DropoutRate);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor bias, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        return x.add(dropout.forward(SelfAttention.forward(layer_norm.forward(x), null, bias, cache, layerIndex))).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>T5LayerCrossAttention</c> (decoder block sub-layer 1): x + dropout(EncDecAttention(layer_norm(x), encoder)).</summary>
public sealed class T5LayerCrossAttention : nn.Module
{
    public T5Attention EncDecAttention;
    public nn.Module<Tensor, Tensor> layer_norm;
    public nn.Module<Tensor, Tensor> dropout;

    public T5LayerCrossAttention(T5Config config) : base(nameof(T5LayerCrossAttention))
    {
        EncDecAttention = new T5Attention(config, isDecoder: true, hasRelativeAttentionBias: false);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        dropout = nn.Dropout(config.DropoutRate);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor encoderHidden, Tensor bias, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        return x.add(dropout.forward(EncDecAttention.forward(layer_norm.forward(x), encoderHidden, bias, cache, layerIndex))).MoveToOuterDisposeScope();
    }
}

/// <summary>T5 v1.0's feed-forward (HF <c>T5DenseActDense</c>, state-dict name <c>DenseReluDense</c>): wi → ReLU →
/// dropout → wo, both bias-free.</summary>
public sealed class T5DenseReluDense : nn.Module<Tensor, Tensor>, IFeedForward
{
    public nn.Module<Tensor, Tensor> wi;
    public nn.Module<Tensor, Tensor> wo;
    public nn.Module<Tensor, Tensor> dropout;
    readonly Func<Tensor, Tensor> act;
    readonly double dropoutRate;

    public T5DenseReluDense(T5Config config) : base(nameof(T5DenseReluDense))
    {
        wi = nn.Linear(config.DModel, config.DFf, hasBias: false);
        wo = nn.Linear(config.DFf, config.DModel, hasBias: false);
        dropout = nn.Dropout(config.DropoutRate);
        dropoutRate = config.DropoutRate;
        act = Activations.Get(config.FeedForwardProj, "config", "feed_forward_proj");
        RegisterComponents();
    }

    string IFeedForward.InputName => nameof(wi);
    string IFeedForward.OutputName => nameof(wo);
    nn.Module<Tensor, Tensor> IFeedForward.Input => wi;
    nn.Module<Tensor, Tensor> IFeedForward.Output => wo;
    Func<Tensor, Tensor> IFeedForward.Activation => act;
    double IFeedForward.InnerDropout => dropoutRate;
    double IFeedForward.OutputDropout => 0.0;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return wo.forward(dropout.forward(act(wi.forward(x)))).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>T5LayerFF</c> (the last sub-layer of a block): x + dropout(DenseReluDense(layer_norm(x))). The
/// <c>DenseReluDense</c> field is a <c>Module&lt;Tensor, Tensor&gt;</c> so an MoE layer (MPOE) can take its place.</summary>
public sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> DenseReluDense;
    public nn.Module<Tensor, Tensor> layer_norm;
    public nn.Module<Tensor, Tensor> dropout;

    public T5LayerFF(T5Config config) : base(nameof(T5LayerFF))
    {
        DenseReluDense = new T5DenseReluDense(config);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        dropout = nn.Dropout(config.DropoutRate);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return x.add(dropout.forward(DenseReluDense.forward(layer_norm.forward(x)))).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>T5Block</c>: <c>layer.0</c> self-attention, (decoder) <c>layer.1</c> cross-attention, then the
/// feed-forward <c>layer.1</c> (encoder) / <c>layer.2</c> (decoder).</summary>
public sealed class T5Block : nn.Module
{
    public ModuleList<nn.Module> layer;
    readonly bool isDecoder;

    public T5Block(T5Config config, bool isDecoder, bool hasRelativeAttentionBias) : base(nameof(T5Block))
    {
        this.isDecoder = isDecoder;
        var parts = new List<nn.Module> { new T5LayerSelfAttention(config, isDecoder, hasRelativeAttentionBias) };
        if (isDecoder) parts.Add(new T5LayerCrossAttention(config));
        parts.Add(new T5LayerFF(config));
        layer = new ModuleList<nn.Module>(parts.ToArray());
        RegisterComponents();
    }

    public T5LayerSelfAttention SelfAttentionLayer => (T5LayerSelfAttention)layer[0];

    public Tensor forward(Tensor x, Tensor selfBias, Tensor? crossBias, Tensor? encoderHidden, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        x = SelfAttentionLayer.forward(x, selfBias, cache, layerIndex);
        if (isDecoder) x = ((T5LayerCrossAttention)layer[1]).forward(x, encoderHidden!, crossBias!, cache, layerIndex);
        return ((nn.Module<Tensor, Tensor>)layer[layer.Count - 1]).forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// HF <c>T5Stack</c> (the <c>encoder</c> or the <c>decoder</c>): embedding lookup through the model's <c>shared</c>
/// table (read at every call, never held, so the tie survives a swap), dropout, the blocks, <c>final_layer_norm</c>,
/// dropout. Block 0's relative position bias (plus the mask) is computed once and used by every block.
/// </summary>
public sealed class T5Stack : nn.Module
{
    public ModuleList<T5Block> block;
    public nn.Module<Tensor, Tensor> final_layer_norm;
    public nn.Module<Tensor, Tensor> dropout;
    readonly Func<nn.Module<Tensor, Tensor>> embedTokens;
    readonly bool isDecoder;

    public T5Stack(T5Config config, bool isDecoder, Func<nn.Module<Tensor, Tensor>> embedTokens) : base(nameof(T5Stack))
    {
        this.isDecoder = isDecoder;
        this.embedTokens = embedTokens;
        int layers = isDecoder ? config.NumDecoderLayers : config.NumLayers;
        block = new ModuleList<T5Block>(Enumerable.Range(0, layers).Select(i => new T5Block(config, isDecoder, i == 0)).ToArray());
        final_layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        dropout = nn.Dropout(config.DropoutRate);
        RegisterComponents();
    }

    /// <param name="mask">[batch, past+seq] padding mask of this stack's tokens (null: all attended).</param>
    /// <param name="encoderHidden">Decoder only: the encoder output the cross-attention reads.</param>
    /// <param name="encoderMask">Decoder only: the encoder's padding mask.</param>
    /// <param name="cache">Decoder only: keys/values of the positions decoded so far.</param>
    public Tensor forward(Tensor ids, Tensor? mask, Tensor? encoderHidden, Tensor? encoderMask, KeyValueCache? cache)
    {
        using var scope = NewDisposeScope();
        long length = ids.shape[1], past = cache?.Length ?? 0;
        var x = dropout.forward(embedTokens().forward(ids));
        var dtype = x.dtype;
        var device = x.device;
        Tensor? maskBias = mask is null ? null : AttentionMath.PaddingBias(mask, dtype);
        if (isDecoder)
        {
            var causal = AttentionMath.CausalBias(length, past + length, past, dtype, device);
            maskBias = maskBias is null ? causal : causal.add(maskBias).clamp_min(AttentionMath.MaskValue(dtype));
        }
        var selfBias = block[0].SelfAttentionLayer.SelfAttention.PositionBias(length, past + length, past, device).to(dtype);
        if (maskBias is not null) selfBias = selfBias.add(maskBias);
        Tensor? crossBias = null;
        if (isDecoder)
            crossBias = encoderMask is null ? zeros(1, 1, 1, encoderHidden!.shape[1], dtype, device) : AttentionMath.PaddingBias(encoderMask, dtype);
        for (int i = 0; i < block.Count; i++) x = block[i].forward(x, selfBias, crossBias, encoderHidden, cache, i);
        return dropout.forward(final_layer_norm.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What T5's classes share (HF <c>T5PreTrainedModel</c>): the <c>shared</c> embedding, HF's initialization, the
/// teacher-forcing shift. Tied copies (<c>encoder.embed_tokens</c>, <c>decoder.embed_tokens</c>, <c>lm_head</c>) are not
/// modules here: they are the <c>shared</c> table, left out when saving and accepted when a checkpoint has them.
/// </summary>
public abstract class T5PreTrainedModel : PretrainedModel
{
    /// <summary>The token embedding [vocab, d_model] the stacks and the LM head read.</summary>
    public nn.Module<Tensor, Tensor> shared;

    protected T5PreTrainedModel(string architecture, T5Config config) : base(architecture, config)
    {
        T5Config = config;
        shared = nn.Embedding(config.VocabSize, config.DModel);
        register_module(nameof(shared), shared);   // first in the state dict, as in HF
    }

    public T5Config T5Config { get; }
    /// <summary>T5 checkpoints carry no prefix (HF's "transformer" prefix never appears in names).</summary>
    public override string BasePrefix => "";

    protected T5Stack NewStack(bool isDecoder) => new(T5Config, isDecoder, () => shared);

    /// <summary>
    /// HF's <c>_init_weights</c> (Mesh TensorFlow's), with f = initializer_factor: shared N(0, f²); q N(0, f²/(d_model·d_kv))
    /// (this is where 1/√d_kv went); k, v N(0, f²/d_model); o N(0, f²/(heads·d_kv)); relative_attention_bias
    /// N(0, f²/d_model); wi N(0, f²/d_model); wo N(0, f²/d_ff); layer norms f.
    /// </summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        var c = T5Config;
        double f = c.InitializerFactor;
        static void Normal(nn.Module<Tensor, Tensor> m, double std) =>
            (m switch { Linear l => l.weight!, Embedding e => e.weight!, _ => throw new InvalidOperationException($"cannot initialize a {m.GetType().Name}") }).normal_(0.0, std);
        Normal(shared, f);
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case T5LayerNorm norm: norm.weight.fill_(f); break;
                case T5DenseReluDense ff:
                    Normal(ff.wi, f / Math.Sqrt(c.DModel));
                    Normal(ff.wo, f / Math.Sqrt(c.DFf));
                    break;
                case T5Attention a:
                    Normal(a.q, f / Math.Sqrt((double)c.DModel * c.DKv));
                    Normal(a.k, f / Math.Sqrt(c.DModel));
                    Normal(a.v, f / Math.Sqrt(c.DModel));
                    Normal(a.o, f / Math.Sqrt(c.InnerDim));
                    if (a.relative_attention_bias is { } table) Normal(table, f / Math.Sqrt(c.DModel));
                    break;
            }
        }
    }

    /// <summary>Teacher forcing (HF <c>_shift_right</c>): the decoder reads decoder_start y₁ … y_{n−1} for targets
    /// y₁ … y_n; ignored labels (-100) become the pad id.</summary>
    public static Tensor ShiftRight(Tensor labels, int decoderStartTokenId, int padTokenId)
    {
        using var scope = NewDisposeScope();
        var start = full(labels.shape[0], 1, decoderStartTokenId, ScalarType.Int64, labels.device);
        var shifted = cat(new[] { start, labels.narrow(1, 0, labels.shape[1] - 1) }, 1);
        return shifted.masked_fill(shifted.eq(LanguageModelLoss.IgnoreIndex), padTokenId).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="ShiftRight(Tensor, int, int)"/> with this model's decoder_start_token_id and pad_token_id.</summary>
    public Tensor ShiftRight(Tensor labels) => ShiftRight(labels, T5Config.DecoderStartTokenId, T5Config.PadTokenId!.Value);

    /// <summary>The encoder's last hidden state [batch, seq, d_model].</summary>
    public abstract Tensor Encode(Tensor inputIds, Tensor? attentionMask = null);

    protected Tensor RunEncoder(T5Stack encoder, Tensor inputIds, Tensor? attentionMask)
    {
        InputChecks.TokenIds(inputIds, T5Config.VocabSize, InputNames.InputIds);
        if (attentionMask is not null) InputChecks.Mask(attentionMask, inputIds.shape[0], inputIds.shape[1], InputNames.AttentionMask);
        return encoder.forward(inputIds, attentionMask, null, null, null);
    }
}

/// <summary>
/// HF <c>T5Model</c>: <c>shared</c>, <c>encoder</c>, <c>decoder</c>. The decoder reads <see cref="ModelInputs.DecoderInputIds"/>,
/// or the labels shifted right. Returns the decoder's last hidden state (as <see cref="ModelOutputs.Logits"/> too) and the
/// encoder's. A precomputed <see cref="ModelInputs.EncoderHiddenState"/> skips the encoder (generation).
/// </summary>
public class T5Model : T5PreTrainedModel
{
    public T5Stack encoder;
    public T5Stack decoder;

    public T5Model(T5Config config) : this("T5Model", config) { }

    protected T5Model(string architecture, T5Config config) : base(architecture, config)
    {
        encoder = NewStack(isDecoder: false);
        decoder = NewStack(isDecoder: true);
        RegisterComponents();
        InitializeWeights();
    }

    public override bool IsBaseModel => true;

    public override IReadOnlyDictionary<string, string> TiedParameters { get; } = new Dictionary<string, string>
    {
        ["encoder.embed_tokens.weight"] = "shared.weight",
        ["decoder.embed_tokens.weight"] = "shared.weight",
    };

    /// <summary>A cache with one slot per decoder block (self-attention keys/values and cross-attention keys/values).</summary>
    public KeyValueCache NewCache() => new(T5Config.NumDecoderLayers);

    public int DecoderStartTokenId => T5Config.DecoderStartTokenId;

    public override Tensor Encode(Tensor inputIds, Tensor? attentionMask = null) => RunEncoder(encoder, inputIds, attentionMask);

    /// <summary>Encoder (unless given) and decoder hidden states, with the decoder input ids the decoder read.</summary>
    protected (Tensor Encoder, Tensor Decoder, Tensor DecoderInputIds) EncodeDecode(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        Tensor encoderHidden;
        if (inputs.EncoderHiddenState is { } given)
        {
            if (given.dim() != 3 || given.shape[2] != T5Config.DModel)
                throw new ArgumentException($"encoder hidden state must be [batch, seq, {T5Config.DModel}], got [{string.Join(",", given.shape)}]", InputNames.EncoderHiddenState);
            if (inputs.AttentionMask is { } m) InputChecks.Mask(m, given.shape[0], given.shape[1], InputNames.AttentionMask);
            encoderHidden = given.alias();
        }
        else encoderHidden = Encode(inputs.InputIds, inputs.AttentionMask);

        Tensor decoderIds;
        if (inputs.DecoderInputIds is { } ids) decoderIds = ids.alias();   // a handle of this scope, moved out below
        else if (inputs.Labels is { } labels)
        {
            InputChecks.TokenLabels(labels, T5Config.VocabSize, labels, InputNames.Labels);
            decoderIds = ShiftRight(labels);
        }
        else throw new ArgumentException("T5's decoder needs decoder input ids, or labels to shift right", InputNames.DecoderInputIds);
        InputChecks.TokenIds(decoderIds, T5Config.VocabSize, InputNames.DecoderInputIds);
        if (decoderIds.shape[0] != encoderHidden.shape[0])
            throw new ArgumentException($"decoder batch {decoderIds.shape[0]} differs from the encoder's {encoderHidden.shape[0]}", InputNames.DecoderInputIds);
        long past = inputs.Cache?.Length ?? 0;
        if (inputs.DecoderAttentionMask is { } dm)
            InputChecks.Mask(dm, decoderIds.shape[0], past + decoderIds.shape[1], InputNames.DecoderAttentionMask);
        var decoderHidden = decoder.forward(decoderIds, inputs.DecoderAttentionMask, encoderHidden, inputs.AttentionMask, inputs.Cache);
        return (encoderHidden.MoveToOuterDisposeScope(), decoderHidden.MoveToOuterDisposeScope(), decoderIds.MoveToOuterDisposeScope());
    }

    public override ModelOutputs forward(ModelInputs inputs)
    {
        var (encoderHidden, decoderHidden, _) = EncodeDecode(inputs);
        return new ModelOutputs(decoderHidden, decoderHidden, null, encoderHidden);
    }
}

/// <summary>
/// HF <c>T5ForConditionalGeneration</c>: <see cref="T5Model"/> plus the LM head tied to <c>shared</c>; the decoder output
/// is scaled by d_model^-0.5 before the projection (Mesh TensorFlow's rescale for tied embeddings). With labels the loss
/// is cross-entropy against them (-100 ignored); the decoder then reads the labels shifted right.
/// </summary>
public sealed class T5ForConditionalGeneration : T5Model, ISeq2SeqLanguageModel
{
    public T5ForConditionalGeneration(T5Config config) : base("T5ForConditionalGeneration", config) { }

    public override bool IsBaseModel => false;

    public override IReadOnlyDictionary<string, string> TiedParameters { get; } = new Dictionary<string, string>
    {
        ["encoder.embed_tokens.weight"] = "shared.weight",
        ["decoder.embed_tokens.weight"] = "shared.weight",
        ["lm_head.weight"] = "shared.weight",
    };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (encoderHidden, decoderHidden, decoderIds) = EncodeDecode(inputs);
        var logits = nn.functional.linear(decoderHidden.mul(Math.Pow(T5Config.DModel, -0.5)), EmbeddingTable.Of(shared));
        Tensor? loss = null;
        if (inputs.Labels is { } labels)
        {
            InputChecks.TokenLabels(labels, T5Config.VocabSize, decoderIds, InputNames.Labels);
            loss = LanguageModelLoss.Aligned(logits, labels).MoveToOuterDisposeScope();
        }
        return new ModelOutputs(logits.MoveToOuterDisposeScope(), decoderHidden.MoveToOuterDisposeScope(), loss, encoderHidden.MoveToOuterDisposeScope());
    }
}

/// <summary>HF <c>T5EncoderModel</c>: <c>shared</c> and <c>encoder</c> only (sentence encoders, classification on top).</summary>
public sealed class T5EncoderModel : T5PreTrainedModel
{
    public T5Stack encoder;

    public T5EncoderModel(T5Config config) : base("T5EncoderModel", config)
    {
        encoder = NewStack(isDecoder: false);
        RegisterComponents();
        InitializeWeights();
    }

    public override bool IsBaseModel => true;

    public override IReadOnlyDictionary<string, string> TiedParameters { get; } =
        new Dictionary<string, string> { ["encoder.embed_tokens.weight"] = "shared.weight" };

    public override Tensor Encode(Tensor inputIds, Tensor? attentionMask = null) => RunEncoder(encoder, inputIds, attentionMask);

    public override ModelOutputs forward(ModelInputs inputs)
    {
        var hidden = Encode(inputs.InputIds, inputs.AttentionMask);
        return new ModelOutputs(hidden, hidden, null, hidden);
    }
}

/// <summary>T5's registration: <c>model_type</c> "t5", the classes Mpo builds.</summary>
public static class T5Family
{
    public static readonly ModelFamily Family = new(
        "t5",
        r => T5Config.FromJson(r),
        new Dictionary<string, Func<ModelConfig, PretrainedModel>>
        {
            ["T5Model"] = c => new T5Model((T5Config)c),
            ["T5ForConditionalGeneration"] = c => new T5ForConditionalGeneration((T5Config)c),
            ["T5EncoderModel"] = c => new T5EncoderModel((T5Config)c),
        },
        "T5ForConditionalGeneration");
}
