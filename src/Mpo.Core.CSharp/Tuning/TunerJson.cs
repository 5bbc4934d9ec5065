using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace Mpo.Tuning;

/// <summary>Strict reading of a baseline tuner's JSON object (LoRA, SVD, last layers): unknown fields and wrong types
/// are <see cref="InvalidTunerConfigException"/>s naming the source and the field.</summary>
internal sealed class TunerJson
{
    readonly JsonObject json;
    readonly string source;

    public TunerJson(JsonObject json, string source, string[] fields)
    {
        this.json = json ?? throw new ArgumentNullException(nameof(json));
        this.source = source;
        foreach (var (key, _) in json)
            if (!fields.Contains(key))
                throw new InvalidTunerConfigException(source, key, $"unknown field; the fields are {string.Join(", ", fields)}");
    }

    /// <summary>A configuration's <c>target_modules</c>: null (the default), or a non-empty list of known families.</summary>
    public static void CheckTargets(string source, IReadOnlyList<string>? targets, string whenNull)
    {
        if (targets is null) return;
        if (targets.Count == 0) throw new InvalidTunerConfigException(source, "target_modules", $"is empty; omit it (or null) for {whenNull}");
        foreach (var t in targets)
            if (!MpoFamilies.All.Contains(t))
                throw new InvalidTunerConfigException(source, "target_modules", $"unknown family '{t}'; known: {string.Join(", ", MpoFamilies.All)}");
    }

    public bool Has(string field) => json.ContainsKey(field);
    public bool IsNull(string field) => json[field] is null;

    InvalidTunerConfigException Wrong(string field, string expected) =>
        new(source, field, $"expected {expected}, got {json[field]?.ToJsonString() ?? "null"}");

    public int Int(string field)
    {
        if (json[field] is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        }
        throw Wrong(field, "an integer");
    }

    public long Long(string field)
    {
        if (json[field] is JsonValue v)
        {
            if (v.TryGetValue<long>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        }
        throw Wrong(field, "an integer");
    }

    public double Double(string field) =>
        json[field] is JsonValue v && v.TryGetValue<double>(out var d) ? d : throw Wrong(field, "a number");

    public bool Bool(string field) =>
        json[field] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Wrong(field, "true or false");

    public string String(string field) =>
        json[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Wrong(field, "a string");

    /// <summary>A list of strings, or null for a JSON null.</summary>
    public string[]? Strings(string field) => json[field] switch
    {
        null => null,
        JsonArray a => a.Select((x, i) => x is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new InvalidTunerConfigException(source, $"{field}[{i}]", $"expected a string, got {x?.ToJsonString() ?? "null"}")).ToArray(),
        _ => throw Wrong(field, "a list of strings or null"),
    };
}
