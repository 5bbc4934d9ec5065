using System;
using System.IO;
using System.Linq;

namespace Mpo.Checkpoints;

/// <summary>
/// Publishes a folder written elsewhere: a new target is one rename (atomic); into an existing target (one that
/// already holds other files, such as a committed model card) each file is renamed over its counterpart with the
/// named files last, so a reader that waits for those (a checkpoint's weights) never sees a half-written folder.
/// </summary>
public static class AtomicFolder
{
    /// <summary>A fresh staging folder beside <paramref name="target"/> (same file system, so renames are atomic).</summary>
    public static string Stage(string target)
    {
        var full = Path.GetFullPath(target);
        var parent = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{target}' has no parent folder.", nameof(target));
        Directory.CreateDirectory(parent);
        var staged = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staged);
        return staged;
    }

    /// <summary>Moves everything in <paramref name="staged"/> into <paramref name="target"/>; <paramref name="last"/>
    /// (paths relative to the folder) are moved after all other files.</summary>
    public static void Publish(string staged, string target, params string[] last)
    {
        var full = Path.GetFullPath(target);
        if (!Directory.Exists(full))
        {
            Directory.Move(staged, full);
            return;
        }
        var files = Directory.GetFiles(staged, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(staged, f))
            .OrderBy(f => last.Contains(f.Replace('\\', '/')) ? 1 : 0).ThenBy(f => f, StringComparer.Ordinal)
            .ToList();
        foreach (var dir in Directory.GetDirectories(staged, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(full, Path.GetRelativePath(staged, dir)));
        foreach (var file in files)
            File.Move(Path.Combine(staged, file), Path.Combine(full, file), overwrite: true);
        Directory.Delete(staged, recursive: true);
    }

    /// <summary>Removes a staging folder after a failure; never throws (the original error is the one to report).</summary>
    public static void Discard(string staged)
    {
        try
        {
            if (Directory.Exists(staged)) Directory.Delete(staged, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
