using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;

namespace Mpo.SentenceEmbedding;

/// <summary>How token vectors become one sentence vector (sentence-transformers' Pooling module).</summary>
public enum PoolingMode
{
    /// <summary>The mean over the tokens the attention mask keeps (all-MiniLM-L6-v2).</summary>
    Mean,
    /// <summary>The first token's ([CLS]) vector (arctic-embed).</summary>
    Cls,
    /// <summary>The element-wise maximum over the kept tokens.</summary>
    Max,
}

/// <summary>
/// A sentence encoder's pooling, as sentence-transformers stores it beside the transformer's checkpoint:
/// <c>modules.json</c> (Transformer, Pooling, and Normalize when vectors are L2-normalized),
/// <c>1_Pooling/config.json</c> (<c>pooling_mode_mean_tokens</c>, <c>pooling_mode_cls_token</c>, …) and
/// <c>sentence_bert_config.json</c> (<c>max_seq_length</c>). Mpo reads and writes these same files, so a folder
/// moves between the two unchanged.
/// </summary>
/// <param name="Mode">Which pooling.</param>
/// <param name="Normalize">Whether the pooled vector is divided by its L2 norm.</param>
/// <param name="MaxSequenceLength">Longest input in tokens, special tokens included; null: the model's position table.</param>
public sealed record SentencePooling(PoolingMode Mode, bool Normalize, int? MaxSequenceLength = null)
{
    public const string ModulesFile = "modules.json";
    public const string PoolingFolder = "1_Pooling";
    public const string NormalizeFolder = "2_Normalize";
    public const string SentenceConfigFile = "sentence_bert_config.json";

    static readonly (PoolingMode Mode, string Key)[] Keys =
    [
        (PoolingMode.Cls, "pooling_mode_cls_token"),
        (PoolingMode.Mean, "pooling_mode_mean_tokens"),
        (PoolingMode.Max, "pooling_mode_max_tokens"),
    ];

    /// <summary>"mean", "cls" or "max" (as <c>mpo import onnx --pooling</c> takes it); L2-normalized.</summary>
    /// <exception cref="ArgumentException">Another name; the message lists the valid ones.</exception>
    public static SentencePooling Parse(string name) => name.ToLowerInvariant() switch
    {
        "mean" => new SentencePooling(PoolingMode.Mean, true),
        "cls" => new SentencePooling(PoolingMode.Cls, true),
        "max" => new SentencePooling(PoolingMode.Max, true),
        _ => throw new ArgumentException($"pooling '{name}' is not one of mean, cls, max", nameof(name)),
    };

    /// <summary>The pooling a checkpoint folder's sentence-transformers files describe, or null when it has none.</summary>
    /// <exception cref="InvalidDataException">The files are there but malformed or describe no supported pooling;
    /// the message names the file.</exception>
    public static SentencePooling? Read(string folder)
    {
        var modulesPath = Path.Combine(folder, ModulesFile);
        if (!File.Exists(modulesPath)) return null;
        var modules = ParseJson(modulesPath) as JsonArray ?? throw new InvalidDataException($"{modulesPath}: must be a JSON array of modules");
        string? TypePath(string suffix) =>
            modules.OfType<JsonObject>().FirstOrDefault(m => (m["type"]?.GetValue<string>() ?? "").EndsWith(suffix, StringComparison.Ordinal))
                ?["path"]?.GetValue<string>();
        var poolingPath = TypePath(".Pooling") ?? throw new InvalidDataException($"{modulesPath}: no sentence_transformers.models.Pooling module");
        var configPath = Path.Combine(folder, poolingPath, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath}: the Pooling module's config is missing", configPath);
        var config = ParseJson(configPath) as JsonObject ?? throw new InvalidDataException($"{configPath}: must be a JSON object");
        var modes = Keys.Where(k => config[k.Key]?.GetValue<bool>() == true).Select(k => k.Mode).ToList();
        if (modes.Count != 1 || config["pooling_mode_mean_sqrt_len_tokens"]?.GetValue<bool>() == true)
            throw new InvalidDataException($"{configPath}: exactly one of {string.Join(", ", Keys.Select(k => k.Key))} must be true (combined poolings are not supported)");
        int? maxLength = null;
        var sentenceConfig = Path.Combine(folder, SentenceConfigFile);
        if (File.Exists(sentenceConfig) && ParseJson(sentenceConfig)?["max_seq_length"] is JsonValue v && v.TryGetValue<int>(out var n))
            maxLength = n;
        return new SentencePooling(modes[0], TypePath(".Normalize") is not null, maxLength);
    }

    /// <summary>Writes the sentence-transformers files for this pooling into <paramref name="folder"/> (each atomically);
    /// returns their paths relative to the folder.</summary>
    public IReadOnlyList<string> Write(string folder, int dimension)
    {
        var modules = new JsonArray
        {
            Module(0, "", "sentence_transformers.models.Transformer"),
            Module(1, PoolingFolder, "sentence_transformers.models.Pooling"),
        };
        if (Normalize) modules.Add(Module(2, NormalizeFolder, "sentence_transformers.models.Normalize"));
        var pooling = new JsonObject { ["word_embedding_dimension"] = dimension };
        foreach (var (mode, key) in Keys) pooling[key] = mode == Mode;
        pooling["pooling_mode_mean_sqrt_len_tokens"] = false;
        var written = new List<string> { ModulesFile, $"{PoolingFolder}/config.json" };
        Directory.CreateDirectory(Path.Combine(folder, PoolingFolder));
        AtomicFile.WriteAllText(Path.Combine(folder, ModulesFile), Indented(modules));
        AtomicFile.WriteAllText(Path.Combine(folder, PoolingFolder, "config.json"), Indented(pooling));
        // sentence-transformers' Normalize module has no files; its folder only has to exist
        if (Normalize) Directory.CreateDirectory(Path.Combine(folder, NormalizeFolder));
        if (MaxSequenceLength is { } max)
        {
            AtomicFile.WriteAllText(Path.Combine(folder, SentenceConfigFile), Indented(new JsonObject { ["max_seq_length"] = max, ["do_lower_case"] = false }));
            written.Add(SentenceConfigFile);
        }
        return written;
    }

    /// <summary>"mean pooling, L2-normalized" and the like, for reports and model cards.</summary>
    public string Describe() =>
        $"{Mode switch { PoolingMode.Mean => "mean over the attention mask", PoolingMode.Cls => "the [CLS] token", _ => "max over the attention mask" }}" +
        (Normalize ? ", then L2-normalized" : "");

    static JsonObject Module(int index, string path, string type) =>
        new() { ["idx"] = index, ["name"] = index.ToString(), ["path"] = path, ["type"] = type };

    static string Indented(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    static JsonNode? ParseJson(string path)
    {
        try { return JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e); }
    }
}
