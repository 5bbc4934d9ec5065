using System;
using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Mpo.Tokenization;

/// <summary>
/// BERT's text normalization as Hugging Face tokenizers implements it (normalizers/bert.rs), in its order: drop
/// control characters and map whitespace to spaces, put spaces around CJK ideographs, strip accents (NFD, then drop
/// non-spacing marks), lower-case.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' own BERT normalizer differs from it: it keeps format characters (U+200B, U+00AD), also
/// strips spacing marks, and decomposes with <see cref="string.Normalize(NormalizationForm)"/>, which does nothing in
/// globalization-invariant mode, so "café" kept its accent. Its pre-tokenizer also drops symbols outright (see
/// <see cref="BertWordSplitter"/>).
/// </remarks>
internal sealed class BertTextNormalizer : Normalizer
{
    readonly bool lowercase;
    readonly bool stripAccents;

    public BertTextNormalizer(bool lowercase, bool stripAccents)
    {
        this.lowercase = lowercase;
        this.stripAccents = stripAccents;
    }

    public override string Normalize(string original) => Normalize(original.AsSpan());

    public override string Normalize(ReadOnlySpan<char> original)
    {
        var cleaned = new StringBuilder(original.Length + 8);
        foreach (var rune in original.EnumerateRunes())
        {
            // A lone surrogate enumerates as U+FFFD, which is dropped like the real one.
            if (rune.Value is 0 or 0xFFFD || IsControl(rune)) continue;
            if (IsWhitespace(rune)) cleaned.Append(' ');
            else if (IsCjkIdeograph(rune.Value)) cleaned.Append(' ').Append(rune.ToString()).Append(' ');
            else cleaned.Append(rune.ToString());
        }
        var text = cleaned.ToString();

        if (stripAccents)
        {
            var stripped = new StringBuilder(text.Length);
            foreach (var rune in CanonicalDecomposition.Decompose(text).EnumerateRunes())
                if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark) stripped.Append(rune.ToString());
            text = stripped.ToString();
        }

        if (lowercase)
        {
            var lowered = new StringBuilder(text.Length);
            foreach (var rune in text.EnumerateRunes())
            {
                // Rust's char::to_lowercase maps İ to "i̇" (SpecialCasing.txt); .NET's invariant casing leaves İ as is.
                if (rune.Value == 0x130) lowered.Append("i\u0307");
                else lowered.Append(Rune.ToLowerInvariant(rune).ToString());
            }
            text = lowered.ToString();
        }
        return text;
    }

    /// <summary>Control, format and private-use code points (Hugging Face's is_other; surrogates cannot be runes), except
    /// tab, newline and carriage return, which are whitespace. Unassigned code points are kept, as Hugging Face does.</summary>
    static bool IsControl(Rune rune) =>
        rune.Value is not ('\t' or '\n' or '\r')
        && Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse;

    /// <summary>Unicode's White_Space property (Rust's char::is_whitespace); controls among them are gone already.</summary>
    internal static bool IsWhitespace(Rune rune) =>
        rune.Value is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    /// <summary>The CJK ranges of Hugging Face's is_chinese_char, including its Extension E start at U+2B920.</summary>
    static bool IsCjkIdeograph(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
            or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF
            or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
