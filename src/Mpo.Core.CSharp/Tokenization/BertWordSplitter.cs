using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Mpo.Tokenization;

/// <summary>
/// BERT's pre-tokenizer as Hugging Face tokenizers implements it (pre_tokenizers/bert.rs): split on whitespace, and
/// make every punctuation character (ASCII punctuation, or Unicode category P*) a word of its own.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' BERT pre-tokenizer matches <c>\w+|\p{P}</c>, so it drops symbols that are not in
/// category P: "$", "~", "^", "|", "+", emoji. BERT keeps the ASCII ones as punctuation and the others inside their
/// word (which then becomes [UNK] unless the vocabulary has it).
/// </remarks>
internal sealed class BertWordSplitter : PreTokenizer
{
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

    static List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
    {
        var words = new List<(int Offset, int Length)>();
        var start = -1; // start of the word being read, -1 between words
        var at = 0;
        while (at < text.Length)
        {
            Rune.DecodeFromUtf16(text[at..], out var rune, out var width);
            if (BertTextNormalizer.IsWhitespace(rune) || IsPunctuation(rune))
            {
                if (start >= 0) words.Add((start, at - start));
                start = -1;
                if (!BertTextNormalizer.IsWhitespace(rune)) words.Add((at, width));
            }
            else if (start < 0) start = at;
            at += width;
        }
        if (start >= 0) words.Add((start, text.Length - start));
        return words;
    }

    static bool IsPunctuation(Rune rune) =>
        rune.Value is >= 0x21 and <= 0x2F or >= 0x3A and <= 0x40 or >= 0x5B and <= 0x60 or >= 0x7B and <= 0x7E
        || Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
}
