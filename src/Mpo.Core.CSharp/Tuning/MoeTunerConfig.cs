using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Experts;

namespace Mpo.Tuning;

/// <summary>The MoE methods a tuner configuration's <c>"moe"</c> section names (MPOE Table 1's rows).</summary>
public enum MoeKind
{
    /// <summary>"+Switch": top-1 routing, dense experts upcycled from the FFN (<see cref="MoeOptions.Switch"/>).</summary>
    Switch,
    /// <summary>"+MoE": Shazeer-style top-2, dense experts (<see cref="MoeOptions.Shazeer"/>).</summary>
    Moe,
    /// <summary>MPOE: MPOE's released routing, MPO experts sharing one central tensor per FFN matrix (<see cref="MoeOptions.Mpoe"/>).</summary>
    Mpoe,
}

/// <summary>MPOE's gradient mask as configured (spec §5.3): p_b by update, how the update is dropped, rescaling.</summary>
public sealed record GradientMaskSettings(GradientMaskSchedule Probability, GradientMaskMode Mode = GradientMaskMode.SkipStep, bool Rescale = false)
{
    /// <summary>p_b = 1 at every update: the shared central tensors are frozen outright (MPOE's <c>--tensor_learn</c>).</summary>
    public bool Freezes => Probability.Start >= 1 && Probability.End >= 1;
    /// <summary>p_b = 0 at every update: plain training, no mask.</summary>
    public bool IsOff => Probability.Start <= 0 && Probability.End <= 0;

    /// <summary>The trainer callback that applies the mask.</summary>
    public GradientMaskCallback Callback() => new(Probability, Mode, Rescale);
}

/// <summary>
/// The <c>"moe"</c> section of a tuner configuration (MPOE §3, spec §5): which method (<see cref="MoeKind"/>), how
/// many experts, the routing (<see cref="MoeOptions"/>: the kind's preset, then the fields given), the gradient mask,
/// and which feed-forward blocks become MoE layers (<see cref="Blocks"/>). The MPO side of MPOE experts — cores,
/// factors and truncation of the FFN matrices — is the configuration's own <c>cores</c> and its <c>ffn_in</c> /
/// <c>ffn_out</c> (or <c>ffn</c>) entries in <c>factorizations</c> and <c>truncation</c>, the same fields MPOP uses.
/// </summary>
public sealed record MoeTunerConfig
{
    public MoeKind Kind { get; init; } = MoeKind.Mpoe;
    /// <summary>The routing and losses, resolved: the kind's preset with the configured fields applied.</summary>
    public MoeOptions Options { get; init; } = MoeOptions.Mpoe(8);
    /// <summary>The gradient mask on the shared central tensors (MPOE only); null: none (p_b = 0).</summary>
    public GradientMaskSettings? GradientMask { get; init; }
    /// <summary>Which FFN blocks become MoE layers, by dotted path prefix ("decoder", "encoder.block.11",
    /// "transformer.h.0"); null: every block (MPOE replaces the FFN of every Transformer block, spec §5.1).</summary>
    public IReadOnlyList<string>? Blocks { get; init; }
    /// <summary>
    /// MPOE's parameter sharing (P2 §3.1): true, the experts of an FFN matrix share one central tensor; false, every
    /// expert owns one (<c>experts.{e}.central</c>), a full MPO upcycled from the same pre-trained matrix — the
    /// "w/o PS" row of MPOE's Table 3, (n − 1) more central tensors per matrix. MPOE only.
    /// </summary>
    public bool ShareCentral { get; init; } = true;

    /// <summary>Whether the experts are MPOs (MPOE; sharing a central tensor unless <see cref="ShareCentral"/> is false)
    /// or dense copies (Switch, MoE).</summary>
    public ExpertKind ExpertKind => Kind == MoeKind.Mpoe ? ExpertKind.Mpo : ExpertKind.Dense;

