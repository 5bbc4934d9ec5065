// One source for the libstdc++ gap fix, compiled twice: into an MSBuild inline task (Directory.Build.targets,
// patches the NuGet cache during every build) and into Mpo.Core.CSharp (MPO_CORE defined; patches at run time for
// `dotnet fsi`, and explains load failures). The inline task compiles against netstandard2.0: no records, no newer
// BCL overloads.
//
// Why: TorchSharp 0.107.0's libLibTorchSharp.so carries one versioned import that needs GLIBCXX_3.4.32 (GCC 13):
// `_ZSt21ios_base_library_initv`, an unused reference emitted by GCC 13's <iostream>. Debian 12 / Ubuntu 22.04 ship
// libstdc++ up to GLIBCXX_3.4.30, so dlopen fails. Marking that one Vernaux entry VER_FLG_WEAK (0x2) lets the loader
// accept the missing version; the symbol itself is never called. The edit is two bytes, in place, and only where the
// system libstdc++ lacks the version.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Mpo.Native
{
    /// <summary>Reads and edits the GNU symbol-versioning sections of a 64-bit little-endian ELF file.</summary>
    public static class ElfSymbolVersions
    {
        const uint ShtGnuVerdef = 0x6ffffffd;
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;

        /// <summary>One required version (a Vernaux entry): the library it is needed from, its name, whether it is weak,
        /// and the file offset of its flags field.</summary>
        public sealed class Need
        {
            public Need(string library, string version, bool weak, long flagsOffset)
            { Library = library; Version = version; Weak = weak; FlagsOffset = flagsOffset; }
            public string Library { get; }
            public string Version { get; }
            public bool Weak { get; }
            public long FlagsOffset { get; }
            public override string ToString() => $"{Version} from {Library}{(Weak ? " (weak)" : "")}";
        }

        sealed class Section
        {
            public Section(uint type, long offset, uint link) { Type = type; Offset = offset; Link = link; }
            public uint Type { get; }
            public long Offset { get; }
            public uint Link { get; }
        }

        static Section[] Sections(byte[] elf, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"{path}: not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"{path}: only 64-bit little-endian ELF files are supported");
            long shoff = BitConverter.ToInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            if (shoff <= 0 || shoff + (long)shnum * shentsize > elf.Length)
                throw new InvalidDataException($"{path}: section header table lies outside the file");
            var result = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long b = shoff + (long)i * shentsize;
                result[i] = new Section(
                    BitConverter.ToUInt32(elf, (int)b + 4),
                    BitConverter.ToInt64(elf, (int)b + 0x18),
                    BitConverter.ToUInt32(elf, (int)b + 0x28));
            }
            return result;
        }

        static string CString(byte[] elf, long offset)
        {
            int end = (int)offset;
            while (end < elf.Length && elf[end] != 0) end++;
            return Encoding.ASCII.GetString(elf, (int)offset, end - (int)offset);
        }

        /// <summary>Every version the file requires from its dependencies (.gnu.version_r).</summary>
        public static IReadOnlyList<Need> Needs(string path)
        {
            var elf = File.ReadAllBytes(path);
            var sections = Sections(elf, path);
            var needs = new List<Need>();
            foreach (var s in sections.Where(s => s.Type == ShtGnuVerneed))
            {
                long strtab = sections[s.Link].Offset;
                long vn = s.Offset;
                while (true)
                {
                    int cnt = BitConverter.ToUInt16(elf, (int)vn + 2);
                    string file = CString(elf, strtab + BitConverter.ToUInt32(elf, (int)vn + 4));
                    long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                    for (int j = 0; j < cnt; j++)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        string name = CString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                        needs.Add(new Need(file, name, (flags & VerFlgWeak) != 0, aux + 4));
                        uint nextAux = BitConverter.ToUInt32(elf, (int)aux + 12);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }
                    uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                    if (next == 0) break;
                    vn += next;
                }
            }
            return needs;
        }

        /// <summary>Every version the file defines (.gnu.version_d), e.g. GLIBCXX_3.4.30 for libstdc++.</summary>
        public static IReadOnlyList<string> Definitions(string path)
        {
            var elf = File.ReadAllBytes(path);
            var sections = Sections(elf, path);
            var defs = new List<string>();
            foreach (var s in sections.Where(s => s.Type == ShtGnuVerdef))
            {
                long strtab = sections[s.Link].Offset;
                long vd = s.Offset;
                while (true)
                {
                    long aux = vd + BitConverter.ToUInt32(elf, (int)vd + 12);
                    defs.Add(CString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux)));
                    uint next = BitConverter.ToUInt32(elf, (int)vd + 16);
                    if (next == 0) break;
                    vd += next;
                }
            }
            return defs;
        }

        /// <summary>The libstdc++.so.6 the dynamic loader would pick (standard multiarch locations, in loader order).</summary>
        public static string? SystemLibStdCxx()
        {
            string[] dirs = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                              "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib" };
            return dirs.Select(d => Path.Combine(d, "libstdc++.so.6")).FirstOrDefault(File.Exists);
        }

        /// <summary>Versions that <paramref name="library"/> requires strongly from libstdc++ but the system one lacks.</summary>
        public static IReadOnlyList<Need> MissingLibStdCxxVersions(string library, string? libstdcxx = null)
        {
            libstdcxx ??= SystemLibStdCxx();
            if (libstdcxx is null) return Array.Empty<Need>();
            var have = new HashSet<string>(Definitions(libstdcxx));
            return Needs(library).Where(n => n.Library.StartsWith("libstdc++", StringComparison.Ordinal)
                                             && !n.Weak && !have.Contains(n.Version)).ToList();
        }

        /// <summary>
        /// Marks every strongly required libstdc++ version that the system lacks as weak. Returns the versions it
        /// weakened (empty when nothing was needed). The edited copy is written beside the file and renamed over it,
        /// so a reader never sees a half-written library.
        /// </summary>
        public static IReadOnlyList<string> WeakenMissingLibStdCxxVersions(string library, string? libstdcxx = null)
        {
            var missing = MissingLibStdCxxVersions(library, libstdcxx);
            if (missing.Count == 0) return Array.Empty<string>();
            var elf = File.ReadAllBytes(library);
            foreach (var need in missing)
            {
                ushort flags = BitConverter.ToUInt16(elf, (int)need.FlagsOffset);
                BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, (int)need.FlagsOffset);
            }
            string tmp = library + ".mpo-patch-" + Guid.NewGuid().ToString("N");
            File.WriteAllBytes(tmp, elf);
            File.Replace(tmp, library, null);
            return missing.Select(n => n.Version).ToList();
        }
    }
}

#if !MPO_CORE
namespace Mpo.Build
{
    /// <summary>MSBuild task: weaken missing libstdc++ versions in the given native libraries (see file header).</summary>
    public class PatchLibTorchSharp : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(
                    System.Runtime.InteropServices.OSPlatform.Linux)) return true;
            foreach (var item in Libraries)
            {
                var path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                try
                {
                    var weakened = Mpo.Native.ElfSymbolVersions.WeakenMissingLibStdCxxVersions(path);
                    if (weakened.Count > 0)
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                            $"Mpo: system libstdc++ lacks {string.Join(", ", weakened)}; marked weak in {path}");
                }
                catch (Exception e)
                {
                    Log.LogWarning($"Mpo: could not patch {path}: {e.Message}");
                }
            }
            return true;
        }
    }
}
#endif
