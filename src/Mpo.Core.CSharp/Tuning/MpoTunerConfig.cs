using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Decomposition;

namespace Mpo.Tuning;

/// <summary>A tuner configuration that cannot be used; names the file (or origin) and the field.</summary>
public sealed class InvalidTunerConfigException : ArgumentException
{
    public string ConfigSource { get; }
    public string Field { get; }
    /// <summary>What is wrong with the field, without the source and field (for callers that name them their own way).</summary>
    public string Problem { get; }

    public InvalidTunerConfigException(string source, string field, string problem)
        : base($"{source}: '{field}': {problem}")
    {
        ConfigSource = source;
        Field = field;
        Problem = problem;
    }
}

/// <summary>Row and column factors given for a family (the papers' shapes), independent of any matrix.</summary>
public sealed record FactorizationShape(IReadOnlyList<int> Rows, IReadOnlyList<int> Cols)
{
    /// <summary>
    /// The factorization of a [rows, cols] matrix with these factors, or null when they do not fit it: the products
    /// must equal the dimensions, except that rows may be zero-padded by less than their number (BERT's 30522-word
    /// vocabulary as 30720, spec §3.7).
    /// </summary>
    public MpoFactorization? Fit(int rows, int cols)
    {
        long r = Rows.Aggregate(1L, (a, f) => a * f), c = Cols.Aggregate(1L, (a, f) => a * f);
        if (c != cols || r < rows || r >= 2L * rows) return null;
        return new MpoFactorization(Rows, Cols, rows, cols);
    }

    public override string ToString() => $"[{string.Join(",", Rows)}]x[{string.Join(",", Cols)}]";
}

/// <summary>
/// MPO as a tuner (peft-shaped, spec §4): which matrices to decompose (families of <see cref="MpoFamilies"/>), into
/// how many cores, with which factors (given per family or chosen), truncated how, and whether central tensors are
/// frozen (MPOP's lightweight fine-tuning). Immutable, JSON-serializable (<see cref="ToJson"/>, <see cref="FromJson"/>);
/// the papers' shapes are presets (<see cref="MpoPresets"/>). Per-family settings may be keyed by a family or by a
/// group of <see cref="MpoFamilies.Groups"/>; the family's own key wins.
/// </summary>
public sealed record MpoTunerConfig
{
    /// <summary>peft's <c>peft_type</c> written to <c>adapter_config.json</c>.</summary>
    public const string PeftType = "MPO";

    /// <summary>The preset this configuration started from, for the record (null: none).</summary>
    public string? Preset { get; init; }
    /// <summary>Cores n of every MPO (spec §3.7: n = 5).</summary>
    public int Cores { get; init; } = FactorizationChooser.DefaultCores;
    /// <summary>Families to decompose; null: every family the model has (MPOP's all-matrices setting).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }
    /// <summary>Given factors per family or group (first one that fits a module wins); families without use the chooser.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<FactorizationShape>> Factorizations { get; init; } =
        new Dictionary<string, IReadOnlyList<FactorizationShape>>();
    /// <summary>Truncation per family or group; families without are kept at full bonds (MPOP_full).</summary>
    public IReadOnlyDictionary<string, TruncationSpec> Truncation { get; init; } = new Dictionary<string, TruncationSpec>();
    /// <summary>Freeze every central tensor: only auxiliary tensors and the dense parameters learn (MPOP §4.2, LFA).</summary>
    public bool FreezeCentral { get; init; } = true;
    /// <summary>Mixture of experts (MPOE, spec §5): the FFN blocks become MoE layers upcycled from the pre-trained
    /// FFN, after the MPO layers of <see cref="TargetModules"/> are in place; null: none. <see cref="FreezeCentral"/> is
    /// for those MPO layers; the experts' shared central tensors follow the section's gradient mask (p_b = 1 freezes).</summary>
    public MoeTunerConfig? Moe { get; init; }

    /// <summary>This configuration with MoE layers as well (its MPO targets unchanged).</summary>
    public MpoTunerConfig WithMoe(MoeTunerConfig? moe) => this with { Moe = moe };