    /// <summary>The method's name in configurations, specs and tables.</summary>
    public static string NameOf(MoeKind kind) => kind switch
    {
        MoeKind.Switch => "switch",
        MoeKind.Moe => "moe",
        MoeKind.Mpoe => "mpoe",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown MoE kind"),
    };

    static readonly MoeKind[] kinds = { MoeKind.Switch, MoeKind.Moe, MoeKind.Mpoe };

    /// <summary>The kind called <paramref name="name"/> ("switch", "moe", "mpoe"); throws naming <paramref name="field"/>.</summary>
    public static MoeKind KindNamed(string name, string source, string field) =>
        kinds.Any(k => NameOf(k) == name) ? kinds.First(k => NameOf(k) == name)
        : throw new InvalidTunerConfigException(source, field, $"'{name}' is not an MoE method; known: {string.Join(", ", kinds.Select(NameOf))}");

    /// <summary>The kind's preset routing for <paramref name="experts"/> experts.</summary>
    public static MoeOptions Preset(MoeKind kind, int experts) => kind switch
    {
        MoeKind.Switch => MoeOptions.Switch(experts),
        MoeKind.Moe => MoeOptions.Shazeer(experts),
        _ => MoeOptions.Mpoe(experts),
    };

    /// <summary>The preset configuration of <paramref name="kind"/> with <paramref name="experts"/> experts (MPOE: the
    /// central tensors shared unless <paramref name="shareCentral"/> is false); checked, errors naming <c>moe.*</c>.</summary>
    public static MoeTunerConfig Of(MoeKind kind, int experts, bool shareCentral = true)
    {
        var config = new MoeTunerConfig { Kind = kind, Options = Preset(kind, experts), ShareCentral = shareCentral };
        if (!shareCentral) config.Validate(nameof(Of));
        return config;
    }

    static readonly (string Field, string Option)[] optionFields =
    {
        ("experts", nameof(MoeOptions.Experts)), ("top_k", nameof(MoeOptions.TopK)), ("capacity_factor", nameof(MoeOptions.CapacityFactor)),
        ("eval_capacity_factor", nameof(MoeOptions.EvalCapacityFactor)), ("min_capacity", nameof(MoeOptions.MinCapacity)),
        ("priority", nameof(MoeOptions.Priority)), ("gates", nameof(MoeOptions.Gates)), ("router_bias", nameof(MoeOptions.RouterBias)),
        ("jitter", nameof(MoeOptions.JitterNoise)), ("balance_loss", nameof(MoeOptions.BalanceLossCoefficient)),
        ("z_loss", nameof(MoeOptions.ZLossCoefficient)), ("add_auxiliary_losses", nameof(MoeOptions.AddAuxiliaryLosses)),
    };

    /// <summary>The fields of the section, for messages.</summary>
    public static readonly IReadOnlyList<string> Fields =
        new[] { "kind" }.Concat(optionFields.Select(f => f.Field)).Concat(new[] { "gradient_mask", "blocks", "share_central" }).ToArray();

    static readonly (string Name, TokenPriority Value)[] priorities = { ("position", TokenPriority.Position), ("router_probability", TokenPriority.RouterProbability) };
    static readonly (string Name, GateMode Value)[] gates = { ("probability", GateMode.Probability), ("normalized", GateMode.Normalized), ("straight_through", GateMode.StraightThrough) };
    static readonly (string Name, GradientMaskMode Value)[] maskModes =
        { ("skip_step", GradientMaskMode.SkipStep), ("mask_update", GradientMaskMode.MaskUpdate), ("mask_gradient", GradientMaskMode.MaskGradient) };

