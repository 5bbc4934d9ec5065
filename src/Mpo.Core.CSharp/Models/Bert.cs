using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>BERT (Devlin et al. 2019) as Hugging Face builds it: <c>model_type</c> "bert" and the classes Mpo supports.</summary>
public static class BertFamily
{
    public static readonly ModelFamily Family = new(
        "bert",
        r => BertConfig.FromJson(r),
        new Dictionary<string, Func<ModelConfig, PretrainedModel>>
        {
            ["BertModel"] = c => new BertModel((BertConfig)c),
            ["BertForMaskedLM"] = c => new BertForMaskedLM((BertConfig)c),
            ["BertForSequenceClassification"] = c => new BertForSequenceClassification((BertConfig)c),
        },
        "BertModel");
}

/// <summary>
/// What every BERT class shares (HF's <c>BertPreTrainedModel</c>): the <c>bert.</c> prefix of the body, tolerance
/// of the <c>embeddings.position_ids</c> buffer older checkpoints carry, and HF's initialization.
/// </summary>
public abstract class BertPreTrainedModel : PretrainedModel
{
    private protected readonly BertConfig config;

    private protected BertPreTrainedModel(string architecture, BertConfig config) : base(architecture, config)
    {
        this.config = config;
    }


    public override string BasePrefix => "bert";
    public override bool IsLegacyBuffer(string checkpointName) => EncoderEmbeddings.IsLegacyBuffer(checkpointName);
}

/// <summary>
/// The bare BERT encoder (HF <c>BertModel</c>): embeddings, <c>num_hidden_layers</c> post-LN Transformer layers and
/// the pooler tanh(W·h_[CLS] + b). <see cref="ModelOutputs.Logits"/> is the last hidden state.
/// </summary>
public sealed class BertModel : BertPreTrainedModel
{
    readonly EncoderEmbeddings embeddings;
    readonly BertEncoder encoder;
    readonly BertPooler? pooler;

    public BertModel(BertConfig config) : this(config, addPoolingLayer: true)
    {
        Initialize();
    }

    /// <summary>The body inside a head class; HF's masked-LM head builds it without the pooler.</summary>
    internal BertModel(BertConfig config, bool addPoolingLayer) : base("BertModel", config)
    {
        embeddings = new EncoderEmbeddings(config.VocabSize, config.HiddenSize, config.MaxPositionEmbeddings,
                                           config.TypeVocabSize, config.PadTokenId, config.LayerNormEps, config.HiddenDropoutProb);
        encoder = new BertEncoder(config);
        pooler = addPoolingLayer ? new BertPooler(config.HiddenSize) : null;
        RegisterComponents();
    }

    public override bool IsBaseModel => true;
    public override IReadOnlyList<string> HeadPrefixes => new[] { "pooler." };
    /// <summary>Sentence encoders exported without the pooler (arctic-embed) still load as BertModel.</summary>
    public override IReadOnlyList<string> OptionalOnLoad => new[] { "pooler." };

    /// <summary>The token embedding module (current one, after any swap) that tied heads read.</summary>
    internal nn.Module<Tensor, Tensor> WordEmbeddings => embeddings.WordEmbeddings;

    /// <summary>HF's initialization of every module under <paramref name="root"/> (this body and a head's layers).</summary>
    internal void Initialize(nn.Module? root = null)
    {
        Blocks.Initialization.Normal(root ?? this, config.InitializerRange);
        embeddings.ZeroPaddingRow();
    }

