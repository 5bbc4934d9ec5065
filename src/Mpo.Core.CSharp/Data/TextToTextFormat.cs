using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data;

/// <summary>
/// How a classification task reads as text to text, T5's way of doing every task with one model (Raffel et al. 2020,
/// §2.4 and appendix D; MPOE trains its T5 on GLUE so): the input is a task prefix followed by each text behind its
/// field name (<c>rte sentence1: … sentence2: …</c>), the target is one word per class (<c>not_entailment</c>).
/// GLUE tasks use T5's own prefixes, field names and words; other tasks their name, column names and label names.
/// A regression task (STS-B) writes its score as text, rounded to the nearest 0.2 (<c>3.8</c>), as T5 does.
/// </summary>
/// <param name="Prefix">The task's name in the input (<c>sst2</c>, <c>spam</c>).</param>
/// <param name="FirstField">The field name before the first text.</param>
/// <param name="SecondField">The field name before the second text of a pair task; null for single-text tasks.</param>
/// <param name="SecondFirst">Whether the second text comes first (T5 writes MNLI as <c>hypothesis: … premise: …</c>).</param>
/// <param name="Targets">The target word of each class, by class index; empty for a regression task.</param>
public sealed record TextToTextFormat(string Prefix, string FirstField, string? SecondField, bool SecondFirst, IReadOnlyList<string> Targets)
{
    /// <summary>T5's GLUE inputs: prefix, field names (first, second), second text first, class words by GLUE's class order.</summary>
    static readonly Dictionary<string, TextToTextFormat> glue = new(StringComparer.OrdinalIgnoreCase)
    {
        ["CoLA"] = new("cola", "sentence", null, false, ["unacceptable", "acceptable"]),
        ["STS-B"] = new("stsb", "sentence1", "sentence2", false, []) { ScoreRange = (0, 5) },
        ["SST-2"] = new("sst2", "sentence", null, false, ["negative", "positive"]),
        ["MRPC"] = new("mrpc", "sentence1", "sentence2", false, ["not_equivalent", "equivalent"]),
        ["QQP"] = new("qqp", "question1", "question2", false, ["not_duplicate", "duplicate"]),
        ["MNLI"] = new("mnli", "premise", "hypothesis", true, ["contradiction", "entailment", "neutral"]),
        ["QNLI"] = new("qnli", "question", "sentence", false, ["entailment", "not_entailment"]),
        ["RTE"] = new("rte", "sentence1", "sentence2", false, ["entailment", "not_entailment"]),
        ["WNLI"] = new("wnli", "sentence1", "sentence2", false, ["not_entailment", "entailment"]),
    };

    /// <summary>The inclusive range of a regression task's scores; null for classification.</summary>
    public (double Min, double Max)? ScoreRange { get; init; }

    /// <summary>Whether targets are scores written out rather than class words.</summary>
    public bool IsRegression => ScoreRange is not null;

    /// <summary>The format of <paramref name="task"/>: T5's for a GLUE task, else built from the task's own names.</summary>
    /// <exception cref="ArgumentException">The task is language modelling (it has no targets to write).</exception>
    public static TextToTextFormat For(TextTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.Kind == TaskKind.LanguageModeling)
            throw new ArgumentException($"Task '{task.Name}' is language modelling; text-to-text formats cover classification and regression.", nameof(task));
        if (glue.TryGetValue(task.Name, out var known) && known.Targets.Count == task.LabelNames.Count && known.IsRegression == task.IsRegression)
            return known;
        return new TextToTextFormat(task.Name.ToLowerInvariant(), task.TextColumn, task.SecondTextColumn, false, task.LabelNames)
        {
            ScoreRange = task.IsRegression ? (task.MinScore, task.MaxScore) : null,
        };
    }

    /// <summary>The model's input text for <paramref name="example"/>.</summary>
    /// <exception cref="ArgumentException">A pair format gets an example without its second text, or the reverse.</exception>
    public string Input(TextExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if ((SecondField is null) != (example.TextB is null))
            throw new ArgumentException(
                $"Example '{example.Id}' {(example.TextB is null ? "lacks" : "has")} a second text, but the '{Prefix}' format is for {(SecondField is null ? "single texts" : "pairs")}.",
                nameof(example));
        if (SecondField is null)
            return $"{Prefix} {FirstField}: {example.TextA}";
        return SecondFirst
            ? $"{Prefix} {SecondField}: {example.TextB} {FirstField}: {example.TextA}"
            : $"{Prefix} {FirstField}: {example.TextA} {SecondField}: {example.TextB}";
    }

    /// <summary>
    /// The target text of a score: rounded to the nearest 0.2 and written with one decimal (T5's STS-B
    /// preprocessing: 3.77 → "3.8"), clamped to the task's range.
    /// </summary>
    /// <exception cref="InvalidOperationException">The format is for classification.</exception>
    public string ScoreTarget(double score)
    {
        var (min, max) = ScoreRange ?? throw new InvalidOperationException($"'{Prefix}' is a classification format; its targets are class words.");
        var rounded = Math.Clamp(Math.Round(score * 5, MidpointRounding.AwayFromZero) / 5, min, max);
        return rounded.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Every target a regression format can write (its range in steps of 0.2), to size decoding.</summary>
    public IEnumerable<string> ScoreTargets()
    {
        var (min, max) = ScoreRange ?? throw new InvalidOperationException($"'{Prefix}' is a classification format; its targets are class words.");
        for (var k = (int)Math.Ceiling(min * 5 - 1e-9); k <= (int)Math.Floor(max * 5 + 1e-9); k++)
            yield return ScoreTarget(k / 5.0);
    }

    /// <summary>A generated answer read as a score; null when it is no number (T5 then scores it as −1, see callers).</summary>
    public static double? ParseScore(string answer) =>
        double.TryParse(answer.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v)
        && double.IsFinite(v) ? v : null;

    /// <summary>The target text of class <paramref name="label"/>.</summary>
    public string Target(int label) =>
        label >= 0 && label < Targets.Count ? Targets[label]
        : throw new ArgumentOutOfRangeException(nameof(label), label, $"'{Prefix}' has classes 0..{Targets.Count - 1}.");
}
