using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// A LoRA model as peft saves it: <c>adapter_config.json</c> (peft's LoRA fields, the base checkpoint's record and
/// the adapted modules) and <c>adapter_model.safetensors</c> holding only the trained tensors (A, B, trained biases,
/// the modules to save) under peft's key prefix <c>base_model.model.</c>.
/// </summary>
public static class LoraAdapter
{
    /// <summary>peft's prefix of every saved key.</summary>
    public const string KeyPrefix = "base_model.model.";
    const string Format = "lora-adapter/1";
    static readonly string[] AdapterFields = { "base_model_name_or_path", "base_model", "targets", "saved_tensors" };

    /// <summary>The trained tensors, by parameter name.</summary>
    public static IReadOnlyList<(string Name, Tensor Tensor)> Tensors(LoraModel model) =>
        model.Model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter)).ToList();

    /// <summary>Writes the adapter of <paramref name="model"/>, tuned from the checkpoint in <paramref name="baseFolder"/>.</summary>
    public static void Save(LoraModel model, string folder, string baseFolder)
    {
        var tensors = Tensors(model);
        var config = model.Config.ToJson();
        config["base_model_name_or_path"] = baseFolder;
        config["base_model"] = AdapterFiles.DescribeBase(model.Model, baseFolder);
        config["targets"] = new JsonArray(model.Targets.Select(t => (JsonNode)new JsonObject
        {
            ["path"] = t.Path,
            ["family"] = t.Family,
            ["kind"] = t.Kind.ToString(),
        }).ToArray());
        config["saved_tensors"] = new JsonArray(tensors.Select(t => (JsonNode)(KeyPrefix + t.Name)).ToArray());
        AdapterFiles.Write(folder, tensors.Select(t => KeyValuePair.Create(KeyPrefix + t.Name, t.Tensor)), Format, config);
    }

    /// <summary>Loads the base (refused when its weights are not the ones the adapter was trained on), applies the
    /// adapter's LoRA configuration and loads the trained tensors. The adapter's tensors overwrite A's random start.</summary>
    public static LoraModel Load(string baseFolder, string adapterFolder, Device? device = null)
    {
        var configPath = Path.Combine(adapterFolder, AdapterFiles.ConfigFile);
        var json = AdapterFiles.ReadConfig(adapterFolder, "a LoRA");
        var loraJson = new JsonObject();
        foreach (var (key, value) in json)
            if (!AdapterFields.Contains(key)) loraJson[key] = value?.DeepClone();
        var config = LoraConfig.FromJson(loraJson, configPath);
        var model = AdapterFiles.LoadBase(json, configPath, baseFolder, device);
        try
        {
            var lora = new LoraTuner(config).Apply(model);
            var recorded = (json["targets"] as JsonArray)?.Select(t => t?["path"]?.GetValue<string>()).ToArray()
                           ?? throw new InvalidTunerConfigException(configPath, "targets", "missing");
            var now = lora.Targets.Select(t => t.Path).ToArray();
            if (!recorded.SequenceEqual(now))
                throw new InvalidTunerConfigException(configPath, "targets",
                    $"records adapted modules {string.Join(", ", recorded)}, but its configuration selects {string.Join(", ", now)} in {baseFolder}");
            AdapterFiles.LoadTensors(model, Tensors(lora).Select(t => t.Name), Path.Combine(adapterFolder, AdapterFiles.WeightsFile), KeyPrefix);
            return lora;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
