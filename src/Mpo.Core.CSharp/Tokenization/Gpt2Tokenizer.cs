using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Mpo.Tokenization;

/// <summary>
/// GPT-2's byte-level BPE, id for id, from OpenAI's <c>encoder.json</c> and <c>vocab.bpe</c> (Hugging Face names
/// the same files <c>vocab.json</c> and <c>merges.txt</c>). Any text is encodable and decoding is lossless.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' <c>CodeGenTokenizer</c> reads these files directly but is not GPT-2-exact: it adds
/// CodeGen's whitespace tokens (ids above 50256) for runs of spaces. Its <c>TiktokenTokenizer</c> runs the same byte-level BPE as OpenAI's encoder when it is
/// given each token's UTF-8 bytes with the token's id as its merge rank: GPT-2 numbered its tokens in merge order,
/// so "lowest rank first" is "earliest merge first". <see cref="FromFiles"/> checks that ordering against the merges
/// file instead of assuming it.
/// <para>.NET's regular expressions see UTF-16 units, so a letter outside the BMP (𝐇, 𠮷) is not <c>\p{L}</c> to the
/// pre-tokenizer and is split from the letters next to it, where OpenAI's encoder keeps one word. With GPT-2's merges
/// this changes no id: in a one-off probe, 77,220 strings (198 such letters next to letters, digits and punctuation)
/// encoded as gpt-3-encoder does, and the fixtures keep a few. Another vocabulary with merges across such boundaries
/// could differ.</para>
/// </remarks>
public sealed class Gpt2Tokenizer : ITextTokenizer
{
    /// <summary>GPT-2's only special token: it separates documents and doubles as beginning and end of text.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>OpenAI's pre-tokenizer pattern (encoder.py): contractions, letter runs, digit runs, other symbols,
    /// and whitespace, where a run of spaces leaves its last space to the word after it.</summary>
    public const string PreTokenizerPattern =
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    readonly TiktokenTokenizer tokenizer;

    Gpt2Tokenizer(TiktokenTokenizer tokenizer, int endOfTextId, int vocabularySize)
    {
        this.tokenizer = tokenizer;
        EndOfTextId = endOfTextId;
        VocabularySize = vocabularySize;
        SpecialTokens = new SpecialTokenIds(BeginningOfSequence: endOfTextId, EndOfSequence: endOfTextId);
    }

    /// <summary>The id of <see cref="EndOfText"/> (50256 in GPT-2).</summary>
    public int EndOfTextId { get; }

    /// <inheritdoc/>
    public int VocabularySize { get; }

    /// <inheritdoc/>
    public SpecialTokenIds SpecialTokens { get; }

    /// <summary>Loads the vocabulary (<c>encoder.json</c>/<c>vocab.json</c>: token → id) and checks it against the
    /// merges (<c>vocab.bpe</c>/<c>merges.txt</c>).</summary>
    /// <exception cref="FileNotFoundException">Either file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed, or the ids do not follow the merge order (then a
    /// rank-based BPE would not reproduce the merges); the message names the file.</exception>
    public static Gpt2Tokenizer FromFiles(string vocabularyPath, string mergesPath)
    {
        var vocabulary = ReadVocabulary(vocabularyPath);
        if (!vocabulary.TryGetValue(EndOfText, out var endOfTextId))
            throw new InvalidDataException($"{vocabularyPath}: no {EndOfText} entry; this is not a GPT-2 vocabulary");
        CheckMergeOrder(vocabulary, mergesPath);

        var ranks = new MemoryStream();
        using (var writer = new StreamWriter(ranks, new UTF8Encoding(false), leaveOpen: true))
        {
            // Tiktoken's rank file: one "base64(token bytes) rank" line per token.
            foreach (var (token, id) in vocabulary)
            {
                if (id == endOfTextId) continue;
                var bytes = ByteLevel.ToBytes(token)
                    ?? throw new InvalidDataException(
                        $"{vocabularyPath}: token {JsonSerializer.Serialize(token)} (id {id}) has a character outside GPT-2's byte alphabet");
                writer.Write(Convert.ToBase64String(bytes));
                writer.Write(' ');
                writer.Write(id);
                writer.Write('\n');
            }
        }
        ranks.Position = 0;

        var specialTokens = new Dictionary<string, int> { [EndOfText] = endOfTextId };
        var preTokenizer = new RegexPreTokenizer(
            new Regex(PreTokenizerPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant), specialTokens);
        var tiktoken = TiktokenTokenizer.Create(ranks, preTokenizer, normalizer: null, specialTokens);
        return new Gpt2Tokenizer(tiktoken, endOfTextId, vocabulary.Values.Max() + 1);
    }

