using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>DistilBERT (Sanh et al. 2019) as Hugging Face builds it: <c>model_type</c> "distilbert".</summary>
public static class DistilBertFamily
{
    public static readonly ModelFamily Family = new(
        "distilbert",
        r => DistilBertConfig.FromJson(r),
        new Dictionary<string, Func<ModelConfig, PretrainedModel>>
        {
            ["DistilBertModel"] = c => new DistilBertModel((DistilBertConfig)c),
            ["DistilBertForMaskedLM"] = c => new DistilBertForMaskedLM((DistilBertConfig)c),
            ["DistilBertForSequenceClassification"] = c => new DistilBertForSequenceClassification((DistilBertConfig)c),
        },
        "DistilBertModel");
}

/// <summary>
/// What every DistilBERT class shares (HF's <c>DistilBertPreTrainedModel</c>): the <c>distilbert.</c> prefix,
/// tolerance of the legacy <c>embeddings.position_ids</c> buffer, HF's initialization.
/// </summary>
public abstract class DistilBertPreTrainedModel : PretrainedModel
{
    private protected readonly DistilBertConfig config;

    private protected DistilBertPreTrainedModel(string architecture, DistilBertConfig config) : base(architecture, config)
    {
        this.config = config;
    }


    public override string BasePrefix => "distilbert";
    public override bool IsLegacyBuffer(string checkpointName) => EncoderEmbeddings.IsLegacyBuffer(checkpointName);
}

/// <summary>
/// The bare DistilBERT encoder (HF <c>DistilBertModel</c>): word + position embeddings (no token types), then
/// <c>n_layers</c> post-LN layers; no pooler. <see cref="ModelOutputs.Logits"/> is the last hidden state.
/// </summary>
public sealed class DistilBertModel : DistilBertPreTrainedModel
{
    readonly EncoderEmbeddings embeddings;
    readonly DistilBertTransformer transformer;

    public DistilBertModel(DistilBertConfig config) : this(config, initialize: true) { }

    internal DistilBertModel(DistilBertConfig config, bool initialize) : base("DistilBertModel", config)
    {
        embeddings = new EncoderEmbeddings(config.VocabSize, config.Dim, config.MaxPositionEmbeddings, 0,
                                           config.PadTokenId, DistilBertConfig.LayerNormEps, config.Dropout);
        transformer = new DistilBertTransformer(config);
        RegisterComponents();
        if (initialize) Initialize();
    }

    public override bool IsBaseModel => true;

    internal nn.Module<Tensor, Tensor> WordEmbeddings => embeddings.WordEmbeddings;

    /// <summary>HF's initialization of every module under <paramref name="root"/>; with <c>sinusoidal_pos_embds</c> the
    /// position table becomes the fixed sinusoids of Vaswani et al. (§3.5) and stops training, as in HF.</summary>
    internal void Initialize(nn.Module? root = null)
    {
        Blocks.Initialization.Normal(root ?? this, config.InitializerRange);
        embeddings.ZeroPaddingRow();
        if (config.SinusoidalPosEmbds && embeddings.PositionEmbeddings is Embedding table)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var weight = table.weight!;
            long positions = weight.shape[0], dim = weight.shape[1];
            var pos = arange(positions, dtype: ScalarType.Float64).unsqueeze(1);
            var j = arange(dim, dtype: ScalarType.Float64).div(2, rounding_mode: RoundingMode.floor).mul(2).unsqueeze(0);
            var angle = pos.div(j.div(dim).mul(Math.Log(10000.0)).exp());   // pos / 10000^(2⌊j/2⌋/dim)
            var even = arange(0, dim, 2);
            var odd = arange(1, dim, 2);
            weight.index_copy_(1, even, angle.index_select(1, even).sin().to(weight.dtype));
            weight.index_copy_(1, odd, angle.index_select(1, odd).cos().to(weight.dtype));
            weight.requires_grad = false;
        }
    }

    /// <summary>Last hidden state [batch, seq, dim].</summary>
    internal Tensor Encode(ModelInputs inputs)
    {
        EncoderIO.RejectDecoderArguments(inputs, Architecture);
        using var scope = NewDisposeScope();
        var x = embeddings.Forward(inputs.InputIds, inputs.TokenTypeIds);
        var bias = EncoderIO.AttentionBias(inputs, x.dtype);
        return transformer.Forward(x, bias).MoveToOuterDisposeScope();
    }

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var hidden = Encode(inputs);
        return EncoderIO.Outputs(hidden, hidden, null);
    }
}

