using System;
using System.IO;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;

namespace Mpo.Training;

/// <summary>
/// The scalar part of a training checkpoint (<c>trainer_state.json</c>): where training stands and what it needs to go
/// on exactly as an uninterrupted run would. Tensors (parameters, optimizer moments, generator state) live in the
/// checkpoint's safetensors files beside it.
/// </summary>
/// <param name="GlobalStep">Optimizer updates made; also the scheduler's step (one scheduler step per update).</param>
/// <param name="Epoch">Epoch of the next update (informational: derived from <paramref name="GlobalStep"/>).</param>
/// <param name="BatchIndex">Index within <paramref name="Epoch"/> of the next batch (informational).</param>
/// <param name="BatchesPerEpoch">The batch source's epoch length; resuming with another is an error.</param>
/// <param name="TotalSteps">Updates the run was planned for.</param>
/// <param name="ElapsedSeconds">Training time so far, carried into the resumed run's wall time.</param>
/// <param name="EarlyStopping">The best-metric tracker's counters (<see cref="Training.EarlyStopping.Save"/>), or null.</param>
/// <param name="Callbacks">Each callback's state by name.</param>
/// <param name="Options">The options the run was started with (<see cref="TrainerOptions.ToJson"/>).</param>
public sealed record TrainerState(
    long GlobalStep,
    int Epoch,
    int BatchIndex,
    int BatchesPerEpoch,
    long TotalSteps,
    double ElapsedSeconds,
    JsonObject? EarlyStopping,
    JsonObject Callbacks,
    JsonObject Options)
{
    /// <summary>The file name inside a checkpoint folder.</summary>
    public const string FileName = "trainer_state.json";
    const string Format = "mpo-trainer-state/1";

    /// <summary>Writes <c>trainer_state.json</c> into <paramref name="folder"/> (atomically).</summary>
    public void Write(string folder)
    {
        var json = new JsonObject
        {
            ["format"] = Format,
            ["global_step"] = GlobalStep,
            ["scheduler_step"] = GlobalStep,
            ["epoch"] = Epoch,
            ["batch_index"] = BatchIndex,
            ["batches_per_epoch"] = BatchesPerEpoch,
            ["total_steps"] = TotalSteps,
            ["elapsed_seconds"] = ElapsedSeconds,
            ["early_stopping"] = EarlyStopping?.DeepClone(),
            ["callbacks"] = Callbacks.DeepClone(),
            ["options"] = Options.DeepClone(),
        };
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Reads <c>trainer_state.json</c> from checkpoint folder <paramref name="folder"/>.</summary>
    /// <exception cref="CheckpointFormatException">Missing, not JSON, or a key missing or of the wrong type; names the file and key.</exception>
    public static TrainerState Read(string folder)
    {
        var path = Path.GetFullPath(Path.Combine(folder, FileName));
        if (!File.Exists(path)) throw new CheckpointFormatException(path, "missing: not a training checkpoint folder");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new CheckpointFormatException(path, "must hold a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"not valid JSON: {e.Message}", inner: e);
        }
        T Get<T>(string key)
        {
            try
            {
                if (root[key] is JsonValue value && value.TryGetValue<T>(out var result)) return result;
            }
            catch (FormatException) { }
            throw new CheckpointFormatException(path, $"key '{key}' is missing or not a {typeof(T).Name}");
        }
        JsonObject? Object(string key, bool optional)
        {
            var node = root[key];
            if (node is JsonObject o) return o;
            if (node is null && optional) return null;
            throw new CheckpointFormatException(path, $"key '{key}' is missing or not an object");
        }
        var format = Get<string>("format");
        if (format != Format) throw new CheckpointFormatException(path, $"key 'format' is '{format}', expected '{Format}'");
        var step = Get<long>("global_step");
        if (step < 0) throw new CheckpointFormatException(path, $"key 'global_step' is negative ({step})");
        if (Get<long>("scheduler_step") != step)
            throw new CheckpointFormatException(path, "key 'scheduler_step' differs from 'global_step' (one scheduler step per update)");
        return new TrainerState(
            step, Get<int>("epoch"), Get<int>("batch_index"), Get<int>("batches_per_epoch"), Get<long>("total_steps"),
            Get<double>("elapsed_seconds"), Object("early_stopping", optional: true),
            (JsonObject)Object("callbacks", optional: false)!.DeepClone(), (JsonObject)Object("options", optional: false)!.DeepClone());
    }
}
