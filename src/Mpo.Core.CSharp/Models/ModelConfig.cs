using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace Mpo.Models;

/// <summary>
/// What every architecture's configuration shares, read from and written to Hugging Face's <c>config.json</c> keys
/// (so a folder Mpo writes loads in <c>transformers</c> and vice versa). Families derive one record each
/// (<c>BertConfig</c>, <c>Gpt2Config</c>, …) with their own keys; the shared keys live here.
/// </summary>
public abstract record ModelConfig
{
    /// <summary>HF <c>model_type</c> ("bert", "albert", "distilbert", "gpt2", "t5").</summary>
    public abstract string ModelType { get; }
    public int VocabSize { get; init; }
    /// <summary>Longest sequence the position table allows; null where positions are relative (T5).</summary>
    public abstract int? MaxPositions { get; }
    /// <summary>Class names of a classification head (HF <c>id2label</c>); one entry for regression.</summary>
    public IReadOnlyList<string> Labels { get; init; } = new[] { "LABEL_0", "LABEL_1" };
    /// <summary>HF <c>problem_type</c>: "regression", "single_label_classification" or null (inferred).</summary>
    public string? ProblemType { get; init; }
    public int? PadTokenId { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    public int NumLabels => Labels.Count;

    /// <summary>This configuration with other labels (a fresh classification head); for callers without C#'s <c>with</c>.</summary>
    public ModelConfig WithLabels(IReadOnlyList<string> labels) => this with { Labels = labels };
    /// <summary>Regression when asked for, or when there is one label (HF's rule).</summary>
    public bool IsRegression => ProblemType == "regression" || (ProblemType is null && NumLabels == 1);

    /// <summary>This configuration as <c>config.json</c> content for the given head class (HF <c>architectures</c>).</summary>
    public JsonObject ToJson(string architecture)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(architecture),
            ["model_type"] = ModelType,
            ["vocab_size"] = VocabSize,
        };
        WriteFamilyKeys(json);
        var id2label = new JsonObject();
        var label2id = new JsonObject();
        for (int i = 0; i < Labels.Count; i++) { id2label[i.ToString()] = Labels[i]; label2id[Labels[i]] = i; }
        json["id2label"] = id2label;
        json["label2id"] = label2id;
        if (ProblemType is not null) json["problem_type"] = ProblemType;
        if (PadTokenId is { } pad) json["pad_token_id"] = pad;
        if (BosTokenId is { } bos) json["bos_token_id"] = bos;
        if (EosTokenId is { } eos) json["eos_token_id"] = eos;
        return json;
    }

    /// <summary>Writes the family's own keys (hidden size, layers, …).</summary>
    protected abstract void WriteFamilyKeys(JsonObject json);

    /// <summary>Throws naming the key when a structural value is impossible (e.g. heads not dividing the width).</summary>
    public abstract void Validate(string source);

    /// <summary>The shared keys read from <paramref name="r"/>; families call this from their <c>FromJson</c>. A key
    /// that is absent keeps <paramref name="config"/>'s value (the family's HF default, e.g. BERT's pad_token_id 0).</summary>
    protected static T ReadShared<T>(T config, ConfigReader r) where T : ModelConfig
    {
        var labels = r.Labels();
        return config with
        {
            VocabSize = r.Int("vocab_size"),
            Labels = labels ?? config.Labels,
            ProblemType = r.OptionalString("problem_type") ?? config.ProblemType,
            PadTokenId = r.OptionalInt("pad_token_id") ?? config.PadTokenId,
            BosTokenId = r.OptionalInt("bos_token_id") ?? config.BosTokenId,
            EosTokenId = r.OptionalInt("eos_token_id") ?? config.EosTokenId,
        };
    }

    /// <summary>HF's <c>problem_type</c> values (null: inferred from the labels).</summary>
    public static readonly IReadOnlyList<string> ProblemTypes = new[] { "regression", "single_label_classification", "multi_label_classification" };

    /// <summary>Checks the shared keys: vocab_size ≥ 1, special token ids inside the vocabulary, a known problem_type;
    /// families call this from their <see cref="Validate"/>.</summary>
    protected void ValidateShared(string source)
    {
        Require(VocabSize >= 1, source, "vocab_size", $"must be ≥ 1, got {VocabSize}");
        foreach (var (key, id) in new[] { ("pad_token_id", PadTokenId), ("bos_token_id", BosTokenId), ("eos_token_id", EosTokenId) })
            if (id is { } v) Require(v >= 0 && v < VocabSize, source, key, $"{v} is outside the vocabulary 0..{VocabSize - 1}");
        if (ProblemType is { } p)
            Require(ProblemTypes.Contains(p), source, "problem_type", $"'{p}' is not one of {string.Join(", ", ProblemTypes)}");
    }

    /// <summary>Fails with the config file and key when a value is out of range.</summary>
    protected static void Require(bool ok, string source, string key, string problem)
    {
        if (!ok) throw new InvalidModelConfigException(source, key, problem);
    }

    /// <summary>Fails unless <paramref name="p"/> is a dropout probability in [0, 1).</summary>
    protected static void RequireProbability(double p, string source, string key) =>
        Require(p >= 0 && p < 1, source, key, $"a dropout probability must lie in [0, 1), got {p}");
}

