using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;
using Mpo.Decomposition;
using Mpo.Layers;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// A fine-tuned MPO model as peft stores an adapter: <c>adapter_config.json</c> (the tuner configuration, the base
/// checkpoint's hash, and per decomposed module its factors, bonds and central tensor's hash) and
/// <c>adapter_model.safetensors</c> with only what was trained — auxiliary tensors, trained biases, norms, heads —
/// plus the central tensors that squeezing changed. Everything else is re-derived from the base: its weights are
/// decomposed again (the gauge is reproducible, <see cref="MpoDecomposer"/>), and the central tensors the adapter was
/// trained against are checked by hash before anything is loaded.
/// </summary>
public static class MpoAdapter
{
    public const string ConfigFile = AdapterFiles.ConfigFile;
    public const string WeightsFile = AdapterFiles.WeightsFile;
    const string Format = "mpo-adapter/1";

    /// <summary>SHA-256 over the base checkpoint's weight files (<see cref="AdapterFiles.CheckpointHash"/>).</summary>
    public static string CheckpointHash(string baseFolder) => AdapterFiles.CheckpointHash(baseFolder);

    /// <summary>The tensors an adapter holds: every trainable parameter, and the central tensor of every target whose
    /// bonds are no longer the ones it was decomposed with (squeezed).</summary>
    public static IReadOnlyList<(string Name, Tensor Tensor)> Tensors(TunedModel tuned)
    {
        var squeezedCentrals = tuned.Targets
            .Where(t => !tuned.Layer(t).Bonds.SequenceEqual(t.Bonds))
            .Select(t => t.Path + "." + MpoLayer.CentralName)
            .ToHashSet(StringComparer.Ordinal);
        return tuned.Model.named_parameters()
            .Where(p => p.parameter.requires_grad || squeezedCentrals.Contains(p.name))
            .Select(p => (p.name, (Tensor)p.parameter))
            .ToList();
    }

    /// <summary>
    /// Writes the adapter of <paramref name="tuned"/>, which was tuned from the checkpoint in
    /// <paramref name="baseFolder"/>, to <paramref name="folder"/>; the weights first and the config last, each
    /// atomically, so a folder with a config is complete.
    /// </summary>
    public static void Save(TunedModel tuned, string folder, string baseFolder)
    {
        ArgumentNullException.ThrowIfNull(tuned);
        var tensors = Tensors(tuned);
        var config = tuned.Config.ToJson();
        config["base_model_name_or_path"] = baseFolder;
        config["base_model"] = AdapterFiles.DescribeBase(tuned.Model, baseFolder);
        config["targets"] = new JsonArray(tuned.Targets.Select(t => (JsonNode)new JsonObject
        {
            ["path"] = t.Path,
            ["family"] = t.Family,
            ["kind"] = t.Kind.ToString(),
            ["row_factors"] = Ints(t.Factorization.RowFactors),
            ["col_factors"] = Ints(t.Factorization.ColFactors),
            ["rows"] = t.Factorization.Rows,
            ["cols"] = t.Factorization.Cols,
            ["bonds"] = Ints(t.Bonds),
            ["trained_bonds"] = Ints(tuned.Layer(t).Bonds),
            ["central_sha256"] = t.CentralSha256,
            ["central_fingerprint"] = new JsonArray((t.CentralFingerprint ?? Array.Empty<double>()).Select(v => (JsonNode)v).ToArray()),
        }).ToArray());
        config["saved_tensors"] = new JsonArray(tensors.Select(t => (JsonNode)t.Name).ToArray());
        AdapterFiles.Write(folder, tensors.Select(t => KeyValuePair.Create(t.Name, t.Tensor)), Format, config);
    }

    static JsonArray Ints(IEnumerable<int> values) => new(values.Select(v => (JsonNode)v).ToArray());

    static readonly string[] AdapterFields = { "base_model_name_or_path", "base_model", "targets", "saved_tensors" };

