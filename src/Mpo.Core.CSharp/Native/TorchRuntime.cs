using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;

namespace Mpo.Native;

/// <summary>libtorch could not be loaded; the message says why in terms of files and symbol versions.</summary>
public sealed class TorchLoadException : Exception
{
    public TorchLoadException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// Makes sure libtorch loads before any tensor is made, and explains it when it cannot. TorchSharp's own message on a
/// failed load ("doesn't contain a reference to libtorch-cpu-linux-x64") hides the real cause, which is usually a
/// missing symbol version (see build/LibTorchPatch.cs) or a missing file.
/// </summary>
public static class TorchRuntime
{
    const string NativeName = "libLibTorchSharp.so";
    static readonly object Gate = new();
    static bool loaded;

    /// <summary>
    /// Weakens missing libstdc++ versions in every copy of libLibTorchSharp.so TorchSharp may load (only where the
    /// system needs it; `dotnet build` already did this for build outputs, so this matters for `dotnet fsi`), then
    /// initializes libtorch. Throws <see cref="TorchLoadException"/> with a diagnosis on failure. Idempotent.
    /// </summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (loaded) return;
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
                foreach (var candidate in NativeCandidates().Where(File.Exists))
                {
                    try { ElfSymbolVersions.WeakenMissingLibStdCxxVersions(candidate); }
                    catch (UnauthorizedAccessException) { /* read-only copy: the diagnosis below will say so */ }
                    catch (IOException) { }
                }
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
                loaded = true;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new TorchLoadException(Diagnose(), e);
            }
        }
    }

    /// <summary>Where TorchSharp looks for its native library: beside TorchSharp.dll (build outputs), the package's
    /// runtimes folder, and the copy it makes under lib/&lt;tfm&gt;/cpu when loaded from the NuGet cache (fsi).</summary>
    public static IReadOnlyList<string> NativeCandidates()
    {
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? ".";
        string rid = RuntimeInformation.RuntimeIdentifier;
        var list = new List<string>
        {
            Path.Combine(dir, NativeName),
            Path.Combine(dir, "runtimes", rid, "native", NativeName),
            Path.Combine(dir, "cpu", NativeName),
            // <packages>/torchsharp/<version>/lib/<tfm>/TorchSharp.dll → <packages>/torchsharp/<version>/runtimes/…
            Path.GetFullPath(Path.Combine(dir, "..", "..", "runtimes", rid, "native", NativeName)),
        };
        return list.Distinct().ToList();
    }

    /// <summary>A readable account of why libtorch does or does not load: each candidate file, what it needs that the
    /// system lacks, and the dynamic loader's own error.</summary>
    public static string Diagnose()
    {
        var report = new StringBuilder("libtorch could not be loaded.\n");
        var present = NativeCandidates().Where(File.Exists).ToList();
        if (present.Count == 0)
        {
            report.Append("Missing file: no ").Append(NativeName).Append(" was found in any of:\n");
            foreach (var c in NativeCandidates()) report.Append("  ").Append(c).Append('\n');
            report.Append("Restore the TorchSharp-cpu package (dotnet build runs paket restore) for this platform.\n");
            return report.ToString();
        }
        var libstdcxx = ElfSymbolVersions.SystemLibStdCxx();
        foreach (var path in present)
        {
            report.Append("- ").Append(path).Append('\n');
            try
            {
                var missing = ElfSymbolVersions.MissingLibStdCxxVersions(path, libstdcxx);
                if (missing.Count > 0)
                    report.Append("  needs ").Append(string.Join(", ", missing.Select(m => m.Version)))
                          .Append(" but the system libstdc++ (").Append(libstdcxx ?? "not found")
                          .Append(") does not define it. `dotnet build` marks that requirement weak; if the file is ")
                          .Append("read-only, copy the package folder somewhere writable.\n");
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                report.Append("  unreadable as ELF: ").Append(e.Message).Append('\n');
            }
            report.Append("  loader says: ").Append(LoaderError(path)).Append('\n');
        }
        return report.ToString();
    }

    /// <summary>The dynamic loader's message for loading <paramref name="path"/> (dlerror text), or "loads".</summary>
    public static string LoaderError(string path)
    {
        try
        {
            var handle = NativeLibrary.Load(path);
            NativeLibrary.Free(handle);
            return "loads";
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            return e.Message;
        }
    }
}