/// <summary>A config.json that does not describe a buildable model; names the file and the key.</summary>
public sealed class InvalidModelConfigException : System.IO.IOException
{
    /// <summary>The config file (or other origin) the value came from.</summary>
    public string ConfigSource { get; }
    public string Key { get; }
    public InvalidModelConfigException(string source, string key, string problem)
        : base($"{source}: '{key}': {problem}") { ConfigSource = source; Key = key; }
}

/// <summary>
/// Typed access to <c>config.json</c> with errors that name the file and key: a missing required key, a string
/// where a number belongs, a fraction where an integer belongs.
/// </summary>
public sealed class ConfigReader
{
    readonly JsonObject json;
    public string Source { get; }

    public ConfigReader(JsonObject json, string source) { this.json = json; Source = source; }

    public bool Has(string key) => json.ContainsKey(key) && json[key] is not null;

    JsonValue Value(string key) =>
        json[key] as JsonValue ?? throw new InvalidModelConfigException(Source, key, json.ContainsKey(key) ? "is not a plain value" : "missing");

    public int Int(string key)
    {
        var v = Value(key);
        if (v.TryGetValue<int>(out var i)) return i;
        if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        throw new InvalidModelConfigException(Source, key, $"expected an integer, got {v.ToJsonString()}");
    }

    public int Int(string key, int fallback) => Has(key) ? Int(key) : fallback;
    public int? OptionalInt(string key) => Has(key) ? Int(key) : null;

    public double Double(string key)
    {
        var v = Value(key);
        if (v.TryGetValue<double>(out var d)) return d;
        throw new InvalidModelConfigException(Source, key, $"expected a number, got {v.ToJsonString()}");
    }

    public double Double(string key, double fallback) => Has(key) ? Double(key) : fallback;

    public string String(string key)
    {
        var v = Value(key);
        if (v.TryGetValue<string>(out var s)) return s;
        throw new InvalidModelConfigException(Source, key, $"expected a string, got {v.ToJsonString()}");
    }

    public string String(string key, string fallback) => Has(key) ? String(key) : fallback;
    public string? OptionalString(string key) => Has(key) ? String(key) : null;

    public bool Bool(string key, bool fallback)
    {
        if (!Has(key)) return fallback;
        var v = Value(key);
        if (v.TryGetValue<bool>(out var b)) return b;
        throw new InvalidModelConfigException(Source, key, $"expected true or false, got {v.ToJsonString()}");
    }

    /// <summary>Label names from <c>id2label</c> (ids must be 0..n-1), else <c>num_labels</c> default names, else null.</summary>
    public IReadOnlyList<string>? Labels()
    {
        if (json["id2label"] is JsonObject map)
        {
            var pairs = map.Select(kv => (Id: int.TryParse(kv.Key, out var i) ? i : -1, Name: kv.Value?.GetValue<string>() ?? "")).OrderBy(p => p.Id).ToList();
            if (pairs.Select(p => p.Id).SequenceEqual(Enumerable.Range(0, pairs.Count)) && pairs.Count > 0)
                return pairs.Select(p => p.Name).ToList();
            throw new InvalidModelConfigException(Source, "id2label", "ids must be 0..n-1");
        }
        if (Has("num_labels"))
        {
            int n = Int("num_labels");
            if (n < 1) throw new InvalidModelConfigException(Source, "num_labels", $"must be ≥ 1, got {n}");
            return Enumerable.Range(0, n).Select(i => $"LABEL_{i}").ToList();
        }
        return null;
    }
}
