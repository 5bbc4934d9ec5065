using System.Collections.Generic;

namespace Mpo.Tokenization;

/// <summary>
/// What models and trainers need from a tokenizer, whichever algorithm is behind it (WordPiece, byte-level BPE,
/// SentencePiece). Model-specific framing ([CLS]/[SEP] pairs, padding) lives on the concrete tokenizers.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>Number of ids the tokenizer can produce, special tokens included: the rows an embedding needs.</summary>
    int VocabularySize { get; }

    /// <summary>The ids of the special tokens this tokenizer has (null for those it has not).</summary>
    SpecialTokenIds SpecialTokens { get; }

    /// <summary>The ids of <paramref name="text"/>, without any special token added around it.</summary>
    int[] Encode(string text);

    /// <summary>The text of <paramref name="ids"/>; special tokens are written out unless skipped.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);
}
