using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Mpo.Tokenization;

/// <summary>
/// Unicode canonical decomposition (NFD) that works in globalization-invariant mode, where
/// <see cref="string.Normalize(NormalizationForm)"/> silently returns its input unchanged. The table is the embedded
/// CanonicalDecompositions.txt (written by tools/tokenizers/make-unicode-table.py).
/// </summary>
internal static class CanonicalDecomposition
{
    const string Resource = "Mpo.Tokenization.CanonicalDecompositions.txt";

    // Hangul syllables decompose arithmetically into two or three jamo (Unicode §3.12).
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = 19 * NCount;

    static readonly (Dictionary<int, int[]> Decompositions, Dictionary<int, byte> CombiningClasses) Table = Load();

    /// <summary>The NFD form of <paramref name="text"/>: every character fully decomposed, then combining marks put in
    /// canonical order.</summary>
    public static string Decompose(string text)
    {
        var runes = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            var cp = rune.Value;
            if (cp - SBase is >= 0 and < SCount)
            {
                var s = cp - SBase;
                runes.Add(LBase + s / NCount);
                runes.Add(VBase + s % NCount / TCount);
                if (s % TCount != 0) runes.Add(TBase + s % TCount);
            }
            else if (Table.Decompositions.TryGetValue(cp, out var parts)) runes.AddRange(parts);
            else runes.Add(cp);
        }

        // Canonical ordering: a stable sort by combining class within each run of non-starters.
        for (var i = 1; i < runes.Count; i++)
        {
            var ccc = Class(runes[i]);
            if (ccc == 0) continue;
            var j = i;
            while (j > 0 && Class(runes[j - 1]) > ccc)
            {
                (runes[j - 1], runes[j]) = (runes[j], runes[j - 1]);
                j--;
            }
        }

        var builder = new StringBuilder(runes.Count);
        foreach (var cp in runes) builder.Append(char.ConvertFromUtf32(cp));
        return builder.ToString();
    }

    static byte Class(int cp) => Table.CombiningClasses.TryGetValue(cp, out var ccc) ? ccc : (byte)0;

    static (Dictionary<int, int[]>, Dictionary<int, byte>) Load()
    {
        var decompositions = new Dictionary<int, int[]>();
        var classes = new Dictionary<int, byte>();
        using var stream = typeof(CanonicalDecomposition).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"embedded resource {Resource} is missing from the assembly");
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var fields = line.Split(' ');
            if (fields[0] == "D")
            {
                var parts = new int[fields.Length - 2];
                for (var k = 0; k < parts.Length; k++) parts[k] = Hex(fields[k + 2]);
                decompositions[Hex(fields[1])] = parts;
            }
            else
            {
                var ccc = byte.Parse(fields[3], CultureInfo.InvariantCulture);
                for (var cp = Hex(fields[1]); cp <= Hex(fields[2]); cp++) classes[cp] = ccc;
            }
        }
        return (decompositions, classes);
    }

    static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
