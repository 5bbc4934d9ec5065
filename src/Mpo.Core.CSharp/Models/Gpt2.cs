using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// GPT-2's masked self-attention (Radford et al. 2019; HF <c>GPT2Attention</c>): one <see cref="Conv1D"/>
/// <c>c_attn</c> makes queries, keys and values [.., 3·n_embd], <c>c_proj</c> mixes the heads back. The legacy causal
/// mask buffers HF kept here (<c>attn.bias</c>, <c>attn.masked_bias</c>) are not state: masks are built per call.
/// </summary>
public sealed class Gpt2Attention : nn.Module
{
    /// <summary>Conv1D n_embd → 3·n_embd (or anything with the same map, e.g. an <c>MpoLinear</c>).</summary>
    public nn.Module<Tensor, Tensor> c_attn;
    /// <summary>Conv1D n_embd → n_embd.</summary>
    public nn.Module<Tensor, Tensor> c_proj;
    public nn.Module<Tensor, Tensor> resid_dropout;
    readonly int heads, width;
    readonly double scale, attentionDropout;

    public Gpt2Attention(Gpt2Config config, int layerIndex) : base(nameof(Gpt2Attention))
    {
        heads = config.NHead;
        width = config.NEmbd;
        c_attn = new Conv1D(width, 3L * width);
        c_proj = new Conv1D(width, width);
        resid_dropout = nn.Dropout(config.ResidPdrop);
        double s = config.ScaleAttnWeights ? 1.0 / Math.Sqrt(config.HeadDim) : 1.0;
        scale = config.ScaleAttnByInverseLayerIdx ? s / (layerIndex + 1) : s;
        attentionDropout = config.AttnPdrop;
        RegisterComponents();
    }

