using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Checkpoints;

/// <summary>"Did you mean": the names closest to a missing one, for error messages about tensors and keys.</summary>
internal static class NameSuggestions
{
    /// <summary>"closest names: 'a', 'b'" (up to <paramref name="count"/>, by edit distance), or a note that there are none.</summary>
    public static string Hint(string name, IEnumerable<string> candidates, int count = 5)
    {
        var closest = candidates
            .Select(k => (Name: k, Distance: Levenshtein(name, k)))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal)
            .Take(count).Select(c => $"'{c.Name}'").ToList();
        return closest.Count == 0 ? "there are no tensors" : $"closest names: {string.Join(", ", closest)}";
    }

    static int Levenshtein(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) row[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }
}