    /// <summary>
    /// Loads the base checkpoint in <paramref name="baseFolder"/>, applies the adapter's tuner configuration to it, and
    /// loads the adapter's tensors. Refused, naming the file, when the base is not the checkpoint the adapter was
    /// trained on (its hash), when a re-decomposed central tensor differs from the one the adapter was trained against,
    /// or when the adapter's tensors do not fit the tuned model.
    /// </summary>
    public static TunedModel Load(string baseFolder, string adapterFolder, Device? device = null)
    {
        var configPath = Path.Combine(adapterFolder, ConfigFile);
        var weightsPath = Path.Combine(adapterFolder, WeightsFile);
        var json = AdapterFiles.ReadConfig(adapterFolder, "an MPO");
        var tunerJson = new JsonObject();
        foreach (var (key, value) in json)
            if (!AdapterFields.Contains(key)) tunerJson[key] = value?.DeepClone();
        var config = MpoTunerConfig.FromJson(tunerJson, configPath);
        var model = AdapterFiles.LoadBase(json, configPath, baseFolder, device);
        try
        {
            var tuned = new MpoTuner(config).Apply(model);
            var recorded = (json["targets"] as JsonArray ?? throw new InvalidTunerConfigException(configPath, "targets", "missing")).Select(t => t as JsonObject).ToList();
            if (recorded.Count != tuned.Targets.Count)
                throw new InvalidTunerConfigException(configPath, "targets",
                    $"records {recorded.Count} decomposed modules, but its configuration selects {tuned.Targets.Count} in {baseFolder}");
            for (int i = 0; i < recorded.Count; i++)
                Reconcile(tuned, tuned.Targets[i], recorded[i] ?? throw new InvalidTunerConfigException(configPath, $"targets[{i}]", "not an object"), configPath, $"targets[{i}]");
            AdapterFiles.LoadTensors(tuned.Model, Tensors(tuned).Select(t => t.Name), weightsPath);
            return tuned;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Checks that a re-derived target is the one recorded, and re-shapes a squeezed one to its trained bonds.</summary>
    static void Reconcile(TunedModel tuned, MpoTarget target, JsonObject record, string configPath, string field)
    {
        int[] IntsOf(string key) =>
            (record[key] as JsonArray)?.Select(v => v!.GetValue<int>()).ToArray() ?? throw new InvalidTunerConfigException(configPath, $"{field}.{key}", "missing");
        var path = record["path"]?.GetValue<string>();
        if (path != target.Path || !IntsOf("row_factors").SequenceEqual(target.Factorization.RowFactors) || !IntsOf("col_factors").SequenceEqual(target.Factorization.ColFactors)
            || !IntsOf("bonds").SequenceEqual(target.Bonds))
            throw new InvalidTunerConfigException(configPath, field,
                $"records '{path}' as [{string.Join(",", IntsOf("row_factors"))}]x[{string.Join(",", IntsOf("col_factors"))}] bonds [{string.Join(",", IntsOf("bonds"))}], " +
                $"but the configuration gives '{target.Path}' {target.Factorization} bonds [{string.Join(",", target.Bonds)}]");
        var sha = record["central_sha256"]?.GetValue<string>();
        var fingerprint = (record["central_fingerprint"] as JsonArray)?.Select(v => v!.GetValue<double>()).ToArray() ?? Array.Empty<double>();
        if (sha != target.CentralSha256 && !SameFingerprint(fingerprint, target.CentralFingerprint!))
            throw new InvalidTunerConfigException(configPath, $"{field}.central_sha256",
                $"the central tensor of '{target.Path}' decomposed from this base (sha256 {target.CentralSha256}) is not the one the adapter was trained against ({sha})");
        var trained = IntsOf("trained_bonds");
        if (!trained.SequenceEqual(target.Bonds))
        {
            // squeezed during training: take the trained shapes; the adapter holds all of these cores
            var layer = tuned.Layer(target);
            target.Factorization.CheckBonds(trained, $"{field}.trained_bonds");
            layer.Truncate(new TruncationSpec.PerBond(trained[1..^1]));
            if (!layer.Bonds.SequenceEqual(trained))
                throw new InvalidTunerConfigException(configPath, $"{field}.trained_bonds", $"[{string.Join(",", trained)}] are not bonds the cores of '{target.Path}' can carry");
        }
    }

    /// <summary>Equal up to round-off: every entry within 1e-5 of the norm.</summary>
    static bool SameFingerprint(double[] recorded, double[] now) =>
        recorded.Length == now.Length && now.Length > 0 && recorded.Zip(now).All(p => Math.Abs(p.First - p.Second) <= 1e-5 * Math.Max(now[0], 1e-30));
}
