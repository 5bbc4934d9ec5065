using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace Mpo.Tuning;

/// <summary>
/// LoRA (Hu et al. 2021) as peft configures it (<c>LoraConfig</c>): rank <see cref="R"/>, scale
/// <see cref="LoraAlpha"/>/r (α/√r with <see cref="UseRsLora"/>), dropout on the input of the low-rank path, the
/// target modules, which biases train, and the modules trained beside the adapter. Target modules are the families of
/// <see cref="MpoFamilies"/>, the vocabulary the MPO tuner uses, so <c>["query", "value"]</c> selects the same
/// matrices for both. JSON uses peft's <c>adapter_config.json</c> field names.
/// </summary>
public sealed record LoraConfig
{
    /// <summary>peft's <c>peft_type</c>.</summary>
    public const string PeftType = "LORA";

    public int R { get; init; } = 8;
    public double LoraAlpha { get; init; } = 8;
    /// <summary>Dropout probability on the input of the A path (peft's <c>lora_dropout</c>); the base path sees no dropout.</summary>
    public double LoraDropout { get; init; }
    /// <summary>Families to adapt; null: peft's default for the model type (query and value; GPT-2's fused c_attn).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }
    /// <summary>peft's <c>bias</c>: "none" (all frozen), "all" (every bias trains), "lora_only" (the adapted modules' biases).</summary>
    public string Bias { get; init; } = "none";
    /// <summary>Scale α/√r instead of α/r (rank-stabilized LoRA, peft's <c>use_rslora</c>).</summary>
    public bool UseRsLora { get; init; }
    /// <summary>Module name suffixes (dotted, whole segments) trained in full beside the adapter; null: the task head
    /// (<see cref="ModelParts"/>), as peft's sequence-classification task type adds its classifier.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>The low-rank update's scale.</summary>
    public double Scaling => UseRsLora ? LoraAlpha / Math.Sqrt(R) : LoraAlpha / R;

    static readonly string[] Biases = { "none", "all", "lora_only" };
    static readonly string[] Fields =
        { "peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "modules_to_save", "fan_in_fan_out", "init_lora_weights" };

    /// <summary>peft's default targets per model type (<c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c>).</summary>
    public static IReadOnlyList<string> DefaultTargets(string modelType) =>
        modelType == "gpt2" ? new[] { MpoFamilies.QueryKeyValue } : new[] { MpoFamilies.Query, MpoFamilies.Value };

    public void Validate(string source)
    {
        void Require(bool ok, string field, string problem)
        {
            if (!ok) throw new InvalidTunerConfigException(source, field, problem);
        }
        Require(R >= 1, "r", $"the rank must be at least 1, got {R}");
        Require(double.IsFinite(LoraAlpha) && LoraAlpha > 0, "lora_alpha", $"must be positive and finite, got {LoraAlpha}");
        Require(LoraDropout >= 0 && LoraDropout < 1, "lora_dropout", $"must lie in [0, 1), got {LoraDropout}");
        Require(Biases.Contains(Bias), "bias", $"'{Bias}' is not one of {string.Join(", ", Biases)}");
        TunerJson.CheckTargets(source, TargetModules, "peft's default");
        Require(TargetModules?.Contains(MpoFamilies.WordEmbedding) != true, "target_modules",
            "LoRA here adapts linear maps (Linear, GPT-2's Conv1D); peft's embedding LoRA is not implemented");
        if (ModulesToSave is not null)
            foreach (var m in ModulesToSave)
                Require(!string.IsNullOrWhiteSpace(m), "modules_to_save", "holds an empty name");
    }

    public JsonObject ToJson() => new()
    {
        ["peft_type"] = PeftType,
        ["r"] = R,
        ["lora_alpha"] = LoraAlpha,
        ["lora_dropout"] = LoraDropout,
        ["target_modules"] = TargetModules is null ? null : new JsonArray(TargetModules.Select(t => (JsonNode)t).ToArray()),
        ["bias"] = Bias,
        ["use_rslora"] = UseRsLora,
        ["modules_to_save"] = ModulesToSave is null ? null : new JsonArray(ModulesToSave.Select(t => (JsonNode)t).ToArray()),
        // peft's fields whose values are fixed here: GPT-2's Conv1D orientation is handled by the layer itself, and
        // A starts Kaiming-uniform, B at zero (peft's init_lora_weights = true)
        ["fan_in_fan_out"] = false,
        ["init_lora_weights"] = true,
    };

    /// <summary>Reads peft-named fields over the defaults; unknown fields are errors naming them.</summary>
    public static LoraConfig FromJson(JsonObject json, string source)
    {
        var read = new TunerJson(json, source, Fields);
        if (read.Has("peft_type") && read.String("peft_type") != PeftType)
            throw new InvalidTunerConfigException(source, "peft_type", $"'{read.String("peft_type")}' is not a LoRA configuration (expected \"{PeftType}\")");
        var c = new LoraConfig();
        if (read.Has("r")) c = c with { R = read.Int("r") };
        if (read.Has("lora_alpha")) c = c with { LoraAlpha = read.Double("lora_alpha") };
        if (read.Has("lora_dropout")) c = c with { LoraDropout = read.Double("lora_dropout") };
        if (read.Has("target_modules")) c = c with { TargetModules = read.Strings("target_modules") };
        if (read.Has("bias")) c = c with { Bias = read.String("bias") };
        if (read.Has("use_rslora")) c = c with { UseRsLora = read.Bool("use_rslora") };
        if (read.Has("modules_to_save")) c = c with { ModulesToSave = read.Strings("modules_to_save") };
        if (read.Has("fan_in_fan_out") && read.Bool("fan_in_fan_out"))
            throw new InvalidTunerConfigException(source, "fan_in_fan_out", "must be false: the layer reads GPT-2's Conv1D orientation itself");
        if (read.Has("init_lora_weights") && !read.Bool("init_lora_weights"))
            throw new InvalidTunerConfigException(source, "init_lora_weights", "must be true: B starts at zero so the tuned model starts as the base");
        c.Validate(source);
        return c;
    }

    /// <summary>Value equality, lists by their elements (a trial's method compares by value).</summary>
    public bool Equals(LoraConfig? other) =>
        other is not null && R == other.R && LoraAlpha == other.LoraAlpha && LoraDropout == other.LoraDropout && Bias == other.Bias
        && UseRsLora == other.UseRsLora && SameList(TargetModules, other.TargetModules) && SameList(ModulesToSave, other.ModulesToSave);

    public override int GetHashCode() => HashCode.Combine(R, LoraAlpha, LoraDropout, Bias, UseRsLora, TargetModules?.Count, ModulesToSave?.Count);

    internal static bool SameList(IReadOnlyList<string>? a, IReadOnlyList<string>? b) =>
        a is null ? b is null : b is not null && a.SequenceEqual(b);
}
