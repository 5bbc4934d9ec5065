using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;

namespace Mpo.Training;

/// <summary>
/// A run's metrics as JSON lines (<c>metrics.jsonl</c>), one object per logged step or evaluation, each with a
/// <c>"step"</c>. Lines are appended and flushed as they happen, so a killed run leaves everything up to its last line;
/// a resumed run first cuts the file back to its checkpoint's step (<see cref="TruncateAfter"/>) so that the file
/// reads as one uninterrupted run.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    /// <summary>The file name inside a run's output folder.</summary>
    public const string FileName = "metrics.jsonl";

    readonly StreamWriter writer;

    MetricsLog(string path, StreamWriter writer)
    {
        Path = path;
        this.writer = writer;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Opens <paramref name="path"/> for appending (creating it and its folder if needed).</summary>
    public static MetricsLog Append(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var stream = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.Read);
        return new MetricsLog(full, new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" });
    }

    /// <summary>Appends one record as a single line.</summary>
    public void Write(JsonObject record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record["step"] is null) throw new ArgumentException("A metrics record needs a \"step\".", nameof(record));
        writer.WriteLine(record.ToJsonString());
    }

    /// <summary>Every record of <paramref name="path"/>. A last line without its newline (the process died while
    /// writing it) is ignored; any other line that is not a JSON object with a "step" is an error naming the line.</summary>
    /// <exception cref="CheckpointFormatException">A malformed line.</exception>
    public static IReadOnlyList<JsonObject> Read(string path)
    {
        var text = File.ReadAllText(path, Encoding.UTF8);
        var lines = text.Split('\n');
        // What follows the last '\n' is empty, or a line the writer did not finish.
        var complete = lines.Length - 1;
        var records = new List<JsonObject>(complete);
        for (var i = 0; i < complete; i++)
        {
            if (lines[i].Length == 0) continue;
            JsonObject? record;
            try { record = JsonNode.Parse(lines[i]) as JsonObject; }
            catch (JsonException e) { throw new CheckpointFormatException(path, $"line {i + 1} is not valid JSON: {e.Message}", inner: e); }
            if (record?["step"] is not JsonValue step || !step.TryGetValue<long>(out _))
                throw new CheckpointFormatException(path, $"line {i + 1} is not a JSON object with an integer \"step\"");
            records.Add(record);
        }
        return records;
    }

    /// <summary>The run's wall time in seconds (evaluations included, summed across resumes): the largest
    /// <c>wall_time</c> of <paramref name="path"/>'s records; 0 when none has one.</summary>
    /// <exception cref="CheckpointFormatException">A malformed line.</exception>
    public static double WallTime(string path) =>
        Read(path).Select(r => r["wall_time"] is JsonValue v && v.TryGetValue<double>(out var t) ? t : 0.0).DefaultIfEmpty(0.0).Max();

    /// <summary>Rewrites <paramref name="path"/> (atomically) keeping only records with <c>step ≤ <paramref name="step"/></c>;
    /// nothing to do when the file does not exist.</summary>
    public static void TruncateAfter(string path, long step)
    {
        if (!File.Exists(path)) return;
        var kept = Read(path).Where(r => r["step"]!.GetValue<long>() <= step);
        var text = new StringBuilder();
        foreach (var record in kept) text.Append(record.ToJsonString()).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    public void Dispose() => writer.Dispose();
}
