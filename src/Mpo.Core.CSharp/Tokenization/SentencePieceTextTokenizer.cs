using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Google.Protobuf;
using Microsoft.ML.Tokenizers;

namespace Mpo.Tokenization;

/// <summary>
/// A SentencePiece model (<c>spiece.model</c>, as ALBERT and T5 checkpoints ship it; BPE or unigram), through
/// Microsoft.ML.Tokenizers' <c>SentencePieceTokenizer</c>.
/// </summary>
/// <remarks>The library (2.0.1) cannot load a model without a beginning- or end-of-sentence piece, such as T5's
/// (bos_id = -1); <see cref="FromModel"/> reports that by name instead of failing inside the library.</remarks>
public sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    readonly SentencePieceTokenizer tokenizer;
    readonly Dictionary<int, string> pieces;
    readonly string unknownSurface;

    SentencePieceTextTokenizer(SentencePieceTokenizer tokenizer, ModelFacts facts)
    {
        this.tokenizer = tokenizer;
        pieces = new Dictionary<int, string>();
        foreach (var (piece, id) in tokenizer.Vocabulary) pieces.TryAdd(id, piece);
        unknownSurface = facts.UnknownSurface;
        SpecialTokens = new SpecialTokenIds(
            Padding: facts.PaddingId,
            Unknown: tokenizer.UnknownId,
            BeginningOfSequence: tokenizer.BeginningOfSentenceId,
            EndOfSequence: tokenizer.EndOfSentenceId);
        VocabularySize = facts.Pieces;
    }

    /// <inheritdoc/>
    public int VocabularySize { get; }

    /// <inheritdoc/>
    public SpecialTokenIds SpecialTokens { get; }

    /// <summary>Loads a serialized SentencePiece <c>ModelProto</c>.</summary>
    /// <exception cref="FileNotFoundException">The file is missing.</exception>
    /// <exception cref="InvalidDataException">The file is not a SentencePiece model the library supports; the
    /// message names the file.</exception>
    public static SentencePieceTextTokenizer FromModel(string modelPath)
    {
        if (!File.Exists(modelPath))
            throw new FileNotFoundException($"{modelPath}: SentencePiece model not found", modelPath);
        using var stream = File.OpenRead(modelPath);
        try
        {
            var facts = InspectModel(stream, modelPath);
            stream.Position = 0;
            var tokenizer = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
            return new SentencePieceTextTokenizer(tokenizer, facts);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or ArgumentException or NotSupportedException)
        {
            // The protobuf parser's and the library's messages do not name the file.
            throw new InvalidDataException($"{modelPath}: not a usable SentencePiece model: {e.Message}", e);
        }
    }

    /// <summary>
    /// Reads what the library does not expose (see <see cref="ModelFacts"/>) and checks what the library relies on
    /// without checking: pieces and a trainer_spec (field 2) must be there (protobuf parses almost anything, an empty
    /// file included, into some message, and the library then fails with a NullReferenceException), and bos_id (41)
    /// and eos_id (42) must not be -1 (the library then fails with an IndexOutOfRangeException).
    /// </summary>
    static ModelFacts InspectModel(Stream stream, string modelPath)
    {
        var input = new CodedInputStream(stream, leaveOpen: true);
        var pieces = 0;
        ByteString? trainerSpec = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (1, WireFormat.WireType.LengthDelimited):
                    pieces++;
                    input.SkipLastField();
                    break;
                case (2, WireFormat.WireType.LengthDelimited):
                    trainerSpec = input.ReadBytes();
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }
        if (pieces == 0 || trainerSpec is null)
            throw new InvalidDataException(
                $"{modelPath}: not a SentencePiece model (no {(pieces > 0 ? "trainer_spec" : "pieces")} field)");

        // TrainerSpec's defaults.
        int bosId = 1, eosId = 2, padId = -1;
        var unknownSurface = " \u2047 ";
        var spec = trainerSpec.CreateCodedInput();
        while ((tag = spec.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (41, WireFormat.WireType.Varint):
                    bosId = spec.ReadInt32();
                    break;
                case (42, WireFormat.WireType.Varint):
                    eosId = spec.ReadInt32();
                    break;
                case (43, WireFormat.WireType.Varint):
                    padId = spec.ReadInt32();
                    break;
                case (44, WireFormat.WireType.LengthDelimited):
                    unknownSurface = spec.ReadString();
                    break;
                default:
                    spec.SkipLastField();
                    break;
            }
        }
        if (bosId < 0 || eosId < 0)
            throw new InvalidDataException(
                $"{modelPath}: the model has no {(bosId < 0 ? "beginning" : "end")}-of-sentence piece ({(bosId < 0 ? "bos" : "eos")}_id = -1, " +
                "as in T5's spiece.model), which Microsoft.ML.Tokenizers 2.0.1 cannot load");
        return new ModelFacts(pieces, padId >= 0 ? padId : null, unknownSurface);
    }

    /// <summary>What Mpo reads from a model itself.</summary>
    /// <param name="Pieces">The number of pieces (field 1 entries, whose positions are the ids).</param>
    /// <param name="PaddingId">trainer_spec's pad_id (field 43), null when -1.</param>
    /// <param name="UnknownSurface">trainer_spec's unk_surface (field 44): how an unknown piece is decoded.</param>
    sealed record ModelFacts(int Pieces, int? PaddingId, string UnknownSurface);

    /// <inheritdoc/>
    /// <remarks>A run of characters the model cannot spell becomes one unknown id, as in Google's SentencePiece
    /// (the library would give one per character).</remarks>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        var merged = new List<int>(ids.Count);
        foreach (var id in ids)
            if (id != tokenizer.UnknownId || merged.Count == 0 || merged[^1] != id) merged.Add(id);
        return merged.ToArray();
    }

    /// <inheritdoc/>
    /// <remarks>The unknown id is written as the model's unk_surface (" ⁇ " by default), as Google's SentencePiece
    /// does (the library would write the unknown piece itself, "&lt;unk&gt;"), or left out with the other special
    /// tokens.</remarks>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var segment = new List<int>();
        var afterUnknown = false;
        void Flush()
        {
            if (segment.Count == 0) return;
            // The library drops the space of a leading "▁" as the dummy prefix; after an unknown piece it is a real space.
            if (afterUnknown && tokenizer.AddDummyPrefix && pieces.TryGetValue(segment[0], out var first) && first.StartsWith('\u2581'))
                text.Append(' ');
            text.Append(tokenizer.Decode(segment, !skipSpecialTokens));
            segment.Clear();
        }
        foreach (var id in ids)
        {
            if (id != tokenizer.UnknownId)
            {
                segment.Add(id);
                continue;
            }
            Flush();
            if (!skipSpecialTokens) text.Append(unknownSurface);
            afterUnknown = true;
        }
        Flush();
        return text.ToString();
    }
}