    /// <inheritdoc/>
    /// <remarks><see cref="EndOfText"/> inside the text becomes its id, as in Hugging Face's GPT-2 tokenizer
    /// (OpenAI's encoder.py would spell it out as seven ordinary tokens).</remarks>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return tokenizer.EncodeToIds(text).ToArray();
    }

    /// <inheritdoc/>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = skipSpecialTokens ? ids.Where(id => id != EndOfTextId) : ids;
        return tokenizer.Decode(kept);
    }

    static Dictionary<string, int> ReadVocabulary(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: GPT-2 vocabulary not found", path);
        Dictionary<string, int>? vocabulary;
        try
        {
            using var stream = File.OpenRead(path);
            vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a JSON object of token → id: {e.Message}", e);
        }
        if (vocabulary is null || vocabulary.Count == 0)
            throw new InvalidDataException($"{path}: empty vocabulary");
        var duplicate = vocabulary.GroupBy(kv => kv.Value).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new InvalidDataException(
                $"{path}: id {duplicate.Key} is given to several tokens ({string.Join(", ", duplicate.Select(kv => JsonSerializer.Serialize(kv.Key)))})");
        return vocabulary;
    }

    /// <summary>Checks that each merge's result exists and that ids grow with merge order.</summary>
    static void CheckMergeOrder(Dictionary<string, int> vocabulary, string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: GPT-2 merges not found", path);
        var previous = -1;
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            // The file opens with a "#version: 0.2" line; blank lines (the final newline) carry nothing.
            if ((lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2)
                throw new InvalidDataException($"{path}:{lineNumber}: expected two space-separated tokens, found {JsonSerializer.Serialize(line)}");
            if (!vocabulary.TryGetValue(parts[0] + parts[1], out var id))
                throw new InvalidDataException($"{path}:{lineNumber}: merge result {JsonSerializer.Serialize(parts[0] + parts[1])} is not in the vocabulary");
            if (id <= previous)
                throw new InvalidDataException(
                    $"{path}:{lineNumber}: merge result {JsonSerializer.Serialize(parts[0] + parts[1])} has id {id}, not above the previous merge's {previous}: " +
                    "the vocabulary's ids do not follow the merge order, so a rank-based BPE would not reproduce these merges");
            previous = id;
        }
    }

    /// <summary>GPT-2's reversible map between bytes and printable characters (bytes_to_unicode in encoder.py).</summary>
    static class ByteLevel
    {
        static readonly Dictionary<char, byte> CharToByte = Build();

        static Dictionary<char, byte> Build()
        {
            // Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, soft hyphen...) are moved to
            // U+0100 onwards, in byte order, so that every token is a string of visible characters.
            var map = new Dictionary<char, byte>();
            var next = 256;
            for (var b = 0; b < 256; b++)
            {
                var printable = b is >= '!' and <= '~' or >= '¡' and <= '¬' or >= '®' and <= 'ÿ';
                map[(char)(printable ? b : next++)] = (byte)b;
            }
            return map;
        }

        /// <summary>The bytes a token stands for; null if it has a character outside the alphabet.</summary>
        public static byte[]? ToBytes(string token)
        {
            var bytes = new byte[token.Length];
            for (var i = 0; i < token.Length; i++)
            {
                if (!CharToByte.TryGetValue(token[i], out var b)) return null;
                bytes[i] = b;
            }
            return bytes;
        }
    }
}