/// <summary>
/// DistilBERT with the masked-LM head (HF <c>DistilBertForMaskedLM</c>): <c>vocab_transform</c> → act →
/// <c>vocab_layer_norm</c> → <c>vocab_projector</c>, whose weight is the word embedding table and whose bias is its own.
/// </summary>
public sealed class DistilBertForMaskedLM : DistilBertPreTrainedModel
{
    readonly DistilBertModel distilbert;
    nn.Module<Tensor, Tensor> vocab_transform;
    readonly LayerNorm vocab_layer_norm;
    readonly DistilBertVocabProjector vocab_projector;
    readonly Func<Tensor, Tensor> activation;

    public DistilBertForMaskedLM(DistilBertConfig config) : base("DistilBertForMaskedLM", config)
    {
        distilbert = new DistilBertModel(config, initialize: false);
        vocab_transform = nn.Linear(config.Dim, config.Dim);
        vocab_layer_norm = nn.LayerNorm(config.Dim, DistilBertConfig.LayerNormEps);
        vocab_projector = new DistilBertVocabProjector(config.VocabSize);
        activation = Activations.Get(config.Activation, "config", "activation");
        RegisterComponents();
        distilbert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "vocab_transform.", "vocab_layer_norm.", "vocab_projector." };

    public override IReadOnlyDictionary<string, string> TiedParameters => new Dictionary<string, string>
    {
        ["vocab_projector.weight"] = "distilbert.embeddings.word_embeddings.weight",
    };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var hidden = distilbert.Encode(inputs);
        var t = vocab_layer_norm.forward(activation(vocab_transform.forward(hidden)));
        var logits = vocab_projector.Forward(t, distilbert.WordEmbeddings);
        var loss = inputs.Labels is { } labels ? HeadLosses.MaskedLanguageModel(logits, labels) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary>
/// DistilBERT with a classification/regression head (HF <c>DistilBertForSequenceClassification</c>): the first
/// position's hidden state → <c>pre_classifier</c> → ReLU → dropout (<c>seq_classif_dropout</c>) → <c>classifier</c>.
/// </summary>
public sealed class DistilBertForSequenceClassification : DistilBertPreTrainedModel
{
    readonly DistilBertModel distilbert;
    nn.Module<Tensor, Tensor> pre_classifier;
    nn.Module<Tensor, Tensor> classifier;

    public DistilBertForSequenceClassification(DistilBertConfig config) : base("DistilBertForSequenceClassification", config)
    {
        distilbert = new DistilBertModel(config, initialize: false);
        pre_classifier = nn.Linear(config.Dim, config.Dim);
        classifier = nn.Linear(config.Dim, config.NumLabels);
        RegisterComponents();
        distilbert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "pre_classifier.", "classifier." };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var hidden = distilbert.Encode(inputs);
        var pooled = nn.functional.relu(pre_classifier.forward(hidden.select(1, 0)));
        var logits = classifier.forward(nn.functional.dropout(pooled, config.SeqClassifDropout, training));
        var loss = inputs.Labels is { } labels ? HeadLosses.SequenceClassification(logits, labels, config) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary><c>transformer</c>: <c>transformer.layer.N</c>.</summary>
sealed class DistilBertTransformer : nn.Module
{
    readonly ModuleList<DistilBertTransformerBlock> layer;

