using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Mpo.Tokenization;

/// <summary>
/// BERT's WordPiece tokenizer from a <c>vocab.txt</c>, cased or uncased, with the ids of Hugging Face's fast
/// <c>BertTokenizer</c>: special tokens matched in the raw text, then BERT's normalization (clean-up, CJK
/// ideographs apart, optional accent stripping and lower-casing), splitting on whitespace and punctuation, and greedy
/// longest-match WordPiece with <c>##</c> continuations.
/// </summary>
/// <remarks>
/// The WordPiece step is Microsoft.ML.Tokenizers' <c>BertTokenizer</c>; normalization and splitting are
/// <see cref="BertTextNormalizer"/> and <see cref="BertWordSplitter"/>, because the library's own are not
/// Hugging Face-exact. One difference remains: the library caps a word at 100 UTF-16 units, Hugging Face at 100 code
/// points, which only matters for a vocabulary with tokens outside the BMP (bert-base-uncased has none).
/// </remarks>
public sealed class BertWordPieceTokenizer : ITextTokenizer
{
    /// <summary>The special tokens, matched in the raw text before normalization as Hugging Face's added tokens are.</summary>
    static readonly string[] SpecialTokenNames = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    readonly BertTokenizer tokenizer;
    readonly string[] tokens;
    readonly Dictionary<string, int> specialIds;

    BertWordPieceTokenizer(BertTokenizer tokenizer, string[] tokens, Dictionary<string, int> specialIds, bool lowercase, bool stripAccents)
    {
        this.tokenizer = tokenizer;
        this.tokens = tokens;
        this.specialIds = specialIds;
        Lowercase = lowercase;
        StripAccents = stripAccents;
        SpecialTokens = new SpecialTokenIds(
            Padding: specialIds["[PAD]"],
            Unknown: specialIds["[UNK]"],
            Classification: specialIds["[CLS]"],
            Separator: specialIds["[SEP]"],
            Mask: specialIds["[MASK]"]);
    }

    /// <summary>Whether text is lower-cased before WordPiece (uncased checkpoints).</summary>
    public bool Lowercase { get; }

    /// <summary>Whether accents (non-spacing marks after canonical decomposition) are removed before WordPiece.</summary>
    public bool StripAccents { get; }

    /// <inheritdoc/>
    public int VocabularySize => tokens.Length;

    /// <inheritdoc/>
    public SpecialTokenIds SpecialTokens { get; }

    /// <summary>Loads a WordPiece vocabulary: one token per line, the line number (from 0) being its id.</summary>
    /// <param name="vocabularyPath">The <c>vocab.txt</c>; it must have [PAD], [UNK], [CLS], [SEP] and [MASK].</param>
    /// <param name="lowercase">True for uncased checkpoints (<c>do_lower_case</c> in tokenizer_config.json).</param>
    /// <param name="stripAccents">Hugging Face's <c>strip_accents</c>; null (its default) follows
    /// <paramref name="lowercase"/>.</param>
    /// <exception cref="FileNotFoundException">The file is missing.</exception>
    /// <exception cref="InvalidDataException">A special token is missing; the message names the file.</exception>
    public static BertWordPieceTokenizer FromVocabulary(string vocabularyPath, bool lowercase, bool? stripAccents = null)
    {
        if (!File.Exists(vocabularyPath))
            throw new FileNotFoundException($"{vocabularyPath}: WordPiece vocabulary not found", vocabularyPath);
        // Trailing whitespace is not part of a token (Hugging Face trims it when reading the file).
        var tokens = File.ReadLines(vocabularyPath).Select(line => line.TrimEnd()).ToArray();
        var specialIds = new Dictionary<string, int>();
        for (var id = 0; id < tokens.Length; id++)
            if (SpecialTokenNames.Contains(tokens[id])) specialIds.TryAdd(tokens[id], id);
        var missing = SpecialTokenNames.Where(name => !specialIds.ContainsKey(name)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{vocabularyPath}: not a BERT vocabulary, it lacks {string.Join(", ", missing)}");

        var strip = stripAccents ?? lowercase;
        var options = new BertOptions
        {
            LowerCaseBeforeTokenization = lowercase,
            RemoveNonSpacingMarks = strip,
            Normalizer = new BertTextNormalizer(lowercase, strip),
            PreTokenizer = new BertWordSplitter(),
            // Encode matches special tokens itself, in the raw text; the library would look for them after lower-casing.
            SplitOnSpecialTokens = false,
        };
        var tokenizer = BertTokenizer.Create(vocabularyPath, options);
        return new BertWordPieceTokenizer(tokenizer, tokens, specialIds, lowercase, strip);
    }

    /// <inheritdoc/>
    /// <remarks>[PAD], [UNK], [CLS], [SEP] and [MASK] written in the text (case-sensitively) become their ids.</remarks>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        var segmentStart = 0;
        var at = 0;
        while (at < text.Length)
        {
            var special = text[at] != '[' ? null
                : SpecialTokenNames.FirstOrDefault(name => text.AsSpan(at).StartsWith(name, StringComparison.Ordinal));
            if (special is null)
            {
                at++;
                continue;
            }
            EncodeSegment(text[segmentStart..at], ids);
            ids.Add(specialIds[special]);
            at += special.Length;
            segmentStart = at;
        }
        EncodeSegment(text[segmentStart..], ids);
        return ids.ToArray();
    }

