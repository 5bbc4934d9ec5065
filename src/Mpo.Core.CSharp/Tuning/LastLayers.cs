using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Models;

namespace Mpo.Tuning;

/// <summary>
/// Fine-tuning only the last k transformer layers (MPOP Table 5, "BERT_10-12" = k 3): those layers, what sits on top
/// of them (the pooler, GPT-2's <c>ln_f</c>, T5's final norms) and the task head are trained; with
/// <see cref="TrainEmbeddings"/> the input embeddings too, as Table 5's #Pr counts them (45.7 M for BERT_10-12 =
/// three layers + embeddings + pooler). Every other parameter is frozen (<c>requires_grad = false</c>), so the
/// trainer's parameter groups leave it out and it gets no optimizer state. T5 trains the last k blocks of the encoder
/// and of the decoder; ALBERT's layer groups are its layers (its depth shares their weights).
/// </summary>
public sealed record LastLayersConfig
{
    /// <summary>k, the layers trained at the top of each stack.</summary>
    public int Layers { get; init; } = 1;
    /// <summary>Also train the input embeddings (Table 5's count includes them).</summary>
    public bool TrainEmbeddings { get; init; } = true;

    static readonly string[] Fields = { "layers", "train_embeddings" };

    public void Validate(string source)
    {
        if (Layers < 1) throw new InvalidTunerConfigException(source, "layers", $"must be at least 1, got {Layers}");
    }

    public JsonObject ToJson() => new() { ["layers"] = Layers, ["train_embeddings"] = TrainEmbeddings };

    /// <summary>Reads <c>{"layers": 3, "train_embeddings": true}</c>; unknown fields are errors naming them.</summary>
    public static LastLayersConfig FromJson(JsonObject json, string source)
    {
        var read = new TunerJson(json, source, Fields);
        var config = new LastLayersConfig();
        if (read.Has("layers")) config = config with { Layers = read.Int("layers") };
        if (read.Has("train_embeddings")) config = config with { TrainEmbeddings = read.Bool("train_embeddings") };
        config.Validate(source);
        return config;
    }
}

/// <summary>Applies <see cref="LastLayersConfig"/> by freezing; reads no weight, so it also counts from a configuration.</summary>
public sealed class LastLayersTuner : IStructuralTuner
{
    public LastLayersTuner(LastLayersConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("last-layers configuration");
        Config = config;
    }

    public LastLayersConfig Config { get; }

    /// <summary>Whether the parameter <paramref name="name"/> of a model with <paramref name="layers"/> per stack is trained.</summary>
    public bool Trains(string modelType, string name, IReadOnlyDictionary<string, int> layers)
    {
        var part = ModelParts.Of(modelType, name);
        return part.Kind switch
        {
            PartKind.Layer => part.Index >= layers[part.Stack] - Config.Layers,
            PartKind.Embeddings => Config.TrainEmbeddings,
            PartKind.Top or PartKind.Head => true,
            _ => false,
        };
    }

    /// <summary>Freezes every parameter of <paramref name="model"/> but the last k layers' (and the top, head and,
    /// if asked, embeddings); throws naming <c>layers</c> when a stack has fewer than k layers.</summary>
    public ParameterCount Apply(PretrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var type = model.Config.ModelType;
        var parameters = model.named_parameters().ToList();
        var layers = ModelParts.LayerCounts(type, parameters.Select(p => p.name));
        if (layers.Count == 0) throw new ArgumentException($"layers: this {model.Architecture} has no numbered transformer layers", "layers");
        foreach (var (stack, count) in layers)
            if (Config.Layers > count)
                throw new ArgumentException(
                    $"layers: {Config.Layers} last layers asked for, but {(stack == "" ? "this " + model.Architecture : "its " + stack)} has only {count}", "layers");
        foreach (var (name, p) in parameters) p.requires_grad = Trains(type, name, layers);
        return ParameterCounting.Count(model);
    }

    void IStructuralTuner.ApplyShapes(PretrainedModel model) => Apply(model);
}
