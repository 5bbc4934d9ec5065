using System;
using System.IO;
using System.Text;

namespace Mpo.Checkpoints;

/// <summary>
/// Replaces a file all at once: content goes to a temporary sibling, is flushed to disk, and is then renamed over
/// the target. A crash or exception mid-write leaves the previous file untouched, never a truncated one, which
/// matters for checkpoints that a long run overwrites periodically.
/// </summary>
public static class AtomicFile
{
    private const int BufferSize = 1 << 20;

    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/>. The callback receives a writable stream
    /// over a temporary file in the same folder (a rename is only atomic within one file system) and must not
    /// dispose it. If the callback throws, the temporary file is deleted, the target keeps its old content and
    /// the exception propagates.
    /// </summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="write">Writes the complete new content.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no parent folder.", nameof(path));
        // Hidden and unique, so concurrent writers of the same target do not share a temporary file.
        var temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize))
            {
                write(stream);
                // fsync before the rename: otherwise a power loss can leave the new name pointing at empty blocks.
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Atomically replaces <paramref name="path"/> with <paramref name="text"/> as UTF-8 without a byte order mark.</summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="text">The complete new content.</param>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
        Write(path, stream => stream.Write(bytes));
    }

    private static void TryDelete(string temp)
    {
        try
        {
            File.Delete(temp);
        }
        catch (IOException)
        {
            // The original exception is the one worth reporting; a leftover hidden .tmp is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
