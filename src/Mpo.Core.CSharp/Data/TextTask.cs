using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Mpo.Data;

/// <summary>What a task asks of a model, which decides its head, its labels and its metrics.</summary>
public enum TaskKind
{
    /// <summary>Pick one of <see cref="TextTask.LabelNames"/> for each example (a sequence-classification head).</summary>
    Classification,
    /// <summary>Predict a score in [<see cref="TextTask.MinScore"/>, <see cref="TextTask.MaxScore"/>] (a one-output head).</summary>
    Regression,
    /// <summary>Model the text itself; the examples have no labels and the metric is perplexity.</summary>
    LanguageModeling,
}

/// <summary>
/// A task over tab-separated text files, described as data: its file layout, its labels and its official metrics.
/// The nine GLUE tasks (<see cref="GlueTasks"/>) and the bundled tasks (<see cref="TextTasks"/>) are instances;
/// <see cref="TaskFiles"/> reads and writes any of them, <see cref="TaskMetrics"/> scores them.
/// </summary>
/// <remarks>
/// Files follow GLUE's conventions: a header line of column names (CoLA's train and dev files excepted), one row per
/// line, fields separated by tabs and never quoted, LF line ends, UTF-8. Columns are found by name, so a file may
/// order them as it likes and carry extra ones. The train/dev layout has the label column; the test layout does not.
/// </remarks>
public sealed class TextTask
{
    /// <summary>Describes a task; every argument is checked, so a task that exists is consistent.</summary>
    /// <param name="name">The task's name: GLUE's folder name (<c>SST-2</c>) or the bundled task's (<c>spam</c>).</param>
    /// <param name="kind">Classification, regression or language modelling.</param>
    /// <param name="idColumn">The column that names a row; a file without it numbers its rows instead.</param>
    /// <param name="textColumn">The first (or only) text.</param>
    /// <param name="secondTextColumn">The second text of a pair task; null for single-text tasks.</param>
    /// <param name="labelColumn">The class name or score; null for language modelling.</param>
    /// <param name="documentColumn">The source document a row was cut from (bundled tasks), which splits never share; null when files have none.</param>
    /// <param name="labeledColumns">The official columns of a labelled (train/dev) file, in order.</param>
    /// <param name="unlabeledColumns">The official columns of an unlabelled (test) file, in order.</param>
    /// <param name="metrics">The official metrics, the leading one first.</param>
    /// <param name="labelNames">The class names as files spell them; a name's position is its class index. Empty unless classification.</param>
    /// <param name="scoreRange">The inclusive range of a regression score; null unless regression.</param>
    /// <param name="labeledHasHeader">False where labelled files have no header line (CoLA), so their columns are <paramref name="labeledColumns"/> by position.</param>
    /// <exception cref="ArgumentException">The description is inconsistent; the message names the task and what is wrong.</exception>
    public TextTask(
        string name,
        TaskKind kind,
        string idColumn,
        string textColumn,
        string? secondTextColumn,
        string? labelColumn,
        string? documentColumn,
        IEnumerable<string> labeledColumns,
        IEnumerable<string> unlabeledColumns,
        IEnumerable<TaskMetric> metrics,
        IEnumerable<string>? labelNames = null,
        (double Min, double Max)? scoreRange = null,
        bool labeledHasHeader = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(idColumn);
        ArgumentNullException.ThrowIfNull(textColumn);
        Name = name;
        Kind = kind;
        IdColumn = idColumn;
        TextColumn = textColumn;
        SecondTextColumn = secondTextColumn;
        LabelColumn = labelColumn;
        DocumentColumn = documentColumn;
        LabeledColumns = Array.AsReadOnly(labeledColumns.ToArray());
        UnlabeledColumns = Array.AsReadOnly(unlabeledColumns.ToArray());
        Metrics = Array.AsReadOnly(metrics.ToArray());
        LabelNames = Array.AsReadOnly((labelNames ?? []).ToArray());
        LabeledHasHeader = labeledHasHeader;
        if (scoreRange is { } range)
            (MinScore, MaxScore) = range;
        Validate(scoreRange is not null);
    }

    /// <summary>The task's name, as in messages and folder names.</summary>
    public string Name { get; }

    /// <summary>Classification, regression or language modelling.</summary>
    public TaskKind Kind { get; }

    /// <summary>The column that names a row.</summary>
    public string IdColumn { get; }

    /// <summary>The first (or only) text.</summary>
    public string TextColumn { get; }

    /// <summary>The second text of a pair task; null for single-text tasks.</summary>
    public string? SecondTextColumn { get; }

    /// <summary>The label column; null for language modelling.</summary>
    public string? LabelColumn { get; }

    /// <summary>The source-document column; null when the task's files have none.</summary>
    public string? DocumentColumn { get; }

