using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>ALBERT (Lan et al. 2020), MPOP's main model, as Hugging Face builds it: <c>model_type</c> "albert".</summary>
public static class AlbertFamily
{
    public static readonly ModelFamily Family = new(
        "albert",
        r => AlbertConfig.FromJson(r),
        new Dictionary<string, Func<ModelConfig, PretrainedModel>>
        {
            ["AlbertModel"] = c => new AlbertModel((AlbertConfig)c),
            ["AlbertForMaskedLM"] = c => new AlbertForMaskedLM((AlbertConfig)c),
            ["AlbertForSequenceClassification"] = c => new AlbertForSequenceClassification((AlbertConfig)c),
        },
        "AlbertModel");
}

/// <summary>
/// What every ALBERT class shares (HF's <c>AlbertPreTrainedModel</c>): the <c>albert.</c> prefix, tolerance of the
/// legacy <c>embeddings.position_ids</c> buffer, HF's initialization.
/// </summary>
public abstract class AlbertPreTrainedModel : PretrainedModel
{
    private protected readonly AlbertConfig config;

    private protected AlbertPreTrainedModel(string architecture, AlbertConfig config) : base(architecture, config)
    {
        this.config = config;
    }


    public override string BasePrefix => "albert";
    public override bool IsLegacyBuffer(string checkpointName) => EncoderEmbeddings.IsLegacyBuffer(checkpointName);
}

/// <summary>
/// The bare ALBERT encoder (HF <c>AlbertModel</c>): embeddings of width <c>embedding_size</c>, mapped to the hidden
/// width by <c>encoder.embedding_hidden_mapping_in</c>, then <c>num_hidden_layers</c> applications of the shared layer
/// groups, and the pooler tanh(W·h_[CLS] + b) (<c>pooler</c>, a plain Linear in ALBERT).
/// <see cref="ModelOutputs.Logits"/> is the last hidden state.
/// </summary>
public sealed class AlbertModel : AlbertPreTrainedModel
{
    readonly EncoderEmbeddings embeddings;
    readonly AlbertTransformer encoder;
    nn.Module<Tensor, Tensor>? pooler;

    public AlbertModel(AlbertConfig config) : this(config, addPoolingLayer: true)
    {
        Initialize();
    }

    /// <summary>The body inside a head class; HF's masked-LM head builds it without the pooler.</summary>
    internal AlbertModel(AlbertConfig config, bool addPoolingLayer) : base("AlbertModel", config)
    {
        embeddings = new EncoderEmbeddings(config.VocabSize, config.EmbeddingSize, config.MaxPositionEmbeddings,
                                           config.TypeVocabSize, config.PadTokenId, config.LayerNormEps, config.HiddenDropoutProb);
        encoder = new AlbertTransformer(config);
        pooler = addPoolingLayer ? nn.Linear(config.HiddenSize, config.HiddenSize) : null;
        RegisterComponents();
    }

    public override bool IsBaseModel => true;
    public override IReadOnlyList<string> HeadPrefixes => new[] { "pooler." };

    internal nn.Module<Tensor, Tensor> WordEmbeddings => embeddings.WordEmbeddings;

    internal void Initialize(nn.Module? root = null)
    {
        Blocks.Initialization.Normal(root ?? this, config.InitializerRange);
        embeddings.ZeroPaddingRow();
    }

    /// <summary>Last hidden state [batch, seq, hidden] and, with a pooler, the pooled [CLS] vector.</summary>
    internal (Tensor Hidden, Tensor? Pooled) Encode(ModelInputs inputs)
    {
        EncoderIO.RejectDecoderArguments(inputs, Architecture);
        using var scope = NewDisposeScope();
        var x = embeddings.Forward(inputs.InputIds, inputs.TokenTypeIds);
        var bias = EncoderIO.AttentionBias(inputs, x.dtype);
        var hidden = encoder.Forward(x, bias);
        Tensor? pooled = null;
        if (pooler is not null)
        {
            using var first = hidden.select(1, 0);
            pooled = pooler.forward(first).tanh();
        }
        return (hidden.MoveToOuterDisposeScope(), pooled?.MoveToOuterDisposeScope());
    }

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (hidden, _) = Encode(inputs);
        return EncoderIO.Outputs(hidden, hidden, null);
    }
}

