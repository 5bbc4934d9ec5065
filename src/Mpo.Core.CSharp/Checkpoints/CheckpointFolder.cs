using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Checkpoints;

/// <summary>Everything wrong between a module and a checkpoint, reported together (strict loading).</summary>
public sealed class CheckpointMismatchException : IOException
{
    public string Folder { get; }
    public IReadOnlyList<string> Missing { get; }
    public IReadOnlyList<string> Unexpected { get; }
    public IReadOnlyList<string> ShapeMismatches { get; }

    public CheckpointMismatchException(string folder, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
                                       IReadOnlyList<string> shapeMismatches)
        : base(Describe(folder, missing, unexpected, shapeMismatches))
    {
        Folder = folder;
        Missing = missing;
        Unexpected = unexpected;
        ShapeMismatches = shapeMismatches;
    }

    static string Describe(string folder, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> shapes)
    {
        var lines = new List<string> { $"{folder}: checkpoint does not match the model" };
        void Section(string title, IReadOnlyList<string> items)
        {
            if (items.Count == 0) return;
            lines.Add($"  {title} ({items.Count}):");
            lines.AddRange(items.Take(20).Select(i => "    " + i));
            if (items.Count > 20) lines.Add($"    … and {items.Count - 20} more");
        }
        Section("missing from the checkpoint", missing);
        Section("unexpected in the checkpoint", unexpected);
        Section("shape mismatches", shapes);
        return string.Join("\n", lines);
    }
}

/// <summary>
/// A checkpoint folder in Hugging Face layout: <c>config.json</c> plus either <c>model.safetensors</c> or shards
/// listed by <c>model.safetensors.index.json</c> (<c>weight_map</c>: tensor name → shard file). Tensors are read
/// on demand from memory-mapped shards; names are exactly the checkpoint's.
/// </summary>
public sealed class CheckpointFolder : IDisposable
{
    public const string ConfigFile = "config.json";
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    readonly Dictionary<string, SafeTensorsFile> shards;
    readonly Dictionary<string, SafeTensorsFile> byTensor;

    public string Path { get; }
    /// <summary>The parsed config.json (null when the folder has none).</summary>
    public JsonObject? Config { get; }
    /// <summary>Every tensor name, in shard order then file order.</summary>
    public IReadOnlyList<string> TensorNames { get; }
    /// <summary>The weight files (full paths), by file name: <c>model.safetensors</c> or the index's shards.</summary>
    public IReadOnlyList<string> Files => shards.Keys.OrderBy(f => f, StringComparer.Ordinal).Select(f => System.IO.Path.Combine(Path, f)).ToList();

    CheckpointFolder(string path, JsonObject? config, Dictionary<string, SafeTensorsFile> shards, Dictionary<string, SafeTensorsFile> byTensor, List<string> names)
    {
        Path = path;
        Config = config;
        this.shards = shards;
        this.byTensor = byTensor;
        TensorNames = names;
    }

