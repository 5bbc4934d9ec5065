using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Mpo.Data;

/// <summary>
/// The tasks bundled with Mpo under <c>data/tasks/&lt;name&gt;/{train,dev,test}.tsv</c>, made from public-domain
/// corpora by <c>tools/data/prepare.mjs</c> (provenance, sizes and split rule in <c>data/tasks/README.md</c>).
/// Every file has the columns <c>id</c>, <c>document</c>, <c>text</c> and, for the classification tasks,
/// <c>label</c>; rows cut from one document (an e-mail, an address, a chapter) are all in the same split.
/// </summary>
public static class TextTasks
{
    /// <summary>Where the bundled tasks live, relative to the repository root.</summary>
    public const string Folder = "data/tasks";

    /// <summary>The split files every bundled task has, in this order.</summary>
    public static readonly IReadOnlyList<string> Splits = ["train", "dev", "test"];

    private static readonly string[] Labeled = ["id", "document", "text", "label"];
    private static readonly string[] Unlabeled = ["id", "document", "text"];

    /// <summary>
    /// SpamAssassin public corpus: is the e-mail (subject and readable body, at most 1,000 characters) spam? Labels
    /// ham/spam (class 1 = spam, the positive class of F1); F1 and accuracy.
    /// </summary>
    public static readonly TextTask Spam = new("spam", TaskKind.Classification, "id", "text", null, "label", "document",
        Labeled, Unlabeled, [TaskMetric.F1, TaskMetric.Accuracy], ["ham", "spam"]);

    /// <summary>
    /// State of the Union addresses since 1933: was the passage's speaker a Democratic or a Republican President?
    /// Split by address; accuracy and Matthews correlation (the classes are about 57/43).
    /// </summary>
    public static readonly TextTask SotuParty = new("sotu-party", TaskKind.Classification, "id", "text", null, "label", "document",
        Labeled, Unlabeled, [TaskMetric.Accuracy, TaskMetric.Matthews], ["Democratic", "Republican"]);

    /// <summary>
    /// Language modelling on State of the Union addresses of 1861–1932 and Moby-Dick, split by address and chapter:
    /// pre-training text for the small models, scored by held-out perplexity.
    /// </summary>
    public static readonly TextTask Lm = new("lm", TaskKind.LanguageModeling, "id", "text", null, null, "document",
        Unlabeled, Unlabeled, [TaskMetric.Perplexity]);

    /// <summary>The bundled tasks.</summary>
    public static readonly IReadOnlyList<TextTask> All = [Spam, SotuParty, Lm];

    /// <summary>A GLUE or bundled task by its name, compared without regard to case ("sst-2", "spam").</summary>
    /// <exception cref="ArgumentException">No task has that name; the message lists the names.</exception>
    public static TextTask ByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var tasks = GlueTasks.All.Concat(All).ToArray();
        return tasks.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException(
                $"No task is named '{name}' (known: {string.Join(", ", tasks.Select(t => t.Name))}).", nameof(name));
    }

    /// <summary>Reads one split of a bundled task: <c>&lt;root&gt;/data/tasks/&lt;task&gt;/&lt;split&gt;.tsv</c>.</summary>
    /// <param name="repositoryRoot">The folder that holds <c>data/</c>.</param>
    /// <param name="task">A bundled task.</param>
    /// <param name="split">"train", "dev" or "test".</param>
    /// <exception cref="ArgumentException">The split is not one of <see cref="Splits"/>.</exception>
    public static TextSplit Read(string repositoryRoot, TextTask task, string split)
    {
        ArgumentNullException.ThrowIfNull(repositoryRoot);
        ArgumentNullException.ThrowIfNull(task);
        if (!Splits.Contains(split))
            throw new ArgumentException($"'{split}' is not a split of {task.Name} (train, dev or test).", nameof(split));
        return TaskFiles.Read(task, Path.Combine(repositoryRoot, Folder, task.Name, split + ".tsv"));
    }
}