    /// <summary>Checks every field; the exception names <paramref name="source"/> and the field (<c>moe.top_k</c>, …).</summary>
    public void Validate(string source)
    {
        try { Options.Validate(); }
        catch (ArgumentException e)
        {
            var field = optionFields.FirstOrDefault(f => f.Option == e.ParamName).Field ?? "moe";
            throw new InvalidTunerConfigException(source, "moe." + field, e.Message);
        }
        if (GradientMask is not null && Kind != MoeKind.Mpoe)
            throw new InvalidTunerConfigException(source, "moe.gradient_mask",
                $"masks the shared central tensors of MPO experts; '{NameOf(Kind)}' has dense experts and no shared central tensor");
        if (!ShareCentral && Kind != MoeKind.Mpoe)
            throw new InvalidTunerConfigException(source, "moe.share_central",
                $"is about the central tensors of MPO experts; '{NameOf(Kind)}' has dense experts and no central tensor");
        // The mask exists because the shared central tensor is updated by every routed token while each expert's
        // auxiliary tensors see only their own ("unbalanced optimization", P2 §3.2). Experts that own their central
        // tensors are updated as evenly as their auxiliary ones: there is no imbalance to correct, so the combination
        // is refused rather than silently masking every expert's central tensor (which the paper never describes).
        if (!ShareCentral && GradientMask is { IsOff: false })
            throw new InvalidTunerConfigException(source, "moe.gradient_mask",
                "masks the shared central tensor against unbalanced updates (MPOE §3.2); with share_central false every expert owns its central tensor and there is none to mask: drop gradient_mask or set share_central true");
        if (GradientMask is { Rescale: true, Mode: GradientMaskMode.SkipStep })
            throw new InvalidTunerConfigException(source, "moe.gradient_mask.rescale", "applies to the element-wise modes (mask_update, mask_gradient); a skipped step has nothing to rescale");
        if (Blocks is not null)
        {
            if (Blocks.Count == 0) throw new InvalidTunerConfigException(source, "moe.blocks", "is empty; omit it (or null) for every feed-forward block");
            foreach (var b in Blocks)
                if (string.IsNullOrWhiteSpace(b)) throw new InvalidTunerConfigException(source, "moe.blocks", "holds an empty path prefix");
        }
    }

    /// <summary>Whether the block at <paramref name="path"/> is selected: a prefix matches whole dotted segments
    /// ("decoder" matches "decoder.block.0.layer.2.DenseReluDense", "transformer.h.1" does not match "transformer.h.10.mlp").</summary>
    public bool Selects(string path) =>
        Blocks is null || Blocks.Any(p => path == p || path.StartsWith(p + ".", StringComparison.Ordinal));

    /// <summary>The section as JSON, every field resolved (a checkpoint's <c>config.json</c> rebuilds the same layers
    /// from it); a capacity factor of +∞ (no dropping) is written as null.</summary>
    public JsonObject ToJson()
    {
        static JsonNode? Factor(double f) => double.IsPositiveInfinity(f) ? null : JsonValue.Create(f);
        var o = Options;
        var json = new JsonObject
        {
            ["kind"] = NameOf(Kind),
            ["experts"] = o.Experts,
            ["top_k"] = o.TopK,
            ["capacity_factor"] = Factor(o.CapacityFactor),
            ["eval_capacity_factor"] = o.EvalCapacityFactor is { } e ? Factor(e) ?? JsonValue.Create("none") : null,
            ["min_capacity"] = o.MinCapacity,
            ["priority"] = priorities.First(p => p.Value == o.Priority).Name,
            ["gates"] = gates.First(g => g.Value == o.Gates).Name,
            ["router_bias"] = o.RouterBias,
            ["jitter"] = o.JitterNoise,
            ["balance_loss"] = o.BalanceLossCoefficient,
            ["z_loss"] = o.ZLossCoefficient,
            ["add_auxiliary_losses"] = o.AddAuxiliaryLosses,
            ["gradient_mask"] = GradientMask is not { } m ? null : new JsonObject
            {
                ["p_b"] = m.Probability.Steps == 0 ? JsonValue.Create(m.Probability.End)
                    : new JsonObject { ["start"] = m.Probability.Start, ["end"] = m.Probability.End, ["steps"] = m.Probability.Steps },
                ["mode"] = maskModes.First(x => x.Value == m.Mode).Name,
                ["rescale"] = m.Rescale,
            },
            ["blocks"] = Blocks is null ? null : new JsonArray(Blocks.Select(b => (JsonNode)b).ToArray()),
            ["share_central"] = ShareCentral,
        };
        return json;
    }