/// <summary>
/// ALBERT with the masked-LM head (HF <c>AlbertForMaskedLM</c>): <c>predictions.dense</c> (hidden → embedding_size)
/// → act → <c>predictions.LayerNorm</c> → decoder tied to the word embeddings + <c>predictions.bias</c>.
/// The LayerNorm uses <c>layer_norm_eps</c>, as current HF does (versions before 4.x used torch's default 1e-5).
/// </summary>
public sealed class AlbertForMaskedLM : AlbertPreTrainedModel
{
    readonly AlbertModel albert;
    readonly AlbertMLMHead predictions;

    public AlbertForMaskedLM(AlbertConfig config) : base("AlbertForMaskedLM", config)
    {
        albert = new AlbertModel(config, addPoolingLayer: false);
        predictions = new AlbertMLMHead(config);
        RegisterComponents();
        albert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "predictions." };
    /// <summary>albert-base/large checkpoints name this class but carry the pooler (and, from pre-training, the
    /// sentence-order head).</summary>
    public override IReadOnlyList<string> IgnoredOnLoad => new[] { "albert.pooler.", "sop_classifier." };

    public override IReadOnlyDictionary<string, string> TiedParameters => new Dictionary<string, string>
    {
        ["predictions.decoder.weight"] = "albert.embeddings.word_embeddings.weight",
        ["predictions.decoder.bias"] = "predictions.bias",
    };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (hidden, _) = albert.Encode(inputs);
        var logits = predictions.Forward(hidden, albert.WordEmbeddings);
        var loss = inputs.Labels is { } labels ? HeadLosses.MaskedLanguageModel(logits, labels) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary>
/// ALBERT with a classification/regression head on the pooled [CLS] vector (HF <c>AlbertForSequenceClassification</c>):
/// dropout (<c>classifier_dropout_prob</c>) then <c>classifier</c>.
/// </summary>
public sealed class AlbertForSequenceClassification : AlbertPreTrainedModel
{
    readonly AlbertModel albert;
    nn.Module<Tensor, Tensor> classifier;

    public AlbertForSequenceClassification(AlbertConfig config) : base("AlbertForSequenceClassification", config)
    {
        albert = new AlbertModel(config, addPoolingLayer: true);
        classifier = nn.Linear(config.HiddenSize, config.NumLabels);
        RegisterComponents();
        albert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "albert.pooler.", "classifier." };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (hidden, pooled) = albert.Encode(inputs);
        var logits = classifier.forward(nn.functional.dropout(pooled!, config.ClassifierDropoutProb, training));
        var loss = inputs.Labels is { } labels ? HeadLosses.SequenceClassification(logits, labels, config) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary>
/// <c>encoder</c>: <c>embedding_hidden_mapping_in</c> and the shared <c>albert_layer_groups.G</c>. Application i of
/// <c>num_hidden_layers</c> runs group <see cref="AlbertConfig.GroupOf"/>(i), so with one group every layer is the
/// same parameters (ALBERT §3.1, cross-layer parameter sharing).
/// </summary>
sealed class AlbertTransformer : nn.Module
{
    nn.Module<Tensor, Tensor> embedding_hidden_mapping_in;
    readonly ModuleList<AlbertLayerGroup> albert_layer_groups;
    readonly int[] groupOfLayer;

    internal AlbertTransformer(AlbertConfig config) : base("AlbertTransformer")
    {
        embedding_hidden_mapping_in = nn.Linear(config.EmbeddingSize, config.HiddenSize);
        albert_layer_groups = new ModuleList<AlbertLayerGroup>(
            Enumerable.Range(0, config.NumHiddenGroups).Select(_ => new AlbertLayerGroup(config)).ToArray());
        groupOfLayer = Enumerable.Range(0, config.NumHiddenLayers).Select(config.GroupOf).ToArray();
        RegisterComponents();
    }

