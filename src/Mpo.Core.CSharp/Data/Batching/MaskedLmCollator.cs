using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Tokenization;

namespace Mpo.Data.Batching;

/// <summary>
/// Batches for BERT's masked language modelling (Devlin et al., NAACL 2019, §3.1; Hugging Face's
/// <c>DataCollatorForLanguageModeling</c>). Each block of <see cref="TokenBlocks"/> is framed
/// <c>[CLS] block [SEP]</c>; then every token that is not special is selected with probability
/// <see cref="Probability"/> (15%), independently. A selected token becomes [MASK] with probability 80%, a
/// uniformly random id of the vocabulary with 10%, and stays itself with 10%. Labels hold the original id at selected
/// positions and -100 elsewhere, so the loss is taken on the selected tokens only.
/// </summary>
/// <remarks>
/// With <see cref="ContinuesWord"/> given, whole words are selected instead (BERT's whole-word masking): a word is a
/// token that does not continue a word and the continuation pieces after it (WordPiece's <c>##</c> tokens), and a
/// selected word has all its tokens selected; the 80/10/10 replacement is still drawn per token, as Hugging Face's
/// <c>DataCollatorForWholeWordMask</c> does. The draws come from <see cref="BatchKey.Random"/> with
/// <see cref="RandomPurpose.Masking"/>: a batch's masks are a function of its key.
/// </remarks>
public sealed class MaskedLmCollator : IBatchCollator<int[]>
{
    /// <summary>A masking collator.</summary>
    /// <param name="framing">The single-text framing around each block (<see cref="SequenceFraming.Bert"/>).</param>
    /// <param name="mask">The [MASK] id.</param>
    /// <param name="vocabularySize">Random replacements are drawn from 0 to this − 1, as Hugging Face does (specials included).</param>
    /// <param name="probability">The chance that a token (or word) is selected.</param>
    /// <param name="continuesWord">For whole-word masking: whether an id continues the word before it; null masks tokens.</param>
    /// <param name="neverMasked">Ids never selected besides the framing's and the padding (Hugging Face skips every
    /// special token: [UNK] and [MASK] too).</param>
    public MaskedLmCollator(SequenceFraming framing, int mask, int vocabularySize, double probability = 0.15,
        Func<int, bool>? continuesWord = null, IEnumerable<int>? neverMasked = null)
    {
        ArgumentNullException.ThrowIfNull(framing);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabularySize);
        if (!(probability is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "must be between 0 and 1.");
        Framing = framing;
        Mask = mask;
        VocabularySize = vocabularySize;
        Probability = probability;
        ContinuesWord = continuesWord;
        special = [.. framing.Prefix, .. framing.AfterFirst, framing.Padding, .. neverMasked ?? []];
    }

    private readonly HashSet<int> special;

    /// <summary>A collator for a BERT tokenizer: its framing, [MASK], vocabulary and special tokens; whole words when asked.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no [MASK].</exception>
    public static MaskedLmCollator For(BertWordPieceTokenizer tokenizer, double probability = 0.15, bool wholeWords = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var mask = tokenizer.SpecialTokens.Mask ?? throw new ArgumentException("The tokenizer has no [MASK].", nameof(tokenizer));
        Func<int, bool>? continues = null;
        if (wholeWords)
        {
            // A WordPiece continuation piece is spelled "##…"; decoding one id alone shows the spelling.
            var pieces = Enumerable.Range(0, tokenizer.VocabularySize)
                .Select(id => tokenizer.Decode([id]).StartsWith("##", StringComparison.Ordinal))
                .ToArray();
            continues = id => (uint)id < (uint)pieces.Length && pieces[id];
        }
        var ids = tokenizer.SpecialTokens;
        int?[] specials = [ids.Padding, ids.Unknown, ids.Classification, ids.Separator, ids.Mask];
        return new MaskedLmCollator(SequenceFraming.Bert(ids), mask, tokenizer.VocabularySize, probability, continues,
            specials.OfType<int>());
    }

    /// <summary>The framing around each block.</summary>
    public SequenceFraming Framing { get; }

    /// <summary>The [MASK] id.</summary>
    public int Mask { get; }

    /// <summary>The range of random replacement ids.</summary>
    public int VocabularySize { get; }

    /// <summary>The chance that a token (or word) is selected.</summary>
    public double Probability { get; }

    /// <summary>For whole-word masking, whether an id continues the word before it; null when masking tokens.</summary>
    public Func<int, bool>? ContinuesWord { get; }

    /// <summary>The block length that, framed, fills <paramref name="maxLength"/> positions.</summary>
    public int BlockLength(int maxLength) => maxLength - Framing.SpecialCount(pair: false);

    /// <inheritdoc/>
    public TokenBatch Collate(IReadOnlyList<int[]> items, BatchKey key)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
            throw new ArgumentException("A batch needs at least one block.", nameof(items));
        var random = key.Random(RandomPurpose.Masking);
        var inputs = new long[items.Count][];
        var labels = new long[items.Count][];
        for (var r = 0; r < items.Count; r++)
        {
            var ids = Framing.Frame(items[r], null, int.MaxValue).InputIds;
            inputs[r] = Array.ConvertAll(ids, id => (long)id);
            labels[r] = new long[ids.Length];
            Array.Fill(labels[r], TokenBatch.IgnoreIndex);
            var selected = Select(ids, random);
            for (var t = 0; t < ids.Length; t++)
            {
                if (!selected[t])
                    continue;
                labels[r][t] = ids[t];
                var u = random.NextDouble();
                if (u < 0.8)
                    inputs[r][t] = Mask;
                else if (u < 0.9)
                    inputs[r][t] = random.NextInt(VocabularySize);
            }
        }
        var inputIds = TokenMatrix.Pad(inputs, Framing.Padding);
        var mask = TokenMatrix.Pad(inputs.Select(row => Enumerable.Repeat(1L, row.Length).ToArray()).ToArray(), 0, inputIds.Columns);
        var types = Framing.HasTokenTypes ? TokenMatrix.Pad(inputs.Select(row => new long[row.Length]).ToArray(), 0, inputIds.Columns) : null;
        return new TokenBatch(inputIds, mask, types, TokenMatrix.Pad(labels, TokenBatch.IgnoreIndex, inputIds.Columns));
    }

    /// <summary>Which positions are selected: per non-special token, or per whole word.</summary>
    private bool[] Select(int[] ids, SeededRandom random)
    {
        var selected = new bool[ids.Length];
        var wordSelected = false;
        for (var t = 0; t < ids.Length; t++)
        {
            if (special.Contains(ids[t]))
                continue;
            var startsWord = ContinuesWord is null || !ContinuesWord(ids[t]) || t == 0 || special.Contains(ids[t - 1]);
            if (startsWord)
                wordSelected = random.NextBernoulli(Probability);
            selected[t] = wordSelected;
        }
        return selected;
    }
}