    /// <summary>
    /// Reads the section: <c>kind</c> (required) picks the preset, <c>experts</c> its size (default 8), and every other
    /// field present overrides it. A capacity factor of null means no dropping. Unknown fields are errors naming them.
    /// </summary>
    public static MoeTunerConfig FromJson(JsonNode? node, string source, string path = "moe")
    {
        var json = node as JsonObject ?? throw new InvalidTunerConfigException(source, path, $"expected an object, got {node?.ToJsonString() ?? "null"}");
        foreach (var (key, _) in json)
            if (!Fields.Contains(key))
                throw new InvalidTunerConfigException(source, $"{path}.{key}", $"unknown field; the fields are {string.Join(", ", Fields)}");
        string F(string key) => $"{path}.{key}";
        string Str(string key) => json[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new InvalidTunerConfigException(source, F(key), $"expected a string, got {json[key]?.ToJsonString() ?? "null"}");
        int Int(string key)
        {
            if (json[key] is JsonValue v)
            {
                if (v.TryGetValue<int>(out var i)) return i;
                if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
            }
            throw new InvalidTunerConfigException(source, F(key), $"expected an integer, got {json[key]?.ToJsonString() ?? "null"}");
        }
        double Num(JsonNode? n, string field) => n is JsonValue v && v.TryGetValue<double>(out var d) ? d
            : throw new InvalidTunerConfigException(source, field, $"expected a number, got {n?.ToJsonString() ?? "null"}");
        bool Bool(string key) => json[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b
            : throw new InvalidTunerConfigException(source, F(key), $"expected true or false, got {json[key]?.ToJsonString() ?? "null"}");
        // null (or "none") means no dropping; the preset's value stays when the key is absent.
        double Factor(string key) => json[key] is null || (json[key] is JsonValue v && v.TryGetValue<string>(out var s) && s == "none")
            ? double.PositiveInfinity : Num(json[key], F(key));
        T Named<T>(string key, (string Name, T Value)[] table)
        {
            var name = Str(key);
            foreach (var (n, v) in table) if (n == name) return v;
            throw new InvalidTunerConfigException(source, F(key), $"'{name}' is not one of {string.Join(", ", table.Select(t => t.Name))}");
        }

        if (!json.ContainsKey("kind")) throw new InvalidTunerConfigException(source, F("kind"), "is required: switch, moe or mpoe");
        var kind = KindNamed(Str("kind"), source, F("kind"));
        var o = Preset(kind, json.ContainsKey("experts") ? Int("experts") : 8);
        if (json.ContainsKey("top_k")) o = o with { TopK = Int("top_k") };
        if (json.ContainsKey("capacity_factor")) o = o with { CapacityFactor = Factor("capacity_factor") };
        if (json.ContainsKey("eval_capacity_factor")) o = o with { EvalCapacityFactor = json["eval_capacity_factor"] is null ? null : Factor("eval_capacity_factor") };
        if (json.ContainsKey("min_capacity")) o = o with { MinCapacity = Int("min_capacity") };
        if (json.ContainsKey("priority")) o = o with { Priority = Named("priority", priorities) };
        if (json.ContainsKey("gates")) o = o with { Gates = Named("gates", gates) };
        if (json.ContainsKey("router_bias")) o = o with { RouterBias = Bool("router_bias") };
        if (json.ContainsKey("jitter")) o = o with { JitterNoise = Num(json["jitter"], F("jitter")) };
        if (json.ContainsKey("balance_loss")) o = o with { BalanceLossCoefficient = Num(json["balance_loss"], F("balance_loss")) };
        if (json.ContainsKey("z_loss")) o = o with { ZLossCoefficient = Num(json["z_loss"], F("z_loss")) };
        if (json.ContainsKey("add_auxiliary_losses")) o = o with { AddAuxiliaryLosses = Bool("add_auxiliary_losses") };

        GradientMaskSettings? mask = null;
        if (json["gradient_mask"] is { } gm)
        {
            string G(string key) => $"{path}.gradient_mask.{key}";
            var m = gm as JsonObject ?? throw new InvalidTunerConfigException(source, F("gradient_mask"), $"expected an object, got {gm.ToJsonString()}");
            foreach (var (key, _) in m)
                if (key is not ("p_b" or "mode" or "rescale"))
                    throw new InvalidTunerConfigException(source, G(key), "unknown field; the fields are p_b, mode, rescale");
            GradientMaskSchedule schedule;
            try
            {
                schedule = m["p_b"] switch
                {
                    null => throw new InvalidTunerConfigException(source, G("p_b"), "is required: the masking probability, or {start, end, steps}"),
                    JsonObject ramp => RampOf(ramp),
                    var p => GradientMaskSchedule.Constant(Num(p, G("p_b"))),
                };
            }
            catch (ArgumentOutOfRangeException e) { throw new InvalidTunerConfigException(source, G("p_b"), e.Message); }
            GradientMaskSchedule RampOf(JsonObject ramp)
            {
                foreach (var (key, _) in ramp)
                    if (key is not ("start" or "end" or "steps"))
                        throw new InvalidTunerConfigException(source, G("p_b." + key), "unknown field; a p_b ramp has start, end, steps");
                var steps = ramp["steps"] is JsonValue s && s.TryGetValue<long>(out var l) ? l
                    : throw new InvalidTunerConfigException(source, G("p_b.steps"), $"expected an integer, got {ramp["steps"]?.ToJsonString() ?? "null"}");
                return GradientMaskSchedule.Linear(Num(ramp["start"], G("p_b.start")), Num(ramp["end"], G("p_b.end")), steps);
            }
            var mode = GradientMaskMode.SkipStep;
            if (m["mode"] is { } modeNode)
            {
                var name = modeNode is JsonValue v && v.TryGetValue<string>(out var s) ? s
                    : throw new InvalidTunerConfigException(source, G("mode"), $"expected a string, got {modeNode.ToJsonString()}");
                mode = maskModes.Any(x => x.Name == name) ? maskModes.First(x => x.Name == name).Value
                    : throw new InvalidTunerConfigException(source, G("mode"), $"'{name}' is not one of {string.Join(", ", maskModes.Select(x => x.Name))}");
            }
            bool rescale = m["rescale"] is null ? false
                : m["rescale"] is JsonValue r && r.TryGetValue<bool>(out var b) ? b
                : throw new InvalidTunerConfigException(source, G("rescale"), $"expected true or false, got {m["rescale"]!.ToJsonString()}");
            mask = new GradientMaskSettings(schedule, mode, rescale);
        }

        IReadOnlyList<string>? blocks = null;
        if (json["blocks"] is { } bl)
            blocks = bl is JsonArray a
                ? a.Select((x, i) => x is JsonValue v && v.TryGetValue<string>(out var s) ? s
                      : throw new InvalidTunerConfigException(source, $"{F("blocks")}[{i}]", $"expected a path prefix, got {x?.ToJsonString() ?? "null"}")).ToArray()
                : throw new InvalidTunerConfigException(source, F("blocks"), "expected a list of block path prefixes or null");

        bool share = !json.ContainsKey("share_central") || Bool("share_central");

        var config = new MoeTunerConfig { Kind = kind, Options = o, GradientMask = mask, Blocks = blocks, ShareCentral = share };
        config.Validate(source);
        return config;
    }
}