    internal Tensor Forward(Tensor embedded, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var x = embedding_hidden_mapping_in.forward(embedded);
        foreach (int g in groupOfLayer) x = albert_layer_groups[g].Forward(x, bias);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary><c>albert_layer_groups.G</c>: <c>albert_layers.0..inner_group_num-1</c>, run in order.</summary>
sealed class AlbertLayerGroup : nn.Module
{
    readonly ModuleList<AlbertLayer> albert_layers;

    internal AlbertLayerGroup(AlbertConfig config) : base("AlbertLayerGroup")
    {
        albert_layers = new ModuleList<AlbertLayer>(Enumerable.Range(0, config.InnerGroupNum).Select(_ => new AlbertLayer(config)).ToArray());
        RegisterComponents();
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in albert_layers) x = layer.Forward(x, bias);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One post-LN layer under HF's ALBERT names: <c>attention.{query,key,value,dense,LayerNorm}</c>, <c>ffn</c>,
/// <c>ffn_output</c>, <c>full_layer_layer_norm</c>. Dropout follows the attention output only; HF's ALBERT applies
/// none to the feed-forward output. The feed-forward block is one swappable module, <c>feed_forward</c>: a
/// <see cref="FeedForwardView"/> on ffn → act → ffn_output; an MoE layer put there replaces both (then dropped).
/// ALBERT shares this layer across depth, so one MoE layer serves every depth.
/// </summary>
sealed class AlbertLayer : FeedForwardHost
{
    readonly LayerNorm full_layer_layer_norm;
    readonly AlbertAttention attention;
    nn.Module<Tensor, Tensor>? ffn;
    nn.Module<Tensor, Tensor>? ffn_output;
    nn.Module<Tensor, Tensor> feed_forward;
    readonly int heads;
    readonly double hiddenDropout, attentionDropout;

    internal AlbertLayer(AlbertConfig config) : base("AlbertLayer")
    {
        full_layer_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        attention = new AlbertAttention(config);
        ffn = nn.Linear(config.HiddenSize, config.IntermediateSize);
        ffn_output = nn.Linear(config.IntermediateSize, config.HiddenSize);
        feed_forward = new FeedForwardView(nameof(ffn), () => ffn!, nameof(ffn_output), () => ffn_output!, Activations.Get(config.HiddenAct));
        heads = config.NumAttentionHeads;
        hiddenDropout = config.HiddenDropoutProb;
        attentionDropout = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    protected override void DropDenseFeedForward()
    {
        base.register_module(nameof(ffn), null!);   // TorchSharp: a null module unregisters the name
        base.register_module(nameof(ffn_output), null!);
        ffn = null;
        ffn_output = null;
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var a = attention;
        var context = EncoderLayerMath.SelfAttention(x, a.query, a.key, a.value, heads, bias, attentionDropout, training);
        var h = EncoderLayerMath.AddAndNorm(a.dense.forward(context), x, a.LayerNorm, hiddenDropout, training);
        return EncoderLayerMath.AddAndNorm(feed_forward.forward(h), h, full_layer_layer_norm, 0.0, training).MoveToOuterDisposeScope();
    }
}

/// <summary><c>attention</c>: query, key, value, output <c>dense</c> and <c>LayerNorm</c> in one module (ALBERT
/// folds BERT's <c>self</c>/<c>output</c> split away).</summary>
sealed class AlbertAttention : nn.Module
{
    internal nn.Module<Tensor, Tensor> query, key, value, dense;
    internal readonly LayerNorm LayerNorm;

    internal AlbertAttention(AlbertConfig config) : base("AlbertAttention")
    {
        long h = config.HiddenSize;
        query = nn.Linear(h, h);
        key = nn.Linear(h, h);
        value = nn.Linear(h, h);
        dense = nn.Linear(h, h);
        LayerNorm = nn.LayerNorm(h, config.LayerNormEps);
        RegisterComponents();
    }
}

/// <summary><c>predictions</c>: <c>dense</c> (hidden → embedding_size) → act → <c>LayerNorm</c> → tied decoder +
/// <c>bias</c>.</summary>
sealed class AlbertMLMHead : nn.Module
{
    readonly LayerNorm LayerNorm;
    Parameter bias;
    nn.Module<Tensor, Tensor> dense;
    readonly Func<Tensor, Tensor> activation;

    internal AlbertMLMHead(AlbertConfig config) : base("AlbertMLMHead")
    {
        LayerNorm = nn.LayerNorm(config.EmbeddingSize, config.LayerNormEps);
        bias = new Parameter(zeros(config.VocabSize));
        dense = nn.Linear(config.HiddenSize, config.EmbeddingSize);
        activation = Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    /// <summary>Scores [batch, seq, vocab]; the decoder is the current word embedding table (see
    /// <see cref="EmbeddingTable.Of"/>).</summary>
    internal Tensor Forward(Tensor hidden, nn.Module<Tensor, Tensor> wordEmbeddings)
    {
        using var scope = NewDisposeScope();
        var t = LayerNorm.forward(activation(dense.forward(hidden)));
        return nn.functional.linear(t, EmbeddingTable.Of(wordEmbeddings), bias).MoveToOuterDisposeScope();
    }
}
