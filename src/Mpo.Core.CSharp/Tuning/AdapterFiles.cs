using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// What every adapter folder shares (peft's layout: <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>
/// holding only trained tensors): the record of the base checkpoint (class, labels, pad id and the hash of its
/// weights, so loading onto another base is refused), reading the config, loading the base, and loading the saved
/// tensors into the tuned model after checking names and shapes. MPO and LoRA adapters both go through here.
/// </summary>
public static class AdapterFiles
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

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

    /// <summary>The <c>base_model</c> record of a model tuned from the checkpoint in <paramref name="baseFolder"/>.</summary>
    public static JsonObject DescribeBase(PretrainedModel model, string baseFolder) => new()
    {
        ["architecture"] = model.Architecture,
        ["labels"] = new JsonArray(model.Config.Labels.Select(l => (JsonNode)l).ToArray()),
        ["pad_token_id"] = model.Config.PadTokenId,
        ["checkpoint_sha256"] = CheckpointHash(baseFolder),
    };

    /// <summary>Writes the trained tensors, then the config, each atomically (a folder with a config is complete).</summary>
    public static void Write(string folder, IEnumerable<KeyValuePair<string, Tensor>> tensors, string format, JsonObject config)
    {
        Directory.CreateDirectory(folder);
        SafeTensors.Save(Path.Combine(folder, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = format });
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The adapter's config object; errors name the file.</summary>
    public static JsonObject ReadConfig(string adapterFolder, string kind)
    {
        var configPath = Path.Combine(adapterFolder, ConfigFile);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"{adapterFolder}: no {ConfigFile} (not {kind} adapter folder)", configPath);
        try { return JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidTunerConfigException(configPath, "(file)", "must hold a JSON object"); }
        catch (JsonException e) { throw new InvalidTunerConfigException(configPath, "(file)", $"not valid JSON: {e.Message}"); }
    }

    /// <summary>Loads the base checkpoint after checking it is the one <paramref name="json"/>'s <c>base_model</c>
    /// records (its weights' hash), with the recorded class, labels and pad id.</summary>
    public static PretrainedModel LoadBase(JsonObject json, string configPath, string baseFolder, Device? device)
    {
        var baseInfo = json["base_model"] as JsonObject ?? throw new InvalidTunerConfigException(configPath, "base_model", "missing");
        string Text(string key) =>
            baseInfo[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidTunerConfigException(configPath, "base_model." + key, "missing or not a string");
        var expected = Text("checkpoint_sha256");
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
        var (model, _) = PretrainedModel.Load(baseFolder, Text("architecture"), labels, device, pad);
        return model;
    }

    /// <summary>
    /// Copies the tensors of <paramref name="weightsPath"/> into <paramref name="model"/>'s parameters: file key
    /// <paramref name="prefix"/> + parameter name. Every key must name a parameter of that shape and every name in
    /// <paramref name="wanted"/> must be there; otherwise nothing is loaded and the error names the file and tensor.
    /// </summary>
    public static void LoadTensors(nn.Module model, IEnumerable<string> wanted, string weightsPath, string prefix = "")
    {
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException($"{weightsPath}: missing (the adapter's trained tensors)", weightsPath);
        using var file = SafeTensorsFile.Open(weightsPath);
        var parameters = model.named_parameters().ToDictionary(p => prefix + p.name, p => p.parameter, StringComparer.Ordinal);
        var missing = wanted.Select(n => prefix + n).ToHashSet(StringComparer.Ordinal);
        foreach (var info in file.Tensors)
        {
            if (!parameters.TryGetValue(info.Name, out var parameter))
                throw new CheckpointFormatException(weightsPath, "is no parameter of the tuned model", info.Name);
            if (!info.Shape.SequenceEqual(parameter.shape))
                throw new CheckpointFormatException(weightsPath,
                    $"has shape [{string.Join(",", info.Shape)}], the tuned model's parameter [{string.Join(",", parameter.shape)}]", info.Name);
            missing.Remove(info.Name);
        }
        if (missing.Count > 0)
            throw new CheckpointFormatException(weightsPath, $"lacks trained tensors of the tuned model: {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", …" : "")}");
        using var noGrad = no_grad();
        foreach (var info in file.Tensors)
        {
            using var scope = NewDisposeScope();
            var parameter = parameters[info.Name];
            parameter.copy_(file.Load(info.Name, parameter.device, parameter.dtype));
        }
    }
}