    void EncodeSegment(string segment, List<int> ids)
    {
        if (segment.Length > 0) ids.AddRange(tokenizer.EncodeToIds(segment, addSpecialTokens: false));
    }

    /// <inheritdoc/>
    /// <remarks>
    /// As Hugging Face tokenizers' WordPiece decoder: <c>##</c> pieces join the previous token, others follow a space,
    /// and a space before "." "?" "!" "," is removed. (transformers' <c>decode</c> may further apply
    /// <c>clean_up_tokenization_spaces</c>, which also joins "do n't"-style contractions.) Lower-casing and stripped
    /// accents cannot be undone.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var first = true;
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)tokens.Length)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"not an id of this {tokens.Length}-token vocabulary");
            var token = tokens[id];
            if (skipSpecialTokens && specialIds.TryGetValue(token, out var specialId) && specialId == id) continue;
            var piece = first ? token : token.StartsWith("##", StringComparison.Ordinal) ? token[2..] : " " + token;
            text.Append(Cleanup(piece));
            first = false;
        }
        return text.ToString();
    }

    /// <summary>Hugging Face's WordPiece decoder clean-up, applied to each piece (decoders/wordpiece.rs).</summary>
    static string Cleanup(string piece) =>
        piece.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
            .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't").Replace(" 's", "'s")
            .Replace(" 've", "'ve").Replace(" 're", "'re");

    /// <summary>
    /// The model input for one sequence or a pair: <c>[CLS] A [SEP] (B [SEP])</c>, truncated to
    /// <paramref name="maxLength"/> tokens as Hugging Face's fast tokenizers do (<c>longest_first</c>: a side that
    /// fits in half the budget is kept whole and the other cut; otherwise the budget is split evenly, the odd token
    /// going to the longer side, to B when both are equally long), and padded with [PAD] to
    /// <paramref name="maxLength"/> on request.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> leaves no room for a token.</exception>
    public BertInputs EncodeInputs(string first, string? second = null, int maxLength = 512, bool padToMaxLength = false)
    {
        ArgumentNullException.ThrowIfNull(first);
        var specials = second is null ? 2 : 3;
        if (maxLength <= specials)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength,
                $"must exceed the {specials} special tokens of a {(second is null ? "single sequence" : "pair")}");

        var a = Encode(first);
        var b = second is null ? [] : Encode(second);
        var (lengthA, lengthB) = TruncatedLengths(a.Length, b.Length, maxLength - specials, second is not null);

        var length = padToMaxLength ? maxLength : lengthA + lengthB + specials;
        var inputIds = new int[length];
        var typeIds = new int[length];
        var mask = new int[length];
        var at = 0;
        void Put(int id, int type)
        {
            inputIds[at] = id;
            typeIds[at] = type;
            mask[at] = 1;
            at++;
        }
        var cls = specialIds["[CLS]"];
        var sep = specialIds["[SEP]"];
        Put(cls, 0);
        foreach (var id in a.AsSpan(0, lengthA)) Put(id, 0);
        Put(sep, 0);
        if (second is not null)
        {
            foreach (var id in b.AsSpan(0, lengthB)) Put(id, 1);
            Put(sep, 1);
        }
        Array.Fill(inputIds, specialIds["[PAD]"], at, length - at);
        return new BertInputs(inputIds, typeIds, mask);
    }

    /// <summary>The tokens each side keeps under a budget of <paramref name="budget"/> (special tokens excluded):
    /// the <c>LongestFirst</c> rule of Hugging Face tokenizers' utils/truncation.rs.</summary>
    internal static (int A, int B) TruncatedLengths(int a, int b, int budget, bool pair)
    {
        if (!pair) return (Math.Min(a, budget), 0);
        if (a + b <= budget) return (a, b);
        var shorter = Math.Min(a, b);
        var longer = shorter > budget ? shorter : Math.Max(shorter, budget - shorter);
        if (shorter + longer > budget)
        {
            shorter = budget / 2;
            longer = shorter + budget % 2;
        }
        return a <= b ? (shorter, longer) : (longer, shorter);
    }
}