    /// <summary>The official columns of a labelled (train/dev) file.</summary>
    public IReadOnlyList<string> LabeledColumns { get; }

    /// <summary>The official columns of an unlabelled (test) file.</summary>
    public IReadOnlyList<string> UnlabeledColumns { get; }

    /// <summary>Whether labelled files start with a header line (all but CoLA's).</summary>
    public bool LabeledHasHeader { get; }

    /// <summary>The class names as the files spell them; a name's position is its class index. Empty unless classification.</summary>
    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>The lowest score of a regression task (0 for STS-B); 0 for other tasks.</summary>
    public double MinScore { get; }

    /// <summary>The highest score of a regression task (5 for STS-B); 0 for other tasks.</summary>
    public double MaxScore { get; }

    /// <summary>The official metrics, in the leaderboard's order (e.g. MRPC: F1 then accuracy).</summary>
    public IReadOnlyList<TaskMetric> Metrics { get; }

    /// <summary>Whether the task is scored by regression (STS-B) rather than classification.</summary>
    public bool IsRegression => Kind == TaskKind.Regression;

    /// <summary>Whether the task has a second text per example.</summary>
    public bool IsPair => SecondTextColumn is not null;

    /// <summary>The width of the task's output head: the number of classes, 1 for regression, 0 for language modelling.</summary>
    public int NumLabels => Kind switch
    {
        TaskKind.Classification => LabelNames.Count,
        TaskKind.Regression => 1,
        _ => 0,
    };

    /// <inheritdoc/>
    public override string ToString() => Name;

    private void Validate(bool hasRange)
    {
        ArgumentException Bad(string problem) => new($"Task '{Name}': {problem}");
        var duplicate = LabeledColumns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1)
            ?? UnlabeledColumns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw Bad($"column '{duplicate.Key}' is listed twice in a layout.");
        foreach (var (role, column) in new[] { ("text", TextColumn), ("second text", SecondTextColumn), ("label", LabelColumn), ("document", DocumentColumn) })
        {
            if (column is not null && !LabeledColumns.Contains(column))
                throw Bad($"the {role} column '{column}' is not in the labelled layout ({string.Join(", ", LabeledColumns)}).");
            if (column is not null && role != "label" && !UnlabeledColumns.Contains(column))
                throw Bad($"the {role} column '{column}' is not in the unlabelled layout ({string.Join(", ", UnlabeledColumns)}).");
        }
        if (LabelColumn is not null && UnlabeledColumns.Contains(LabelColumn))
            throw Bad($"the unlabelled layout has the label column '{LabelColumn}'.");
        if (!LabeledHasHeader && !LabeledColumns.Contains(IdColumn) && !UnlabeledColumns.Contains(IdColumn))
            throw Bad($"the id column '{IdColumn}' is in neither layout, so a headerless file cannot be recognized.");
        if (Metrics.Count == 0)
            throw Bad("it has no metric.");

        var (metricsOk, expected) = Kind switch
        {
            TaskKind.Classification => (Metrics.All(m => m is TaskMetric.Accuracy or TaskMetric.F1 or TaskMetric.Matthews), "accuracy, F1 or Matthews"),
            TaskKind.Regression => (Metrics.All(m => m is TaskMetric.Pearson or TaskMetric.Spearman), "Pearson or Spearman"),
            _ => (Metrics.All(m => m is TaskMetric.Perplexity), "perplexity"),
        };
        if (!metricsOk)
            throw Bad($"a {Kind} task is scored by {expected}, not {string.Join(", ", Metrics)}.");
        if (Metrics.Contains(TaskMetric.F1) && LabelNames.Count != 2)
            throw Bad($"binary F1 needs two classes, not {LabelNames.Count}.");

        switch (Kind)
        {
            case TaskKind.Classification:
                if (LabelColumn is null || LabelNames.Count < 2 || LabelNames.Distinct().Count() != LabelNames.Count)
                    throw Bad("a classification task needs a label column and at least two distinct label names.");
                if (hasRange)
                    throw Bad("a classification task has no score range.");
                break;
            case TaskKind.Regression:
                if (LabelColumn is null || LabelNames.Count != 0 || !hasRange || !(MinScore < MaxScore))
                    throw Bad("a regression task needs a label column, no label names and a score range with min < max.");
                break;
            default:
                if (LabelColumn is not null || LabelNames.Count != 0 || hasRange)
                    throw Bad("a language-modelling task has no label column, label names or score range.");
                if (!LabeledColumns.SequenceEqual(UnlabeledColumns))
                    throw Bad("a language-modelling task has one layout; its labelled and unlabelled columns must be the same.");
                break;
        }
    }

    /// <summary>The score range as written in messages: "0 to 5".</summary>
    internal string ScoreRangeText =>
        $"{MinScore.ToString(CultureInfo.InvariantCulture)} to {MaxScore.ToString(CultureInfo.InvariantCulture)}";
}
