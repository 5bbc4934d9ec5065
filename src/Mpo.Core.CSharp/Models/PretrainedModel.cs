using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>
/// A Hugging Face model class ("BertForMaskedLM", "GPT2LMHeadModel", "T5ForConditionalGeneration", …) as a TorchSharp
/// module whose state-dict names are exactly HF's, so checkpoints move between the two without renaming.
/// <para>Loading follows HF's rules: a checkpoint of the same class loads strictly; a checkpoint of another class of the
/// same family (pre-training head → classification head) loads the shared body strictly, initializes this class's
/// head (<see cref="HeadPrefixes"/>) and drops the other head, and says which is which (<see cref="LoadReport"/>).</para>
/// </summary>
public abstract class PretrainedModel : nn.Module<ModelInputs, ModelOutputs>
{
    /// <summary>Validates <paramref name="config"/> (a model is never built from an impossible one).</summary>
    protected PretrainedModel(string architecture, ModelConfig config) : base(architecture)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("config");
        Architecture = architecture;
        Config = config;
    }

    /// <summary>HF class name; written to <c>config.json</c> <c>architectures</c>.</summary>
    public string Architecture { get; }
    public ModelConfig Config { get; }

    /// <summary>HF's <c>base_model_prefix</c> ("bert", "albert", "distilbert", "transformer"; "" for T5).</summary>
    public abstract string BasePrefix { get; }
    /// <summary>True for the bare body class (BertModel, GPT2Model): its names carry no <see cref="BasePrefix"/>.</summary>
    public virtual bool IsBaseModel => false;
    /// <summary>Prefixes of this class's own head, initialized fresh when the checkpoint is another class's.</summary>
    public virtual IReadOnlyList<string> HeadPrefixes => Array.Empty<string>();
    /// <summary>Prefixes (model names) of checkpoint entries this class drops even from a checkpoint of its own class,
    /// reported as dropped (HF's <c>_keys_to_ignore_on_load_unexpected</c> and its "weights not used" warning):
    /// bert-base checkpoints say BertForMaskedLM but were saved from BertForPreTraining with a pooler and a
    /// next-sentence head; albert-base checkpoints carry the pooler.</summary>
    public virtual IReadOnlyList<string> IgnoredOnLoad => Array.Empty<string>();
    /// <summary>Prefixes of this class's parameters a checkpoint of the same class may lack; they keep their fresh
    /// initialization and are reported as initialized (HF's <c>_keys_to_ignore_on_load_missing</c>): BERT's pooler, which
    /// sentence encoders exported without it (arctic-embed) do not have.</summary>
    public virtual IReadOnlyList<string> OptionalOnLoad => Array.Empty<string>();
    /// <summary>State-dict names that are the same parameter as another (tied embeddings): not saved, tolerated when
    /// present in a checkpoint. Maps the copy to its source.</summary>
    public virtual IReadOnlyDictionary<string, string> TiedParameters => new Dictionary<string, string>();
    /// <summary>Checkpoint entries HF versions wrote that hold no weights (e.g. <c>position_ids</c>, GPT-2's causal
    /// <c>attn.bias</c> masks); skipped when loading.</summary>
    public virtual bool IsLegacyBuffer(string checkpointName) => false;

    /// <summary>The tensors a checkpoint of this model holds, in state-dict order, tied copies left out.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> CheckpointTensors()
    {
        var tied = TiedParameters;
        return state_dict().Where(kv => !tied.ContainsKey(kv.Key));
    }

    /// <summary>Key of <c>config.json</c> that records a tuner configuration which changed the model's structure so
    /// that the family's own keys no longer describe it (MoE layers in place of the FFNs, MPOE §3).</summary>
    public const string TunerConfigKey = "mpo_tuner";

    /// <summary>The tuner configuration that changed this model's structure (set by <c>MpoTuner.Apply</c> for MoE
    /// layers), written to <c>config.json</c> under <see cref="TunerConfigKey"/> so that <see cref="Load"/> rebuilds the
    /// same structure before loading the tensors; null for a plain model.</summary>
    public System.Text.Json.Nodes.JsonObject? TunerConfig { get; set; }

    /// <summary>Saves <c>config.json</c> + safetensors in HF layout (atomically, see <see cref="CheckpointFolder.Save"/>).</summary>
    public void Save(string folder, ScalarType? storage = null, long maxShardBytes = 5L << 30)
    {
        var config = Config.ToJson(Architecture);
        if (TunerConfig is not null) config[TunerConfigKey] = TunerConfig.DeepClone();
        CheckpointFolder.Save(folder, CheckpointTensors(), config, storage, maxShardBytes);
    }

    /// <summary>
    /// Copies a checkpoint's weights into this model. Same class: strict (every missing, unexpected and mis-shaped name
    /// reported together). Another class: the body strictly, this head's parameters left as initialized, the other
    /// head's entries dropped. Names with or without <see cref="BasePrefix"/> are both accepted.
    /// </summary>
    public LoadReport LoadWeights(CheckpointFolder checkpoint)
    {
        string? storedClass = (checkpoint.Config?["architectures"] as System.Text.Json.Nodes.JsonArray)?.FirstOrDefault()?.GetValue<string>();
        // Experts saved as n and loaded as m would otherwise surface as a long list of missing and unexpected names.
        CheckpointStructure.Registered?.Check(this, checkpoint);
        bool sameClass = storedClass is null || storedClass == Architecture;
        var tied = TiedParameters;
        var state = state_dict().Where(kv => !tied.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        string prefix = BasePrefix.Length == 0 ? "" : BasePrefix + ".";

        // checkpoint name → model name
        string ToModel(string name)
        {
            if (state.ContainsKey(name) || prefix.Length == 0) return name;
            if (IsBaseModel && name.StartsWith(prefix, StringComparison.Ordinal)) return name[prefix.Length..];
            if (!IsBaseModel && state.ContainsKey(prefix + name)) return prefix + name;
            return name;
        }

        var mapped = checkpoint.TensorNames
            .Where(n => !IsLegacyBuffer(n))
            .Select(n => (Stored: n, Model: ToModel(n)))
            .Where(p => !tied.ContainsKey(p.Model))
            .ToList();
        var present = mapped.Select(p => p.Model).ToHashSet();
        var missing = state.Keys.Where(k => !present.Contains(k)).ToList();
        bool Ignored(string model) => IgnoredOnLoad.Any(h => model.StartsWith(h, StringComparison.Ordinal));
        var unexpected = mapped.Where(p => !state.ContainsKey(p.Model) && !Ignored(p.Model)).Select(p => p.Stored).ToList();
        var fresh = new List<string>();
        var dropped = mapped.Where(p => !state.ContainsKey(p.Model) && Ignored(p.Model)).Select(p => p.Stored).ToList();
        var optional = missing.Where(k => OptionalOnLoad.Any(h => k.StartsWith(h, StringComparison.Ordinal))).ToList();
        fresh.AddRange(optional);
        missing = missing.Except(optional).ToList();
        if (!sameClass)
        {
            var head = missing.Where(k => HeadPrefixes.Any(h => k.StartsWith(h, StringComparison.Ordinal))).ToList();
            fresh.AddRange(head);
            missing = missing.Except(head).ToList();
            dropped.AddRange(unexpected);
            unexpected = new List<string>();
        }
        var shapes = mapped.Where(p => state.ContainsKey(p.Model))
            .Select(p => (p.Model, Want: state[p.Model].shape, Got: checkpoint.Info(p.Stored).Shape))
            .Where(x => !x.Want.SequenceEqual(x.Got))
            .Select(x => $"{x.Model}: model [{string.Join(",", x.Want)}], checkpoint [{string.Join(",", x.Got)}]")
            .ToList();
        if (missing.Count + unexpected.Count + shapes.Count > 0)
            throw new CheckpointMismatchException(checkpoint.Path, missing, unexpected, shapes);

        using var _ = no_grad();
        foreach (var (stored, model) in mapped)
        {
            if (!state.TryGetValue(model, out var target)) continue;
            using var scope = NewDisposeScope();
            target.copy_(checkpoint.Load(stored, target.device, target.dtype));
        }
        return new LoadReport(storedClass ?? Architecture, fresh, dropped);
    }

    /// <summary>
    /// Opens a HF checkpoint folder and builds the model it describes (or <paramref name="architecture"/>, another
    /// head of the same family, e.g. sequence classification on top of a masked-LM checkpoint).
    /// <paramref name="labels"/> replaces the config's labels (a fresh classification head); <paramref name="padTokenId"/>
    /// its <c>pad_token_id</c> (GPT-2 checkpoints have none, and its classifier needs one to find each row's end).
    /// </summary>
    public static (PretrainedModel Model, LoadReport Report) Load(string folder, string? architecture = null,
                                                                  IReadOnlyList<string>? labels = null, Device? device = null,
                                                                  int? padTokenId = null)
    {
        using var checkpoint = CheckpointFolder.Open(folder);
        var config = ModelRegistry.ReadConfig(checkpoint);
        if (labels is not null) config = config with { Labels = labels };
        if (padTokenId is not null) config = config with { PadTokenId = padTokenId };
        architecture ??= ModelRegistry.StoredArchitecture(checkpoint) ?? ModelRegistry.Family(config.ModelType, checkpoint.Path).DefaultArchitecture;
        var model = ModelRegistry.Create(config, architecture);
        // A structurally tuned checkpoint (MoE layers) records its tuner: rebuild that structure, then load into it.
        if (checkpoint.Config?[TunerConfigKey] is System.Text.Json.Nodes.JsonObject tuner)
        {
            var file = System.IO.Path.Combine(checkpoint.Path, CheckpointFolder.ConfigFile);
            var structure = CheckpointStructure.Registered ?? throw new CheckpointFormatException(file,
                $"'{TunerConfigKey}' records a tuner's structure, but no ICheckpointStructure is registered to rebuild it");
            structure.Rebuild(model, tuner, file);
        }
        var report = model.LoadWeights(checkpoint);
        if (device is not null) model.to(device);
        model.eval();   // as HF's from_pretrained: dropout stays off until the caller asks for train()
        return (model, report);
    }
}

/// <summary>What a load did beyond copying: the checkpoint's class, parameters initialized fresh (this class's head),
/// and checkpoint entries dropped (the other class's head).</summary>
public sealed record LoadReport(string CheckpointArchitecture, IReadOnlyList<string> NewlyInitialized, IReadOnlyList<string> Dropped);