    internal DistilBertTransformer(DistilBertConfig config) : base("Transformer")
    {
        layer = new ModuleList<DistilBertTransformerBlock>(
            Enumerable.Range(0, config.NLayers).Select(_ => new DistilBertTransformerBlock(config)).ToArray());
        RegisterComponents();
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        foreach (var block in layer) x = block.Forward(x, bias);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One post-LN layer under HF's DistilBERT names: <c>attention.{q_lin,k_lin,v_lin,out_lin}</c>, <c>sa_layer_norm</c>,
/// <c>ffn.{lin1,lin2}</c>, <c>output_layer_norm</c>. HF applies no dropout to the attention output here, only to the
/// feed-forward output.
/// </summary>
sealed class DistilBertTransformerBlock : nn.Module
{
    readonly DistilBertAttention attention;
    readonly LayerNorm sa_layer_norm;
    /// <summary>The feed-forward block (<see cref="DistilBertFfn"/>, or an MoE layer).</summary>
    nn.Module<Tensor, Tensor> ffn;
    readonly LayerNorm output_layer_norm;
    readonly int heads;
    readonly double dropout, attentionDropout;

    internal DistilBertTransformerBlock(DistilBertConfig config) : base("TransformerBlock")
    {
        attention = new DistilBertAttention(config.Dim);
        sa_layer_norm = nn.LayerNorm(config.Dim, DistilBertConfig.LayerNormEps);
        ffn = new DistilBertFfn(config.Dim, config.HiddenDim, Activations.Get(config.Activation, "config", "activation"));
        output_layer_norm = nn.LayerNorm(config.Dim, DistilBertConfig.LayerNormEps);
        heads = config.NHeads;
        dropout = config.Dropout;
        attentionDropout = config.AttentionDropout;
        RegisterComponents();
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var a = attention;
        var context = EncoderLayerMath.SelfAttention(x, a.q_lin, a.k_lin, a.v_lin, heads, bias, attentionDropout, training);
        var h = EncoderLayerMath.AddAndNorm(a.out_lin.forward(context), x, sa_layer_norm, 0.0, training);
        return EncoderLayerMath.AddAndNorm(ffn.forward(h), h, output_layer_norm, dropout, training).MoveToOuterDisposeScope();
    }
}

/// <summary><c>attention</c> (HF's MultiHeadSelfAttention): the four projections.</summary>
sealed class DistilBertAttention : nn.Module
{
    internal nn.Module<Tensor, Tensor> q_lin, k_lin, v_lin, out_lin;

    internal DistilBertAttention(long dim) : base("MultiHeadSelfAttention")
    {
        q_lin = nn.Linear(dim, dim);
        k_lin = nn.Linear(dim, dim);
        v_lin = nn.Linear(dim, dim);
        out_lin = nn.Linear(dim, dim);
        RegisterComponents();
    }
}

/// <summary><c>ffn</c>: <c>lin1</c> (dim → hidden_dim), the activation, <c>lin2</c> (hidden_dim → dim).</summary>
sealed class DistilBertFfn : nn.Module<Tensor, Tensor>, IFeedForward
{
    internal nn.Module<Tensor, Tensor> lin1, lin2;
    readonly Func<Tensor, Tensor> activation;

    internal DistilBertFfn(long dim, long hiddenDim, Func<Tensor, Tensor> activation) : base("FFN")
    {
        lin1 = nn.Linear(dim, hiddenDim);
        lin2 = nn.Linear(hiddenDim, dim);
        this.activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return lin2.forward(activation(lin1.forward(x))).MoveToOuterDisposeScope();
    }

    public string InputName => nameof(lin1);
    public string OutputName => nameof(lin2);
    public nn.Module<Tensor, Tensor> Input => lin1;
    public nn.Module<Tensor, Tensor> Output => lin2;
    public Func<Tensor, Tensor> Activation => activation;
    public double InnerDropout => 0.0;
    public double OutputDropout => 0.0;
}

/// <summary><c>vocab_projector</c>: only its <c>bias</c> is a parameter; the weight is the word embedding table,
/// read on every forward (<see cref="EmbeddingTable.Of"/>) so the tie survives a swapped embedding.</summary>
sealed class DistilBertVocabProjector : nn.Module
{
    Parameter bias;

    internal DistilBertVocabProjector(long vocabSize) : base("VocabProjector")
    {
        bias = new Parameter(zeros(vocabSize));
        RegisterComponents();
    }

    internal Tensor Forward(Tensor x, nn.Module<Tensor, Tensor> wordEmbeddings) =>
        nn.functional.linear(x, EmbeddingTable.Of(wordEmbeddings), bias);
}
