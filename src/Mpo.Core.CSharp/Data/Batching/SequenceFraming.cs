using System;
using Mpo.Tokenization;

namespace Mpo.Data.Batching;

/// <summary>One framed input: token ids and, where the framing has them, segment ids of the same length.</summary>
/// <param name="InputIds">The ids, special tokens included, unpadded.</param>
/// <param name="TokenTypeIds">0 for the first segment, 1 for the second; null when the framing has no segments.</param>
public sealed record FramedSequence(int[] InputIds, int[]? TokenTypeIds);

/// <summary>
/// The special tokens a model family puts around one text or a pair, as Hugging Face's tokenizers add them
/// (<c>build_inputs_with_special_tokens</c>), with the id that pads a batch:
/// <list type="bullet">
/// <item>BERT: <c>[CLS] A [SEP]</c>, <c>[CLS] A [SEP] B [SEP]</c>; segment ids 0 then 1; padded with [PAD].</item>
/// <item>GPT-2: <c>A</c>, <c>A B</c>, nothing added; padded with &lt;|endoftext|&gt;, the usual
/// <c>pad_token = eos_token</c> (GPT2ForSequenceClassification reads the last token before the padding).</item>
/// <item>T5: <c>A &lt;/s&gt;</c>, <c>A &lt;/s&gt; B &lt;/s&gt;</c>; padded with &lt;pad&gt;.</item>
/// </list>
/// </summary>
/// <param name="Prefix">Ids before the first text.</param>
/// <param name="AfterFirst">Ids after the first text.</param>
/// <param name="AfterSecond">Ids after the second text of a pair.</param>
/// <param name="Padding">The id that fills a row up to the batch's length (its attention mask is 0).</param>
/// <param name="HasTokenTypes">Whether the model takes segment ids (BERT's <c>token_type_ids</c>).</param>
public sealed record SequenceFraming(int[] Prefix, int[] AfterFirst, int[] AfterSecond, int Padding, bool HasTokenTypes)
{
    /// <summary>BERT's framing from its tokenizer's special tokens.</summary>
    /// <exception cref="ArgumentException">[CLS], [SEP] or [PAD] is missing.</exception>
    public static SequenceFraming Bert(SpecialTokenIds ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var cls = ids.Classification ?? throw Missing("[CLS]", "BERT");
        var sep = ids.Separator ?? throw Missing("[SEP]", "BERT");
        var pad = ids.Padding ?? throw Missing("[PAD]", "BERT");
        return new SequenceFraming([cls], [sep], [sep], pad, HasTokenTypes: true);
    }

    /// <summary>GPT-2's framing: no special token around the texts, &lt;|endoftext|&gt; as padding.</summary>
    public static SequenceFraming Gpt2(int endOfText) => new([], [], [], endOfText, HasTokenTypes: false);

    /// <summary>T5's framing from its tokenizer's special tokens: &lt;/s&gt; after each text.</summary>
    /// <exception cref="ArgumentException">&lt;/s&gt; or &lt;pad&gt; is missing.</exception>
    public static SequenceFraming T5(SpecialTokenIds ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var eos = ids.EndOfSequence ?? throw Missing("</s>", "T5");
        var pad = ids.Padding ?? throw Missing("<pad>", "T5");
        return new SequenceFraming([], [eos], [eos], pad, HasTokenTypes: false);
    }

    /// <summary>The framing of the family a tokenizer belongs to: WordPiece → BERT, byte-level BPE → GPT-2, SentencePiece → T5.</summary>
    /// <exception cref="ArgumentException">The tokenizer is of another kind, or lacks a needed special token.</exception>
    public static SequenceFraming For(ITextTokenizer tokenizer) => tokenizer switch
    {
        null => throw new ArgumentNullException(nameof(tokenizer)),
        BertWordPieceTokenizer bert => Bert(bert.SpecialTokens),
        Gpt2Tokenizer gpt2 => Gpt2(gpt2.EndOfTextId),
        SentencePieceTextTokenizer sentencePiece => T5(sentencePiece.SpecialTokens),
        _ => throw new ArgumentException($"No framing is known for a {tokenizer.GetType().Name}; build a SequenceFraming.", nameof(tokenizer)),
    };

    /// <summary>How many special tokens frame one text, or a pair.</summary>
    public int SpecialCount(bool pair) => Prefix.Length + AfterFirst.Length + (pair ? AfterSecond.Length : 0);

    /// <summary>
    /// Frames one text or a pair, truncated to at most <paramref name="maxLength"/> ids in all by Hugging Face's
    /// <c>longest_first</c> rule (the same as <see cref="BertWordPieceTokenizer.EncodeInputs"/>): special tokens
    /// are kept, the texts are cut from their ends.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> leaves no room for a text token.</exception>
    public FramedSequence Frame(ReadOnlySpan<int> first, int[]? second, int maxLength)
    {
        var pair = second is not null;
        var specials = SpecialCount(pair);
        if (maxLength <= specials)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength,
                $"must exceed the {specials} special tokens of a {(pair ? "pair" : "single text")}.");
        var (lengthA, lengthB) = BertWordPieceTokenizer.TruncatedLengths(first.Length, second?.Length ?? 0, maxLength - specials, pair);

        var ids = new int[lengthA + lengthB + specials];
        var types = HasTokenTypes ? new int[ids.Length] : null;
        var at = 0;
        void Put(ReadOnlySpan<int> part, int type)
        {
            part.CopyTo(ids.AsSpan(at));
            if (types is not null)
                types.AsSpan(at, part.Length).Fill(type);
            at += part.Length;
        }
        Put(Prefix, 0);
        Put(first[..lengthA], 0);
        Put(AfterFirst, 0);
        if (pair)
        {
            Put(second.AsSpan(0, lengthB), 1);
            Put(AfterSecond, 1);
        }
        return new FramedSequence(ids, types);
    }

    private static ArgumentException Missing(string token, string family) =>
        new($"The tokenizer has no {token}, which {family}'s framing needs.", "ids");
}