    /// <summary>Last hidden state [batch, seq, hidden] and, with a pooler, the pooled [CLS] vector [batch, hidden].</summary>
    internal (Tensor Hidden, Tensor? Pooled) Encode(ModelInputs inputs)
    {
        EncoderIO.RejectDecoderArguments(inputs, Architecture);
        using var scope = NewDisposeScope();
        var x = embeddings.Forward(inputs.InputIds, inputs.TokenTypeIds);
        var bias = EncoderIO.AttentionBias(inputs, x.dtype);
        var hidden = encoder.Forward(x, bias);
        var pooled = pooler?.Forward(hidden);
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
/// BERT with the masked-LM head (HF <c>BertForMaskedLM</c>): transform (dense → act → LayerNorm), then the decoder
/// tied to the word embeddings plus <c>cls.predictions.bias</c>. HF builds the body without a pooler here.
/// </summary>
public sealed class BertForMaskedLM : BertPreTrainedModel
{
    readonly BertModel bert;
    readonly BertOnlyMLMHead cls;

    public BertForMaskedLM(BertConfig config) : base("BertForMaskedLM", config)
    {
        bert = new BertModel(config, addPoolingLayer: false);
        cls = new BertOnlyMLMHead(config);
        RegisterComponents();
        bert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "cls." };
    /// <summary>bert-base checkpoints name this class but carry BertForPreTraining's pooler and next-sentence head.</summary>
    public override IReadOnlyList<string> IgnoredOnLoad => new[] { "bert.pooler.", "cls.seq_relationship." };

    /// <summary>HF's decoder is the word embedding (and its bias <c>cls.predictions.bias</c>); older checkpoints store
    /// both copies.</summary>
    public override IReadOnlyDictionary<string, string> TiedParameters => new Dictionary<string, string>
    {
        ["cls.predictions.decoder.weight"] = "bert.embeddings.word_embeddings.weight",
        ["cls.predictions.decoder.bias"] = "cls.predictions.bias",
    };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (hidden, _) = bert.Encode(inputs);
        var logits = cls.predictions.Forward(hidden, bert.WordEmbeddings);
        var loss = inputs.Labels is { } labels ? HeadLosses.MaskedLanguageModel(logits, labels) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary>
/// BERT with a classification/regression head on the pooled [CLS] vector (HF <c>BertForSequenceClassification</c>):
/// dropout (<c>classifier_dropout</c>, else <c>hidden_dropout_prob</c>) then <c>classifier</c>.
/// </summary>
public sealed class BertForSequenceClassification : BertPreTrainedModel
{
    readonly BertModel bert;
    nn.Module<Tensor, Tensor> classifier;
    readonly double dropout;

    public BertForSequenceClassification(BertConfig config) : base("BertForSequenceClassification", config)
    {
        bert = new BertModel(config, addPoolingLayer: true);
        classifier = nn.Linear(config.HiddenSize, config.NumLabels);
        dropout = config.ClassifierDropout ?? config.HiddenDropoutProb;
        RegisterComponents();
        bert.Initialize(this);
    }

    public override IReadOnlyList<string> HeadPrefixes => new[] { "bert.pooler.", "classifier." };

    public override ModelOutputs forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (hidden, pooled) = bert.Encode(inputs);
        var logits = classifier.forward(nn.functional.dropout(pooled!, dropout, training));
        var loss = inputs.Labels is { } labels ? HeadLosses.SequenceClassification(logits, labels, config) : null;
        return EncoderIO.Outputs(logits, hidden, loss);
    }
}

/// <summary><c>encoder</c>: the layer stack, <c>encoder.layer.N</c>.</summary>
sealed class BertEncoder : nn.Module
{
    readonly ModuleList<BertLayer> layer;

    internal BertEncoder(BertConfig config) : base("BertEncoder")
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        foreach (var l in layer) x = l.Forward(x, bias);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One post-LN layer under HF's names: <c>attention.self.{query,key,value}</c>, <c>attention.output.{dense,LayerNorm}</c>,
/// <c>intermediate.dense</c>, <c>output.{dense,LayerNorm}</c>. Dropout after both output projections. The
/// feed-forward block is one swappable module, <c>feed_forward</c>: a <see cref="FeedForwardView"/> on
/// intermediate.dense → act → output.dense (no parameters of its own, so the state dict is HF's); an MoE layer put
/// there replaces both matrices, which are then dropped (output.LayerNorm stays: it is the residual's add &amp; norm).
/// </summary>
sealed class BertLayer : FeedForwardHost
{
    readonly BertAttention attention;
    BertDense? intermediate;
    readonly BertOutput output;
    nn.Module<Tensor, Tensor> feed_forward;
    readonly int heads;
    readonly double hiddenDropout, attentionDropout;

    internal BertLayer(BertConfig config) : base("BertLayer")
    {
        attention = new BertAttention(config);
        intermediate = new BertDense(config.HiddenSize, config.IntermediateSize);
        output = new BertOutput(config.IntermediateSize, config.HiddenSize, config.LayerNormEps);
        var activation = Activations.Get(config.HiddenAct);
        feed_forward = new FeedForwardView(nameof(intermediate), () => intermediate!.dense, nameof(output), () => output.dense!, activation);
        heads = config.NumAttentionHeads;
        hiddenDropout = config.HiddenDropoutProb;
        attentionDropout = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    protected override void DropDenseFeedForward()
    {
        base.register_module(nameof(intermediate), null!);   // TorchSharp: a null module unregisters the name
        intermediate = null;
        output.DropDense();
    }

    internal Tensor Forward(Tensor x, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var self = attention.self;
        var context = EncoderLayerMath.SelfAttention(x, self.query, self.key, self.value, heads, bias, attentionDropout, training);
        var h = EncoderLayerMath.AddAndNorm(attention.output.dense.forward(context), x, attention.output.LayerNorm, hiddenDropout, training);
        return EncoderLayerMath.AddAndNorm(feed_forward.forward(h), h, output.LayerNorm, hiddenDropout, training).MoveToOuterDisposeScope();
    }
}

/// <summary>HF's BertOutput: the feed-forward's output <c>dense</c> and the layer's closing <c>LayerNorm</c>. The dense
/// matrix goes when an MoE layer replaces the feed-forward block.</summary>
sealed class BertOutput : nn.Module
{
    internal nn.Module<Tensor, Tensor>? dense;
    internal readonly LayerNorm LayerNorm;

    internal BertOutput(long inFeatures, long outFeatures, double eps) : base("BertOutput")
    {
        dense = nn.Linear(inFeatures, outFeatures);
        LayerNorm = nn.LayerNorm(outFeatures, eps);
        RegisterComponents();
    }

    internal void DropDense()
    {
        register_module(nameof(dense), null!);
        dense = null;
    }
}

/// <summary><c>attention</c>: <c>self</c> (the projections) and <c>output</c> (dense + LayerNorm).</summary>
sealed class BertAttention : nn.Module
{
    internal readonly BertSelfAttention self;
    internal readonly BertDenseNorm output;

    internal BertAttention(BertConfig config) : base("BertAttention")
    {
        self = new BertSelfAttention(config.HiddenSize);
        output = new BertDenseNorm(config.HiddenSize, config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }
}

/// <summary><c>attention.self</c>: the query, key and value projections.</summary>
sealed class BertSelfAttention : nn.Module
{
    internal nn.Module<Tensor, Tensor> query, key, value;

    internal BertSelfAttention(long hidden) : base("BertSelfAttention")
    {
        query = nn.Linear(hidden, hidden);
        key = nn.Linear(hidden, hidden);
        value = nn.Linear(hidden, hidden);
        RegisterComponents();
    }
}

/// <summary>A <c>dense</c> + <c>LayerNorm</c> pair: HF's BertSelfOutput, BertOutput and the MLM head's
/// <c>transform</c> all have this shape.</summary>
sealed class BertDenseNorm : nn.Module
{
    internal nn.Module<Tensor, Tensor> dense;
    internal readonly LayerNorm LayerNorm;

    internal BertDenseNorm(long inFeatures, long outFeatures, double eps) : base("BertDenseNorm")
    {
        dense = nn.Linear(inFeatures, outFeatures);
        LayerNorm = nn.LayerNorm(outFeatures, eps);
        RegisterComponents();
    }
}

/// <summary>A lone <c>dense</c>: HF's BertIntermediate.</summary>
sealed class BertDense : nn.Module
{
    internal nn.Module<Tensor, Tensor> dense;

    internal BertDense(long inFeatures, long outFeatures) : base("BertDense")
    {
        dense = nn.Linear(inFeatures, outFeatures);
        RegisterComponents();
    }
}

/// <summary><c>pooler.dense</c>: tanh(W·h_0 + b) on the first ([CLS]) position.</summary>
sealed class BertPooler : nn.Module
{
    nn.Module<Tensor, Tensor> dense;

    internal BertPooler(long hidden) : base("BertPooler")
    {
        dense = nn.Linear(hidden, hidden);
        RegisterComponents();
    }

    internal Tensor Forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        using var first = hidden.select(1, 0);
        return dense.forward(first).tanh().MoveToOuterDisposeScope();
    }
}

/// <summary><c>cls</c>: holds <c>predictions</c> (HF's BertOnlyMLMHead).</summary>
sealed class BertOnlyMLMHead : nn.Module
{
    internal readonly BertLMPredictionHead predictions;

    internal BertOnlyMLMHead(BertConfig config) : base("BertOnlyMLMHead")
    {
        predictions = new BertLMPredictionHead(config);
        RegisterComponents();
    }
}

/// <summary><c>cls.predictions</c>: <c>transform</c> (dense → act → LayerNorm), then the tied decoder + <c>bias</c>.</summary>
sealed class BertLMPredictionHead : nn.Module
{
    readonly BertDenseNorm transform;
    Parameter bias;
    readonly Func<Tensor, Tensor> activation;

    internal BertLMPredictionHead(BertConfig config) : base("BertLMPredictionHead")
    {
        transform = new BertDenseNorm(config.HiddenSize, config.HiddenSize, config.LayerNormEps);
        bias = new Parameter(zeros(config.VocabSize));
        activation = Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    /// <summary>Scores [batch, seq, vocab]; the decoder matrix is read from <paramref name="wordEmbeddings"/> now,
    /// so the tie holds after the embedding is swapped (e.g. for an MPO embedding).</summary>
    internal Tensor Forward(Tensor hidden, nn.Module<Tensor, Tensor> wordEmbeddings)
    {
        using var scope = NewDisposeScope();
        var t = transform.LayerNorm.forward(activation(transform.dense.forward(hidden)));
        return nn.functional.linear(t, EmbeddingTable.Of(wordEmbeddings), bias).MoveToOuterDisposeScope();
    }
}