    /// <param name="bias">Additive causal + padding bias [batch or 1, 1, seq, past+seq].</param>
    /// <param name="cache">Keys/values of earlier positions; this call's are appended.</param>
    public Tensor forward(Tensor x, Tensor bias, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        var qkv = c_attn.forward(x).split(width, -1);
        var (q, k, v) = (AttentionMath.SplitHeads(qkv[0], heads), AttentionMath.SplitHeads(qkv[1], heads), AttentionMath.SplitHeads(qkv[2], heads));
        if (cache is not null) (k, v) = cache.Append(layerIndex, k, v);
        var context = AttentionMath.Attend(q, k, v, bias, scale, attentionDropout, training);
        return resid_dropout.forward(c_proj.forward(AttentionMath.MergeHeads(context))).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2's position-wise MLP (HF <c>GPT2MLP</c>): c_fc → activation → c_proj → dropout. The whole block is a
/// <c>Module&lt;Tensor, Tensor&gt;</c> so an MoE layer (MPOE) can take its place.</summary>
public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>, IFeedForward
{
    public nn.Module<Tensor, Tensor> c_fc;
    public nn.Module<Tensor, Tensor> c_proj;
    public nn.Module<Tensor, Tensor> dropout;
    readonly Func<Tensor, Tensor> act;
    readonly double dropoutRate;

    public Gpt2Mlp(Gpt2Config config) : base(nameof(Gpt2Mlp))
    {
        c_fc = new Conv1D(config.NEmbd, config.InnerSize);
        c_proj = new Conv1D(config.InnerSize, config.NEmbd);
        dropout = nn.Dropout(config.ResidPdrop);
        dropoutRate = config.ResidPdrop;
        act = Activations.Get(config.ActivationFunction, "config", "activation_function");
        RegisterComponents();
    }

    string IFeedForward.InputName => nameof(c_fc);
    string IFeedForward.OutputName => nameof(c_proj);
    nn.Module<Tensor, Tensor> IFeedForward.Input => c_fc;
    nn.Module<Tensor, Tensor> IFeedForward.Output => c_proj;
    Func<Tensor, Tensor> IFeedForward.Activation => act;
    double IFeedForward.InnerDropout => 0.0;
    double IFeedForward.OutputDropout => dropoutRate;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return dropout.forward(c_proj.forward(act(c_fc.forward(x)))).MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm transformer block (GPT-2 §2.3 moved layer norm to each sub-block's input):
/// x + attn(ln_1(x)), then + mlp(ln_2(x)).</summary>
public sealed class Gpt2Block : nn.Module
{
    public nn.Module<Tensor, Tensor> ln_1;
    public Gpt2Attention attn;
    public nn.Module<Tensor, Tensor> ln_2;
    /// <summary>The feed-forward block (<see cref="Gpt2Mlp"/>, or an MoE layer).</summary>
    public nn.Module<Tensor, Tensor> mlp;

    public Gpt2Block(Gpt2Config config, int layerIndex) : base(nameof(Gpt2Block))
    {
        ln_1 = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
        attn = new Gpt2Attention(config, layerIndex);
        ln_2 = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
        mlp = new Gpt2Mlp(config);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor bias, KeyValueCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attn.forward(ln_1.forward(x), bias, cache, layerIndex));
        return h.add(mlp.forward(ln_2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>What GPT-2's classes share: the config, HF's <c>base_model_prefix</c> "transformer", the legacy buffers
/// older checkpoints carry, and HF's weight initialization.</summary>
public abstract class Gpt2PreTrainedModel : PretrainedModel
{
    static readonly Regex legacyBuffer = new(@"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$", RegexOptions.Compiled);

    protected Gpt2PreTrainedModel(string architecture, Gpt2Config config) : base(architecture, config)
    {
        Gpt2Config = config;
    }

    public Gpt2Config Gpt2Config { get; }
    public override string BasePrefix => "transformer";

    /// <summary>HF ≤ 4.x saved each block's causal mask (<c>h.N.attn.bias</c>) and −1e4 constant
    /// (<c>h.N.attn.masked_bias</c>) as buffers; they hold no weights.</summary>
    public override bool IsLegacyBuffer(string checkpointName) => legacyBuffer.IsMatch(checkpointName);

    /// <summary>A cache with one slot per block, for incremental decoding.</summary>
    public KeyValueCache NewCache() => new(Gpt2Config.NLayer);
}

/// <summary>
/// HF <c>GPT2Model</c>: token (<c>wte</c>) and learned position (<c>wpe</c>) embeddings, <c>n_layer</c> blocks
/// <c>h.N</c>, a final layer norm <c>ln_f</c>. Returns the last hidden state (as <see cref="ModelOutputs.Logits"/> too).
/// Positions continue from the cache length; masks combine causality with the padding mask (one additive bias).
/// </summary>
public sealed class Gpt2Model : Gpt2PreTrainedModel
{
    public nn.Module<Tensor, Tensor> wte;
    public nn.Module<Tensor, Tensor> wpe;
    public nn.Module<Tensor, Tensor> drop;
    public ModuleList<Gpt2Block> h;
    public nn.Module<Tensor, Tensor> ln_f;

    public Gpt2Model(Gpt2Config config) : base("GPT2Model", config)
    {
        wte = nn.Embedding(config.VocabSize, config.NEmbd);
        wpe = nn.Embedding(config.NPositions, config.NEmbd);
        drop = nn.Dropout(config.EmbdPdrop);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.NLayer).Select(i => new Gpt2Block(config, i)).ToArray());
        ln_f = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
        RegisterComponents();
        InitializeWeights();
    }

    public override bool IsBaseModel => true;

    /// <summary>
    /// HF's <c>_init_weights</c>: linear (Conv1D) weights and embeddings N(0, initializer_range²), biases 0, layer norms
    /// (1, 0); then every <c>c_proj.weight</c> (the two projections that write into the residual stream) N(0, (range/√(2·n_layer))²),
    /// GPT-2 §2.3's 1/√N scaling of residual layers so the stream's variance does not grow with depth.
    /// </summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        double range = Gpt2Config.InitializerRange;
        foreach (var (name, module) in named_modules())
        {
            switch (module)
            {
                case Conv1D conv:
                    conv.weight.normal_(0.0, name.EndsWith("c_proj", StringComparison.Ordinal) ? range / Math.Sqrt(2.0 * Gpt2Config.NLayer) : range);
                    conv.bias.zero_();
                    break;
                case Embedding embedding:
                    embedding.weight!.normal_(0.0, range);
                    break;
                case LayerNorm norm:
                    norm.weight!.fill_(1.0);
                    norm.bias!.zero_();
                    break;
            }
        }
    }

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var ids = inputs.InputIds;
        InputChecks.TokenIds(ids, Gpt2Config.VocabSize, InputNames.InputIds);
        if (inputs.TokenTypeIds is not null)
            throw new ArgumentException("GPT-2 has no token-type embedding", InputNames.TokenTypeIds);
        long batch = ids.shape[0], length = ids.shape[1];
        long past = inputs.Cache?.Length ?? 0;
        if (past + length > Gpt2Config.NPositions)
            throw new ArgumentException(
                $"{past + length} positions ({past} cached + {length} new) exceed n_positions = {Gpt2Config.NPositions}", InputNames.InputIds);
        var device = ids.device;
        var positions = inputs.PositionIds ?? arange(past, past + length, device: device).unsqueeze(0);
        if (inputs.PositionIds is { } given)
        {
            if (given.dim() != 2 || given.shape[1] != length || (given.shape[0] != batch && given.shape[0] != 1))
                throw new ArgumentException($"position ids have shape [{string.Join(",", given.shape)}], expected [{batch},{length}]", InputNames.PositionIds);
            InputChecks.TokenIds(given, Gpt2Config.NPositions, InputNames.PositionIds, "n_positions");
        }
        var x = drop.forward(wte.forward(ids).add(wpe.forward(positions)));
        var dtype = x.dtype;
        var bias = AttentionMath.CausalBias(length, past + length, past, dtype, device);
        if (inputs.AttentionMask is { } mask)
        {
            InputChecks.Mask(mask, batch, past + length, InputNames.AttentionMask);
            // one mask value per masked entry (causal or padding), never two summed to -inf
            bias = bias.add(AttentionMath.PaddingBias(mask, dtype)).clamp_min(AttentionMath.MaskValue(dtype));
        }
        for (int i = 0; i < h.Count; i++) x = h[i].forward(x, bias, inputs.Cache, i);
        x = ln_f.forward(x).MoveToOuterDisposeScope();
        return new ModelOutputs(x, x);
    }
}

/// <summary>
/// HF <c>GPT2LMHeadModel</c>: <see cref="Gpt2Model"/> under <c>transformer</c> and an output projection tied to
/// <c>transformer.wte</c> (read through <see cref="EmbeddingTable.Of"/>, so the tie survives an MPO embedding). No
/// <c>lm_head.weight</c> is saved; one in a checkpoint is accepted and ignored. With labels (= the input ids, -100 for
/// ignored positions) the loss is next-token cross-entropy.
/// </summary>
public sealed class Gpt2LMHeadModel : Gpt2PreTrainedModel, ICausalLanguageModel
{
    public Gpt2Model transformer;

    public Gpt2LMHeadModel(Gpt2Config config) : base("GPT2LMHeadModel", config)
    {
        transformer = new Gpt2Model(config);
        RegisterComponents();
    }

    public override IReadOnlyDictionary<string, string> TiedParameters { get; } =
        new Dictionary<string, string> { ["lm_head.weight"] = "transformer.wte.weight" };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var body = transformer.forward(inputs);
        var logits = nn.functional.linear(body.LastHiddenState, EmbeddingTable.Of(transformer.wte));
        Tensor? loss = null;
        if (inputs.Labels is { } labels)
        {
            InputChecks.TokenLabels(labels, Gpt2Config.VocabSize, inputs.InputIds, InputNames.Labels);
            loss = LanguageModelLoss.NextToken(logits, labels).MoveToOuterDisposeScope();
        }
        return new ModelOutputs(logits.MoveToOuterDisposeScope(), body.LastHiddenState.MoveToOuterDisposeScope(), loss);
    }
}

/// <summary>
/// HF <c>GPT2ForSequenceClassification</c>: <see cref="Gpt2Model"/> under <c>transformer</c> and a bias-free
/// <c>score</c> projection read at each row's last token that is not <c>pad_token_id</c> (GPT-2 has no [CLS]; the last
/// token is the only one that has seen the whole text under the causal mask). As in HF, a config without
/// <c>pad_token_id</c> handles one row at a time only; fine-tuning sets it to the end-of-text id, the padding
/// <see cref="Data.Batching.SequenceFraming.Gpt2"/> uses.
/// </summary>
public sealed class Gpt2ForSequenceClassification : Gpt2PreTrainedModel
{
    public Gpt2Model transformer;
    public nn.Module<Tensor, Tensor> score;

    public Gpt2ForSequenceClassification(Gpt2Config config) : base("GPT2ForSequenceClassification", config)
    {
        transformer = new Gpt2Model(config);
        score = nn.Linear(config.NEmbd, config.NumLabels, hasBias: false);
        RegisterComponents();
        using var _ = no_grad();
        ((Linear)score).weight.normal_(0.0, config.InitializerRange);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "score." };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var ids = inputs.InputIds;
        var body = transformer.forward(inputs);
        long batch = ids.shape[0], length = ids.shape[1];
        Tensor last;
        if (Config.PadTokenId is { } pad)
        {
            // HF's rule: the rightmost position holding a non-pad id (0 when a row is all padding)
            var positions = arange(length, dtype: ScalarType.Int64, device: ids.device);
            last = positions.mul(ids.ne(pad).to(ScalarType.Int64)).argmax(-1);
        }
        else if (batch == 1)
            last = tensor(new[] { length - 1 }, device: ids.device);
        else
            throw new ArgumentException(
                $"GPT-2 classification of {batch} rows needs pad_token_id in the config to find each row's last token " +
                "(set it to the end-of-text id the batches are padded with)", InputNames.InputIds);
        var pooled = body.LastHiddenState[arange(batch, device: ids.device), last];
        var logits = score.forward(pooled);
        var loss = inputs.Labels is { } labels ? HeadLosses.SequenceClassification(logits, labels, Config) : null;
        return new ModelOutputs(logits.MoveToOuterDisposeScope(), body.LastHiddenState.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }
}

/// <summary>GPT-2's registration: <c>model_type</c> "gpt2", the classes Mpo builds.</summary>
public static class Gpt2Family
{
    public static readonly ModelFamily Family = new(
        "gpt2",
        r => Gpt2Config.FromJson(r),
        new Dictionary<string, Func<ModelConfig, PretrainedModel>>
        {
            ["GPT2Model"] = c => new Gpt2Model((Gpt2Config)c),
            ["GPT2LMHeadModel"] = c => new Gpt2LMHeadModel((Gpt2Config)c),
            ["GPT2ForSequenceClassification"] = c => new Gpt2ForSequenceClassification((Gpt2Config)c),
        },
        "GPT2LMHeadModel");
}
