using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;

namespace Mpo.Models;

/// <summary>One architecture family: how to read its config and which HF classes (heads) it builds.</summary>
/// <param name="ModelType">HF <c>model_type</c>.</param>
/// <param name="ReadConfig">Parses and validates config.json.</param>
/// <param name="Classes">HF class name → constructor.</param>
/// <param name="DefaultArchitecture">Used when config.json names no class.</param>
public sealed record ModelFamily(
    string ModelType,
    Func<ConfigReader, ModelConfig> ReadConfig,
    IReadOnlyDictionary<string, Func<ModelConfig, PretrainedModel>> Classes,
    string DefaultArchitecture);

/// <summary>The supported families by <c>model_type</c>; the single place a new architecture is registered.</summary>
public static class ModelRegistry
{
    static readonly Dictionary<string, ModelFamily> families = new ModelFamily[]
    {
        Gpt2Family.Family,
        T5Family.Family,
        BertFamily.Family,
        AlbertFamily.Family,
        DistilBertFamily.Family,
    }.ToDictionary(f => f.ModelType);

    public static IReadOnlyCollection<ModelFamily> Families => families.Values;

    public static ModelFamily Family(string modelType, string source) =>
        families.TryGetValue(modelType, out var f) ? f
        : throw new InvalidModelConfigException(source, "model_type",
            $"unknown architecture '{modelType}'; supported: {string.Join(", ", families.Keys.OrderBy(k => k))}");

    /// <summary>Reads and validates a checkpoint's config.json.</summary>
    public static ModelConfig ReadConfig(CheckpointFolder checkpoint)
    {
        string source = Path.Combine(checkpoint.Path, CheckpointFolder.ConfigFile);
        var json = checkpoint.Config ?? throw new FileNotFoundException($"{source}: missing (a checkpoint folder needs its config.json)", source);
        return ReadConfig(json, source);
    }

    /// <summary>Reads and validates a <c>config.json</c> file (or the one in a checkpoint folder) on its own, without
    /// weights; errors name the file (and the key).</summary>
    public static ModelConfig ReadConfigFile(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, CheckpointFolder.ConfigFile) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"{file}: no such config file", file);
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new InvalidModelConfigException(file, "(file)", "must hold a JSON object"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidModelConfigException(file, "(file)", $"not valid JSON: {e.Message}"); }
        return ReadConfig(json, file);
    }

    public static ModelConfig ReadConfig(JsonObject json, string source)
    {
        var reader = new ConfigReader(json, source);
        var config = Family(reader.String("model_type"), source).ReadConfig(reader);
        config.Validate(source);
        return config;
    }

    /// <summary>The class named by config.json <c>architectures</c>, if any.</summary>
    public static string? StoredArchitecture(CheckpointFolder checkpoint) =>
        (checkpoint.Config?["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>();

    /// <summary>
    /// The family's sequence-classification head (HF's <c>AutoModelForSequenceClassification</c> mapping):
    /// <c>BertForSequenceClassification</c> for "bert", …; null where the family has none (T5 classifies text to text).
    /// </summary>
    public static string? SequenceClassificationArchitecture(string modelType) =>
        Family(modelType, "model_type").Classes.Keys.SingleOrDefault(k => k.EndsWith("ForSequenceClassification", StringComparison.Ordinal));

    /// <summary>Builds (randomly initialized) the HF class <paramref name="architecture"/> for <paramref name="config"/>.</summary>
    public static PretrainedModel Create(ModelConfig config, string architecture)
    {
        var family = Family(config.ModelType, "config");
        if (!family.Classes.TryGetValue(architecture, out var create))
            throw new InvalidModelConfigException("config", "architectures",
                $"'{architecture}' is not a {config.ModelType} class Mpo builds; supported: {string.Join(", ", family.Classes.Keys)}");
        return create(config);
    }
}
