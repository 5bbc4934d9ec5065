using System.Collections.Generic;

namespace Mpo.Data;

/// <summary>One example of a task's split.</summary>
/// <param name="Id">
/// The file's id column where it has one; otherwise the zero-based position of the row among the file's data rows,
/// skipped rows included (the <c>idx</c> that Hugging Face <c>datasets</c> assigns).
/// </param>
/// <param name="TextA">The first (or only) text, exactly as in the file: text is not trimmed or unquoted.</param>
/// <param name="TextB">The second text of a pair task; <c>null</c> for single-text tasks.</param>
/// <param name="Label">The class, an index into <see cref="TextTask.LabelNames"/>; <c>null</c> for regression and language modelling and for unlabelled (test) rows.</param>
/// <param name="Score">The regression score; <c>null</c> for the other kinds and for unlabelled rows.</param>
/// <param name="Document">
/// The source document the row was cut from (an address, a chapter, an e-mail) where the task's files record it;
/// all rows of a document are in the same split.
/// </param>
public sealed record TextExample(string Id, string TextA, string? TextB, int? Label, double? Score, string? Document = null);

/// <summary>The examples of one task file.</summary>
/// <param name="Task">The task the file was read as.</param>
/// <param name="Path">Full path of the file.</param>
/// <param name="Labeled">
/// Whether the examples carry labels: the file has the task's label column. GLUE's test splits have none, so their
/// examples have neither <see cref="TextExample.Label"/> nor <see cref="TextExample.Score"/>; language-modelling
/// files never have one.
/// </param>
/// <param name="Examples">The examples in file order.</param>
/// <param name="SkippedLines">
/// One-based line numbers of rows that had fewer fields than the header and were left out. GLUE's QQP train split
/// has a few such rows (a question broken over two lines); Hugging Face <c>datasets</c> drops them too.
/// </param>
public sealed record TextSplit(TextTask Task, string Path, bool Labeled, IReadOnlyList<TextExample> Examples, IReadOnlyList<int> SkippedLines)
{
    /// <summary>
    /// The text of each document, in file order: the <see cref="TextExample.TextA"/> of consecutive rows with the same
    /// <see cref="TextExample.Document"/> joined by <paramref name="separator"/> (a row without a document is a
    /// document of its own). A language model is trained on documents, with an end-of-text token between them.
    /// </summary>
    /// <param name="separator">What goes between the rows of a document; a paragraph break by default.</param>
    public IReadOnlyList<string> DocumentTexts(string separator = "\n\n")
    {
        var texts = new List<string>();
        var current = new List<string>();
        string? document = null;
        foreach (var example in Examples)
        {
            if (current.Count > 0 && (example.Document is null || example.Document != document))
            {
                texts.Add(string.Join(separator, current));
                current.Clear();
            }
            current.Add(example.TextA);
            document = example.Document;
        }
        if (current.Count > 0)
            texts.Add(string.Join(separator, current));
        return texts.AsReadOnly();
    }
}