    /// <summary>Opens a folder (or a single .safetensors file), validating the index strictly: every shard exists and
    /// holds exactly the tensors the index gives it.</summary>
    public static CheckpointFolder Open(string path)
    {
        if (File.Exists(path) && path.EndsWith(".safetensors", StringComparison.Ordinal))
            return FromShards(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, null, new[] { System.IO.Path.GetFileName(path) }, null);
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"{path}: no such checkpoint folder");
        JsonObject? config = null;
        var configPath = System.IO.Path.Combine(path, ConfigFile);
        if (File.Exists(configPath))
        {
            try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject; }
            catch (JsonException e) { throw new CheckpointFormatException(configPath, $"not valid JSON: {e.Message}", null, e); }
            if (config is null) throw new CheckpointFormatException(configPath, "must hold a JSON object");
        }
        var indexPath = System.IO.Path.Combine(path, IndexFile);
        if (File.Exists(indexPath))
        {
            var map = ReadWeightMap(indexPath);
            return FromShards(path, config, map.Values.Distinct().ToArray(), map);
        }
        if (File.Exists(System.IO.Path.Combine(path, SingleFile)))
            return FromShards(path, config, new[] { SingleFile }, null);
        throw new FileNotFoundException($"{path}: neither {SingleFile} nor {IndexFile} is present", System.IO.Path.Combine(path, SingleFile));
    }

    static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(indexPath)); }
        catch (JsonException e) { throw new CheckpointFormatException(indexPath, $"not valid JSON: {e.Message}", null, e); }
        if (root?["weight_map"] is not JsonObject weightMap)
            throw new CheckpointFormatException(indexPath, "has no \"weight_map\" object");
        var map = new Dictionary<string, string>();
        foreach (var (name, file) in weightMap)
        {
            if (file is not JsonValue v || !v.TryGetValue<string>(out var shard) || shard.Contains('/') || shard.Contains('\\'))
                throw new CheckpointFormatException(indexPath, "weight_map entries must be plain file names", name);
            map[name] = shard;
        }
        return map;
    }

    static CheckpointFolder FromShards(string folder, JsonObject? config, string[] files, Dictionary<string, string>? map)
    {
        var shards = new Dictionary<string, SafeTensorsFile>();
        var byTensor = new Dictionary<string, SafeTensorsFile>();
        var names = new List<string>();
        try
        {
            foreach (var file in files)
            {
                var full = System.IO.Path.Combine(folder, file);
                if (!File.Exists(full))
                    throw new FileNotFoundException($"{System.IO.Path.Combine(folder, IndexFile)}: shard {file} is listed but missing", full);
                var shard = SafeTensorsFile.Open(full);
                shards[file] = shard;
                foreach (var info in shard.Tensors)
                {
                    if (map is not null && (!map.TryGetValue(info.Name, out var listed) || listed != file))
                        throw new CheckpointFormatException(full, "holds a tensor the index does not assign to this shard", info.Name);
                    if (!byTensor.TryAdd(info.Name, shard))
                        throw new CheckpointFormatException(full, "tensor also present in another shard", info.Name);
                    names.Add(info.Name);
                }
            }
            if (map is not null)
                foreach (var (name, file) in map)
                    if (!byTensor.ContainsKey(name))
                        throw new CheckpointFormatException(System.IO.Path.Combine(folder, file), "tensor listed in the index is missing from its shard", name);
            return new CheckpointFolder(folder, config, shards, byTensor, names);
        }
        catch
        {
            foreach (var s in shards.Values) s.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => byTensor.ContainsKey(name);

    public SafeTensorInfo Info(string name) => Shard(name).Info(name);

    public Tensor Load(string name, Device? device = null, ScalarType? dtype = null) => Shard(name).Load(name, device, dtype);

    SafeTensorsFile Shard(string name) =>
        byTensor.TryGetValue(name, out var shard) ? shard
        : throw new CheckpointFormatException(Path, $"no such tensor among {TensorNames.Count}; {NameSuggestions.Hint(name, TensorNames)}", name);

    /// <summary>
    /// Copies the checkpoint into <paramref name="module"/>'s parameters and buffers by name. Strict: every missing,
    /// unexpected and shape-mismatched name is collected and reported together, and nothing is copied unless all
    /// match. <paramref name="ignoreUnexpected"/> tolerates extra checkpoint tensors (e.g. a pre-training head).
    /// </summary>
    public void LoadInto(nn.Module module, bool ignoreUnexpected = false)
    {
        var state = module.state_dict();
        var missing = state.Keys.Where(k => !byTensor.ContainsKey(k)).ToList();
        var unexpected = ignoreUnexpected ? new List<string>() : TensorNames.Where(n => !state.ContainsKey(n)).ToList();
        var shapes = state.Where(kv => byTensor.ContainsKey(kv.Key))
            .Select(kv => (kv.Key, Model: kv.Value.shape, Stored: Info(kv.Key).Shape))
            .Where(x => !x.Model.SequenceEqual(x.Stored))
            .Select(x => $"{x.Key}: model [{string.Join(",", x.Model)}], checkpoint [{string.Join(",", x.Stored)}]")
            .ToList();
        if (missing.Count + unexpected.Count + shapes.Count > 0)
            throw new CheckpointMismatchException(Path, missing, unexpected, shapes);
        using var _ = no_grad();
        foreach (var (name, target) in state)
        {
            using var scope = NewDisposeScope();
            target.copy_(Load(name, target.device, target.dtype));
        }
    }

    /// <summary>
    /// Writes tensors (and optionally config.json) in Hugging Face layout: one <c>model.safetensors</c>, or shards of
    /// at most <paramref name="maxShardBytes"/> with <c>model.safetensors.index.json</c>. Every file is written under a
    /// temporary name and renamed; the index (or single file) comes last, so a reader never sees a half-saved folder.
    /// </summary>
    public static void Save(string folder, IEnumerable<KeyValuePair<string, Tensor>> tensors, JsonObject? config = null,
                            ScalarType? storage = null, long maxShardBytes = 5L << 30, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        var items = tensors.ToList();
        long Bytes(Tensor t) => t.numel() * (storage is { } s ? SafeTensors.ElementSize(SafeTensors.ToSafe(s)) : t.ElementSize);
        var groups = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long size = 0;
        foreach (var item in items)
        {
            long b = Bytes(item.Value);
            if (size > 0 && size + b > maxShardBytes) { groups.Add(new()); size = 0; }
            groups[^1].Add(item);
            size += b;
        }
        if (config is not null)
            AtomicFile.WriteAllText(System.IO.Path.Combine(folder, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        IEnumerable<KeyValuePair<string, Tensor>> Stored(List<KeyValuePair<string, Tensor>> group) =>
            storage is { } s ? group.Select(kv => KeyValuePair.Create(kv.Key, kv.Value.to(s))) : group;
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { ["format"] = "pt" };
        if (groups.Count == 1)
        {
            using var scope = NewDisposeScope();
            SafeTensors.Save(System.IO.Path.Combine(folder, SingleFile), Stored(groups[0]), meta);
            return;
        }
        var weightMap = new JsonObject();
        long total = 0;
        for (int i = 0; i < groups.Count; i++)
        {
            using var scope = NewDisposeScope();
            string file = $"model-{i + 1:D5}-of-{groups.Count:D5}.safetensors";
            SafeTensors.Save(System.IO.Path.Combine(folder, file), Stored(groups[i]), meta);
            foreach (var kv in groups[i]) { weightMap[kv.Key] = file; total += Bytes(kv.Value); }
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        AtomicFile.WriteAllText(System.IO.Path.Combine(folder, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    public void Dispose()
    {
        foreach (var s in shards.Values) s.Dispose();
    }
}
