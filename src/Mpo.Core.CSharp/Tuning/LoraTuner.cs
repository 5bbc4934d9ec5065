using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>One module LoRA adapted: its dotted path, family and what it was (Linear or GPT-2's Conv1D).</summary>
public sealed record LoraTarget(string Path, string Family, DenseKind Kind);

/// <summary>
/// LoRA as peft applies it (<c>get_peft_model</c> with a <see cref="LoraConfig"/>), the modern peer MPOP is compared
/// against at matched trained parameters: every base parameter frozen; each target module (selected by family through
/// <see cref="TargetPatterns"/>, as the MPO tuner selects them) wrapped in a <see cref="LoraLinear"/>; the
/// configuration's biases and the modules to save (by default the task head) trained beside the adapter. Trainable
/// parameters are r·(in + out) per target plus those.
/// </summary>
public sealed class LoraTuner : IStructuralTuner
{
    public LoraTuner(LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("LoRA configuration");
        Config = config;
    }

    public LoraConfig Config { get; }

    /// <summary>The target modules of <paramref name="model"/> (errors name a family that matches nothing).</summary>
    public IReadOnlyList<TargetModule> Select(PretrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var families = Config.TargetModules ?? LoraConfig.DefaultTargets(model.Config.ModelType);
        var targets = TargetPatterns.Match(model, families.ToArray());
        foreach (var t in targets)
            if (t.Kind == DenseKind.Embedding)
                throw new ArgumentException($"target_modules: '{t.Path}' ({t.Family}) is an embedding; LoRA here adapts linear maps", "target_modules");
        return targets;
    }

    /// <summary>Adapts <paramref name="model"/> in place (A and B drawn from torch's global generator: seed it first).</summary>
    public LoraModel Apply(PretrainedModel model)
    {
        var selected = Select(model);
        foreach (var (_, p) in model.named_parameters()) p.requires_grad = false;
        var targets = new List<LoraTarget>();
        foreach (var target in selected)
        {
            var kind = target.Kind;
            var layer = new LoraLinear((nn.Module<Tensor, Tensor>)target.Module, Config.R, Config.Scaling, Config.LoraDropout);
            ModuleSurgery.Replace(model, target.Path, layer);
            targets.Add(new LoraTarget(target.Path, target.Family, kind));
        }
        var adapted = targets.Select(t => t.Path + ".").ToArray();
        var saved = ModulesToSave(model);
        foreach (var (name, p) in model.named_parameters())
        {
            bool lora = name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);
            bool bias = name.EndsWith(".bias", StringComparison.Ordinal) && (Config.Bias == "all"
                        || (Config.Bias == "lora_only" && adapted.Any(a => name.StartsWith(a, StringComparison.Ordinal))));
            if (lora || bias || saved.Any(s => name.StartsWith(s + ".", StringComparison.Ordinal))) p.requires_grad = true;
        }
        return new LoraModel(model, Config, targets);
    }

    /// <summary>Module paths trained in full: the named ones (each must match a module), or the task head.</summary>
    IReadOnlyList<string> ModulesToSave(PretrainedModel model)
    {
        var modules = model.named_modules().Select(m => m.name).Where(n => n.Length > 0).ToList();
        if (Config.ModulesToSave is null)
            return modules.Where(m => ModelParts.Of(model.Config.ModelType, m).Kind == PartKind.Head).ToList();
        var paths = new List<string>();
        foreach (var name in Config.ModulesToSave)
        {
            var hits = modules.Where(m => m == name || m.EndsWith("." + name, StringComparison.Ordinal)).ToList();
            if (hits.Count == 0)
                throw new ArgumentException($"modules_to_save: '{name}' matches no module of this {model.Architecture}", "modules_to_save");
            paths.AddRange(hits);
        }
        return paths;
    }

    /// <summary>LoRA reads no weight: shapes for counting come from applying it to the meta-device model.</summary>
    void IStructuralTuner.ApplyShapes(PretrainedModel model) => Apply(model);
}

/// <summary>A model with LoRA layers in place (peft's <c>PeftModel</c>); owns the model.</summary>
public sealed class LoraModel : IDisposable
{
    bool merged;

    public LoraModel(PretrainedModel model, LoraConfig config, IReadOnlyList<LoraTarget> targets)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Config = config ?? throw new ArgumentNullException(nameof(config));
        Targets = targets ?? throw new ArgumentNullException(nameof(targets));
    }

    public PretrainedModel Model { get; }
    public LoraConfig Config { get; }
    public IReadOnlyList<LoraTarget> Targets { get; }

    /// <summary>The LoRA layer now at a target's path.</summary>
    public LoraLinear Layer(LoraTarget target) =>
        ModuleSurgery.Find(Model, target.Path) as LoraLinear
        ?? throw new InvalidOperationException($"'{target.Path}' no longer holds a LoRA layer (merged?)");

    /// <summary>Trainable and total parameters (<see cref="ParameterCounting.Count"/>).</summary>
    public ParameterCount Count() => ParameterCounting.Count(Model);

    /// <summary>Folds every update into its base module (peft's <c>merge_and_unload</c>): a plain model of its class
    /// whose logits equal the adapted model's, saved by <see cref="PretrainedModel.Save"/> as a Hugging Face
    /// checkpoint. This LoRA model is spent afterwards.</summary>
    public PretrainedModel Merge()
    {
        if (merged) throw new InvalidOperationException("this LoRA model was merged already");
        foreach (var target in Targets)
        {
            var layer = Layer(target);
            var dense = layer.Merge();
            ModuleSurgery.Replace(Model, target.Path, dense);
            layer.Dispose();
        }
        merged = true;
        return Model;
    }

    public void Dispose() => Model.Dispose();
}
