using System;
using System.Collections.Generic;

namespace Mpo.Data.Batching;

/// <summary>
/// Pre-training examples as fixed-length blocks of one token stream, as Hugging Face's <c>run_clm</c>,
/// <c>run_mlm</c> and <c>run_t5_mlm_flax</c> make them (<c>group_texts</c>): the documents are concatenated with a
/// separator between them (GPT-2's &lt;|endoftext|&gt;, BERT's [SEP], T5's &lt;/s&gt;) and the stream is cut every
/// <c>length</c> tokens. No token is lost or repeated: the blocks, read in order, are the stream.
/// </summary>
public static class TokenBlocks
{
    /// <summary>The documents' ids one after another, <paramref name="separator"/> between two documents (none when null).</summary>
    public static int[] Concatenate(IEnumerable<int[]> documents, int? separator)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var stream = new List<int>();
        var first = true;
        foreach (var document in documents)
        {
            ArgumentNullException.ThrowIfNull(document, nameof(documents));
            if (!first && separator is { } s)
                stream.Add(s);
            stream.AddRange(document);
            first = false;
        }
        return stream.ToArray();
    }

    /// <summary>
    /// The stream cut into blocks of <paramref name="length"/> tokens. The last block is shorter when the stream does
    /// not divide evenly; <paramref name="dropRemainder"/> leaves it out, as <c>group_texts</c> does (training), while
    /// keeping it scores every token (held-out perplexity).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is not positive.</exception>
    public static IReadOnlyList<int[]> Cut(int[] stream, int length, bool dropRemainder = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var blocks = new List<int[]>();
        for (var start = 0; start < stream.Length; start += length)
        {
            var end = Math.Min(start + length, stream.Length);
            if (end - start < length && dropRemainder)
                break;
            blocks.Add(stream[start..end]);
        }
        return blocks.AsReadOnly();
    }

    /// <summary><see cref="Cut"/> of <see cref="Concatenate"/>.</summary>
    public static IReadOnlyList<int[]> Build(IEnumerable<int[]> documents, int? separator, int length, bool dropRemainder = false) =>
        Cut(Concatenate(documents, separator), length, dropRemainder);
}
