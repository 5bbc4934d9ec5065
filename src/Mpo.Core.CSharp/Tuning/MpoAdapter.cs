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
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    const string Format = "mpo-adapter/1";

    /// <summary>SHA-256 over the base checkpoint's weight files (names and bytes, in name order).</summary>
    public static string CheckpointHash(string baseFolder)
    {
        using var checkpoint = CheckpointFolder.Open(baseFolder);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in checkpoint.Files)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
            using var stream = File.OpenRead(file);
            var buffer = new byte[1 << 20];
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0) hash.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

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
        Directory.CreateDirectory(folder);
        var tensors = Tensors(tuned);
        SafeTensors.Save(Path.Combine(folder, WeightsFile), tensors.Select(t => KeyValuePair.Create(t.Name, t.Tensor)),
                         new Dictionary<string, string> { ["format"] = Format });
        var config = tuned.Config.ToJson();
        var model = tuned.Model;
        config["base_model_name_or_path"] = baseFolder;
        config["base_model"] = new JsonObject
        {
            ["architecture"] = model.Architecture,
            ["labels"] = new JsonArray(model.Config.Labels.Select(l => (JsonNode)l).ToArray()),
            ["pad_token_id"] = model.Config.PadTokenId,
            ["checkpoint_sha256"] = CheckpointHash(baseFolder),
        };
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
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
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
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"{adapterFolder}: no {ConfigFile} (not an MPO adapter folder)", configPath);
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidTunerConfigException(configPath, "(file)", "must hold a JSON object"); }
        catch (JsonException e) { throw new InvalidTunerConfigException(configPath, "(file)", $"not valid JSON: {e.Message}"); }
        var tunerJson = new JsonObject();
        foreach (var (key, value) in json)
            if (!AdapterFields.Contains(key)) tunerJson[key] = value?.DeepClone();
        var config = MpoTunerConfig.FromJson(tunerJson, configPath);
        var baseInfo = json["base_model"] as JsonObject ?? throw new InvalidTunerConfigException(configPath, "base_model", "missing");
        string Text(JsonObject o, string key, string field) =>
            o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidTunerConfigException(configPath, field, "missing or not a string");

        var expected = Text(baseInfo, "checkpoint_sha256", "base_model.checkpoint_sha256");
        var actual = CheckpointHash(baseFolder);
        if (expected != actual)
        {
            using var checkpoint = CheckpointFolder.Open(baseFolder);
            throw new InvalidTunerConfigException(configPath, "base_model.checkpoint_sha256",
                $"this adapter was trained on a base checkpoint whose weights hash to {expected}, but {string.Join(", ", checkpoint.Files)} hash to {actual}: " +
                $"{baseFolder} is not the base it was trained on");
        }
        var labels = (baseInfo["labels"] as JsonArray)?.Select(l => l!.GetValue<string>()).ToArray();
        int? pad = baseInfo["pad_token_id"] is JsonValue p && p.TryGetValue<int>(out var id) ? id : null;
        var (model, _) = PretrainedModel.Load(baseFolder, Text(baseInfo, "architecture", "base_model.architecture"), labels, device, pad);
        try
        {
            var tuned = new MpoTuner(config).Apply(model);
            var recorded = (json["targets"] as JsonArray ?? throw new InvalidTunerConfigException(configPath, "targets", "missing")).Select(t => t as JsonObject).ToList();
            if (recorded.Count != tuned.Targets.Count)
                throw new InvalidTunerConfigException(configPath, "targets",
                    $"records {recorded.Count} decomposed modules, but its configuration selects {tuned.Targets.Count} in {baseFolder}");
            for (int i = 0; i < recorded.Count; i++)
                Reconcile(tuned, tuned.Targets[i], recorded[i] ?? throw new InvalidTunerConfigException(configPath, $"targets[{i}]", "not an object"), configPath, $"targets[{i}]");
            LoadTensors(tuned, weightsPath);
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

    static void LoadTensors(TunedModel tuned, string weightsPath)
    {
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException($"{weightsPath}: missing (the adapter's trained tensors)", weightsPath);
        using var file = SafeTensorsFile.Open(weightsPath);
        var parameters = tuned.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        var wanted = MpoAdapter.Tensors(tuned).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var info in file.Tensors)
        {
            if (!parameters.TryGetValue(info.Name, out var parameter))
                throw new CheckpointFormatException(weightsPath, "is no parameter of the tuned model", info.Name);
            if (!info.Shape.SequenceEqual(parameter.shape))
                throw new CheckpointFormatException(weightsPath,
                    $"has shape [{string.Join(",", info.Shape)}], the tuned model's parameter [{string.Join(",", parameter.shape)}]", info.Name);
            wanted.Remove(info.Name);
        }
        if (wanted.Count > 0)
            throw new CheckpointFormatException(weightsPath, $"lacks trained tensors of the tuned model: {string.Join(", ", wanted.Take(8))}{(wanted.Count > 8 ? ", …" : "")}");
        using var noGrad = no_grad();
        foreach (var info in file.Tensors)
        {
            using var scope = NewDisposeScope();
            var parameter = parameters[info.Name];
            parameter.copy_(file.Load(info.Name, parameter.device, parameter.dtype));
        }
    }
}
