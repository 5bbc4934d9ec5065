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
/// (bos_id = -1): it indexes its vocabulary with the id. <see cref="FromModel"/> hands it a copy whose missing id
/// points at the unknown piece (which encoding never produces from text it can spell) and reports the special token
/// as absent.</remarks>
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
            BeginningOfSequence: facts.BosId >= 0 ? tokenizer.BeginningOfSentenceId : null,
            EndOfSequence: facts.EosId >= 0 ? tokenizer.EndOfSentenceId : null);
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
        var bytes = File.ReadAllBytes(modelPath);
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            var facts = InspectModel(stream, modelPath);
            using var patched = new MemoryStream(WithUnknownForMissingIds(bytes, facts), writable: false);
            var tokenizer = SentencePieceTokenizer.Create(patched, addBeginningOfSentence: false, addEndOfSentence: false);
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
    /// file included, into some message, and the library then fails with a NullReferenceException).
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
        int unkId = 0, bosId = 1, eosId = 2, padId = -1;
        var unknownSurface = " \u2047 ";
        var spec = trainerSpec.CreateCodedInput();
        while ((tag = spec.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (40, WireFormat.WireType.Varint):
                    unkId = spec.ReadInt32();
                    break;
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
        if (unkId < 0 || unkId >= pieces)
            throw new InvalidDataException($"{modelPath}: unk_id {unkId} is not a piece (the model has {pieces})");
        return new ModelFacts(pieces, padId >= 0 ? padId : null, unknownSurface, unkId, bosId, eosId);
    }

    /// <summary>
    /// The model bytes with bos_id / eos_id set to the unknown piece where they are -1 (T5). Protobuf merges a repeated
    /// embedded message field and lets the last scalar win, so appending a second trainer_spec (field 2) holding only
    /// those ids changes exactly them.
    /// </summary>
    static byte[] WithUnknownForMissingIds(byte[] model, ModelFacts facts)
    {
        if (facts.BosId >= 0 && facts.EosId >= 0) return model;
        var spec = new MemoryStream();
        var specOutput = new CodedOutputStream(spec);
        if (facts.BosId < 0) { specOutput.WriteTag(41, WireFormat.WireType.Varint); specOutput.WriteInt32(facts.UnkId); }
        if (facts.EosId < 0) { specOutput.WriteTag(42, WireFormat.WireType.Varint); specOutput.WriteInt32(facts.UnkId); }
        specOutput.Flush();
        var patched = new MemoryStream();
        patched.Write(model);
        var output = new CodedOutputStream(patched);
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(spec.ToArray()));
        output.Flush();
        return patched.ToArray();
    }

    /// <summary>What Mpo reads from a model itself.</summary>
    /// <param name="Pieces">The number of pieces (field 1 entries, whose positions are the ids).</param>
    /// <param name="PaddingId">trainer_spec's pad_id (field 43), null when -1.</param>
    /// <param name="UnknownSurface">trainer_spec's unk_surface (field 44): how an unknown piece is decoded.</param>
    /// <param name="UnkId">trainer_spec's unk_id (40); <paramref name="BosId"/> and <paramref name="EosId"/> (41, 42) may be -1.</param>
    sealed record ModelFacts(int Pieces, int? PaddingId, string UnknownSurface, int UnkId, int BosId, int EosId);

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
