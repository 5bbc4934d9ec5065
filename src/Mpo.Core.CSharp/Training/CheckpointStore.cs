using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Mpo.Checkpoints;

namespace Mpo.Training;

/// <summary>The manifest of a run's checkpoints: the latest, the best, and every one kept (oldest first).</summary>
public sealed record CheckpointManifest(string Latest, string? Best, IReadOnlyList<string> Checkpoints);

/// <summary>
/// The <c>checkpoint-N</c> folders of a run's output folder. Each is written under a hidden temporary name and renamed
/// into place only when complete, and the manifest (<c>checkpoints.json</c>) naming it is written after the rename, so
/// a process killed at any moment leaves the previous checkpoint and manifest intact. Only the last
/// <c>keepLast</c> checkpoints and the best one are kept.
/// </summary>
public sealed class CheckpointStore
{
    /// <summary>The manifest's file name.</summary>
    public const string ManifestFile = "checkpoints.json";
    const string Prefix = "checkpoint-";
    static readonly Regex CheckpointName = new(@"^checkpoint-(\d+)$", RegexOptions.CultureInvariant);

    public CheckpointStore(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Folder = Path.GetFullPath(folder);
    }

    /// <summary>The run's output folder.</summary>
    public string Folder { get; }

    /// <summary>The folder name of the checkpoint at <paramref name="step"/>.</summary>
    public static string NameOf(long step) => Prefix + step;

    /// <summary>Full path of the checkpoint at <paramref name="step"/> (whether or not it exists).</summary>
    public string PathOf(long step) => Path.Combine(Folder, NameOf(step));

    /// <summary>The manifest, or null when no checkpoint has been written.</summary>
    /// <exception cref="CheckpointFormatException">The manifest is malformed.</exception>
    public CheckpointManifest? ReadManifest()
    {
        var path = Path.Combine(Folder, ManifestFile);
        if (!File.Exists(path)) return null;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new FormatException("not an object");
            var latest = root["latest"]!.GetValue<string>();
            var best = root["best"]?.GetValue<string>();
            var kept = root["checkpoints"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
            if (!CheckpointName.IsMatch(latest) || kept.Any(k => !CheckpointName.IsMatch(k)))
                throw new FormatException("names must be checkpoint-<step>");
            return new CheckpointManifest(latest, best, kept);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NullReferenceException)
        {
            throw new CheckpointFormatException(path, $"not a checkpoint manifest: {e.Message}", inner: e);
        }
    }

    /// <summary>Full path of the latest checkpoint, or null when there is none.</summary>
    public string? Latest => ReadManifest() is { } m ? Path.Combine(Folder, m.Latest) : null;

    /// <summary>
    /// Writes the checkpoint of <paramref name="step"/>: <paramref name="write"/> fills a temporary folder, which is
    /// then renamed to <c>checkpoint-step</c> (replacing an older one of the same step, e.g. from an abandoned run),
    /// the manifest is rewritten, and checkpoints beyond the last <paramref name="keepLast"/> are deleted, except
    /// the one at <paramref name="bestStep"/>. Checkpoints after <paramref name="step"/> (left by a run that was
    /// resumed from an earlier point) are deleted too: they belong to another history.
    /// </summary>
    /// <returns>The checkpoint's full path.</returns>
    public string Save(long step, long? bestStep, int keepLast, Action<string> write)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keepLast);
        ArgumentNullException.ThrowIfNull(write);
        Directory.CreateDirectory(Folder);
        var name = NameOf(step);
        var final = Path.Combine(Folder, name);
        var temp = Path.Combine(Folder, $".{name}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            write(temp);
            if (Directory.Exists(final))
            {
                var old = Path.Combine(Folder, $".{name}.old-{Guid.NewGuid():N}");
                Directory.Move(final, old);
                Directory.Move(temp, final);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, final);
            }
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }

        var steps = OnDisk().Where(s => s <= step).Append(step).Distinct().OrderBy(s => s).ToList();
        var keep = steps.TakeLast(keepLast).ToHashSet();
        string? best = null;
        if (bestStep is { } b && steps.Contains(b))
        {
            keep.Add(b);
            best = NameOf(b);
        }
        var manifest = new JsonObject
        {
            ["latest"] = name,
            ["best"] = best,
            ["checkpoints"] = new JsonArray(keep.OrderBy(s => s).Select(s => (JsonNode)JsonValue.Create(NameOf(s))!).ToArray()),
        };
        AtomicFile.WriteAllText(Path.Combine(Folder, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        foreach (var s in OnDisk().Where(s => !keep.Contains(s)))
            Directory.Delete(PathOf(s), recursive: true);
        return final;
    }

    /// <summary>Deletes temporary folders left by a process that died while writing a checkpoint.</summary>
    public void RemoveIncomplete()
    {
        if (!Directory.Exists(Folder)) return;
        foreach (var dir in Directory.GetDirectories(Folder, "." + Prefix + "*"))
            if (dir.Contains(".tmp-", StringComparison.Ordinal) || dir.Contains(".old-", StringComparison.Ordinal))
                Directory.Delete(dir, recursive: true);
    }

    IEnumerable<long> OnDisk() =>
        Directory.Exists(Folder)
            ? Directory.GetDirectories(Folder)
                .Select(d => CheckpointName.Match(Path.GetFileName(d)))
                .Where(m => m.Success)
                .Select(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
                .ToList()
            : Enumerable.Empty<long>();
}