    /// <summary>A configuration that only makes the FFN blocks MoE layers (no other matrix decomposed).</summary>
    public static MpoTunerConfig ForMoe(MoeTunerConfig moe) => new() { TargetModules = Array.Empty<string>(), Moe = moe };

    /// <summary>The given factorizations for <paramref name="family"/> (its own key, else its group's); empty: choose.</summary>
    public IReadOnlyList<FactorizationShape> FactorizationsFor(string family) =>
        Lookup(Factorizations, family) ?? Array.Empty<FactorizationShape>();

    /// <summary>The truncation for <paramref name="family"/>, or null for full bonds.</summary>
    public TruncationSpec? TruncationFor(string family) => Lookup(Truncation, family);

    static T? Lookup<T>(IReadOnlyDictionary<string, T> map, string family) where T : class
    {
        if (map.TryGetValue(family, out var own)) return own;
        foreach (var group in MpoFamilies.GroupsOf(family))
            if (map.TryGetValue(group, out var shared)) return shared;
        return null;
    }

    /// <summary>Checks every field; the exception names <paramref name="source"/> and the field.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string field, string problem)
        {
            if (!ok) throw new InvalidTunerConfigException(source, field, problem);
        }
        Require(Cores >= 2, "cores", $"an MPO needs at least 2 cores, got {Cores}");
        if (TargetModules is not null)
        {
            Require(TargetModules.Count > 0 || Moe is not null, "target_modules", "is empty; omit it (or null) for every family the model has");
            foreach (var t in TargetModules)
                Require(MpoFamilies.All.Contains(t), "target_modules", $"unknown family '{t}'; known: {string.Join(", ", MpoFamilies.All)}");
        }
        bool Known(string key) => MpoFamilies.All.Contains(key) || MpoFamilies.Groups.ContainsKey(key);
        string KnownKeys() => string.Join(", ", MpoFamilies.All.Concat(MpoFamilies.Groups.Keys));
        foreach (var (key, shapes) in Factorizations)
        {
            Require(Known(key), $"factorizations.{key}", $"is neither a family nor a group; known: {KnownKeys()}");
            Require(shapes.Count > 0, $"factorizations.{key}", "lists no factorization");
            foreach (var s in shapes)
            {
                Require(s.Rows.Count == Cores && s.Cols.Count == Cores, $"factorizations.{key}",
                    $"{s} has {s.Rows.Count} row and {s.Cols.Count} column factors; cores is {Cores}");
                Require(s.Rows.Concat(s.Cols).All(f => f >= 1), $"factorizations.{key}", $"{s}: factors must be positive");
            }
        }
        foreach (var (key, spec) in Truncation)
        {
            Require(Known(key), $"truncation.{key}", $"is neither a family nor a group; known: {KnownKeys()}");
            switch (spec)
            {
                case TruncationSpec.MaxBond m: Require(m.Bond >= 1, $"truncation.{key}.max_bond", $"must be at least 1, got {m.Bond}"); break;
                case TruncationSpec.PerBond p:
                    Require(p.Bonds.Count == Cores - 1, $"truncation.{key}.bonds", $"needs {Cores - 1} inner bonds d_1..d_{Cores - 1}, got {p.Bonds.Count}");
                    Require(p.Bonds.All(b => b >= 1), $"truncation.{key}.bonds", "bonds must be at least 1");
                    break;
                case TruncationSpec.Tolerance t: Require(t.Relative >= 0 && double.IsFinite(t.Relative), $"truncation.{key}.tolerance", $"must be a finite number ≥ 0, got {t.Relative}"); break;
                case TruncationSpec.Budget b: Require(b.Parameters >= 1, $"truncation.{key}.budget", $"must be positive, got {b.Parameters}"); break;
            }
        }
        Moe?.Validate(source);
    }

    /// <summary>The configuration as JSON (snake_case keys, as peft writes <c>adapter_config.json</c>).</summary>
    public JsonObject ToJson()
    {
        var factorizations = new JsonObject();
        foreach (var (key, shapes) in Factorizations.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            factorizations[key] = new JsonArray(shapes.Select(s => (JsonNode)new JsonObject
            {
                ["rows"] = new JsonArray(s.Rows.Select(f => (JsonNode)f).ToArray()),
                ["cols"] = new JsonArray(s.Cols.Select(f => (JsonNode)f).ToArray()),
            }).ToArray());
        var truncation = new JsonObject();
        foreach (var (key, spec) in Truncation.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            truncation[key] = SpecToJson(spec);
        var json = new JsonObject
        {
            ["peft_type"] = PeftType,
            ["preset"] = Preset,
            ["cores"] = Cores,
            ["target_modules"] = TargetModules is null ? null : new JsonArray(TargetModules.Select(t => (JsonNode)t).ToArray()),
            ["factorizations"] = factorizations,
            ["truncation"] = truncation,
            ["freeze_central"] = FreezeCentral,
        };
        if (Moe is not null) json["moe"] = Moe.ToJson();   // absent otherwise: MPOP's adapter files stay as they were
        return json;
    }

    static JsonObject SpecToJson(TruncationSpec spec) => spec switch
    {
        TruncationSpec.MaxBond m => new JsonObject { ["max_bond"] = m.Bond },
        TruncationSpec.PerBond p => new JsonObject { ["bonds"] = new JsonArray(p.Bonds.Select(b => (JsonNode)b).ToArray()) },
        TruncationSpec.Tolerance t => new JsonObject { ["tolerance"] = t.Relative },
        TruncationSpec.Budget b => new JsonObject { ["budget"] = b.Parameters },
        _ => throw new ArgumentException($"unknown truncation {spec}", nameof(spec)),
    };

    static readonly string[] Fields = { "peft_type", "preset", "cores", "target_modules", "factorizations", "truncation", "freeze_central", "moe" };

    /// <summary>
    /// Reads a configuration. With <c>"preset"</c> the preset is the starting point and the other fields present
    /// override it, per key within <c>factorizations</c> and <c>truncation</c>
    /// (<c>{"preset": "mpop-albert", "truncation": {"word_embedding": {"max_bond": 240}}}</c>); unknown fields are
    /// errors, so a typo never silently does nothing.
    /// </summary>
    public static MpoTunerConfig FromJson(JsonObject json, string source)
    {
        foreach (var (key, _) in json)
            if (!Fields.Contains(key))
                throw new InvalidTunerConfigException(source, key, $"unknown field; the fields are {string.Join(", ", Fields)}");
        string Str(JsonNode? node, string field) =>
            node is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidTunerConfigException(source, field, $"expected a string, got {node?.ToJsonString() ?? "null"}");
        int Int(JsonNode? node, string field)
        {
            if (node is JsonValue v)
            {
                if (v.TryGetValue<int>(out var i)) return i;
                if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
            }
            throw new InvalidTunerConfigException(source, field, $"expected an integer, got {node?.ToJsonString() ?? "null"}");
        }
        int[] Ints(JsonNode? node, string field) =>
            node is JsonArray a ? a.Select((x, i) => Int(x, $"{field}[{i}]")).ToArray()
            : throw new InvalidTunerConfigException(source, field, $"expected a list of integers, got {node?.ToJsonString() ?? "null"}");
        JsonObject Obj(JsonNode? node, string field) =>
            node as JsonObject ?? throw new InvalidTunerConfigException(source, field, $"expected an object, got {node?.ToJsonString() ?? "null"}");

        if (json["peft_type"] is { } type && Str(type, "peft_type") != PeftType)
            throw new InvalidTunerConfigException(source, "peft_type", $"'{Str(type, "peft_type")}' is not an MPO configuration (expected \"{PeftType}\")");
        var config = json["preset"] is { } preset ? MpoPresets.Get(Str(preset, "preset"), source) : new MpoTunerConfig();
        if (json.ContainsKey("cores")) config = config with { Cores = Int(json["cores"], "cores") };
        if (json.ContainsKey("target_modules"))
            config = config with
            {
                TargetModules = json["target_modules"] is null ? null
                    : json["target_modules"] is JsonArray targets ? targets.Select((t, i) => Str(t, $"target_modules[{i}]")).ToArray()
                    : throw new InvalidTunerConfigException(source, "target_modules", "expected a list of family names or null"),
            };
        if (json.ContainsKey("factorizations"))
        {
            var map = config.Factorizations.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            foreach (var (key, value) in Obj(json["factorizations"], "factorizations"))
            {
                var field = $"factorizations.{key}";
                var list = value is JsonArray array ? array.ToList() : new List<JsonNode?> { value };
                map[key] = list.Select((item, i) =>
                {
                    var o = Obj(item, $"{field}[{i}]");
                    foreach (var (k, _) in o)
                        if (k != "rows" && k != "cols") throw new InvalidTunerConfigException(source, $"{field}[{i}].{k}", "unknown field; a factorization has rows and cols");
                    return new FactorizationShape(Ints(o["rows"], $"{field}[{i}].rows"), Ints(o["cols"], $"{field}[{i}].cols"));
                }).ToArray();
            }
            config = config with { Factorizations = map };
        }
        if (json.ContainsKey("truncation"))
        {
            var map = config.Truncation.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            foreach (var (key, value) in Obj(json["truncation"], "truncation"))
            {
                var field = $"truncation.{key}";
                var o = Obj(value, field);
                if (o.Count != 1)
                    throw new InvalidTunerConfigException(source, field, "give exactly one of max_bond, bonds, tolerance, budget");
                var (kind, v) = o.First();
                map[key] = kind switch
                {
                    "max_bond" => new TruncationSpec.MaxBond(Int(v, $"{field}.max_bond")),
                    "bonds" => new TruncationSpec.PerBond(Ints(v, $"{field}.bonds")),
                    "tolerance" => new TruncationSpec.Tolerance(v is JsonValue t && t.TryGetValue<double>(out var d) ? d
                        : throw new InvalidTunerConfigException(source, $"{field}.tolerance", $"expected a number, got {v?.ToJsonString() ?? "null"}")),
                    "budget" => new TruncationSpec.Budget(v is JsonValue b && b.TryGetValue<long>(out var p) ? p
                        : throw new InvalidTunerConfigException(source, $"{field}.budget", $"expected an integer, got {v?.ToJsonString() ?? "null"}")),
                    _ => throw new InvalidTunerConfigException(source, $"{field}.{kind}", "unknown truncation; give one of max_bond, bonds, tolerance, budget"),
                };
            }
            config = config with { Truncation = map };
        }
        if (json.ContainsKey("freeze_central"))
            config = config with
            {
                FreezeCentral = json["freeze_central"] is JsonValue f && f.TryGetValue<bool>(out var freeze) ? freeze
                    : throw new InvalidTunerConfigException(source, "freeze_central", $"expected true or false, got {json["freeze_central"]?.ToJsonString() ?? "null"}"),
            };
        if (json.ContainsKey("moe"))
        {
            var moe = json["moe"] is null ? null : MoeTunerConfig.FromJson(json["moe"], source);
            // An MoE configuration decomposes no other matrix unless it names target_modules itself (MPOE's runs
            // replace the FFNs only, spec §5.1).
            config = config with { Moe = moe, TargetModules = moe is not null && !json.ContainsKey("target_modules") ? Array.Empty<string>() : config.TargetModules };
        }
        config.Validate(source);
        return config;
    }

    /// <summary>A preset by name (<see cref="MpoPresets.Names"/>), or a JSON configuration file.</summary>
    public static MpoTunerConfig Load(string presetOrFile)
    {
        if (MpoPresets.Names.Contains(presetOrFile)) return MpoPresets.Get(presetOrFile, "--mpo");
        if (!File.Exists(presetOrFile))
            throw new FileNotFoundException(
                $"{presetOrFile}: neither an MPO preset ({string.Join(", ", MpoPresets.Names)}) nor a tuner configuration file", presetOrFile);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(presetOrFile)); }
        catch (JsonException e) { throw new InvalidTunerConfigException(presetOrFile, "(file)", $"not valid JSON: {e.Message}"); }
        return FromJson(node as JsonObject ?? throw new InvalidTunerConfigException(presetOrFile, "(file)", "must hold a JSON object"), presetOrFile);
    }
}
