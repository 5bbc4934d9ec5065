using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data;

/// <summary>
/// How a classification task reads as text to text, T5's way of doing every task with one model (Raffel et al. 2020,
/// §2.4 and appendix D; MPOE trains its T5 on GLUE so): the input is a task prefix followed by each text behind its
/// field name (<c>rte sentence1: … sentence2: …</c>), the target is one word per class (<c>not_entailment</c>).
/// GLUE tasks use T5's own prefixes, field names and words; other tasks their name, column names and label names.
/// </summary>
/// <param name="Prefix">The task's name in the input (<c>sst2</c>, <c>spam</c>).</param>
/// <param name="FirstField">The field name before the first text.</param>
/// <param name="SecondField">The field name before the second text of a pair task; null for single-text tasks.</param>
/// <param name="SecondFirst">Whether the second text comes first (T5 writes MNLI as <c>hypothesis: … premise: …</c>).</param>
/// <param name="Targets">The target word of each class, by class index.</param>
public sealed record TextToTextFormat(string Prefix, string FirstField, string? SecondField, bool SecondFirst, IReadOnlyList<string> Targets)
{
    /// <summary>T5's GLUE inputs: prefix, field names (first, second), second text first, class words by GLUE's class order.</summary>
    static readonly Dictionary<string, TextToTextFormat> glue = new(StringComparer.OrdinalIgnoreCase)
    {
        ["CoLA"] = new("cola", "sentence", null, false, ["unacceptable", "acceptable"]),
        ["SST-2"] = new("sst2", "sentence", null, false, ["negative", "positive"]),
        ["MRPC"] = new("mrpc", "sentence1", "sentence2", false, ["not_equivalent", "equivalent"]),
        ["QQP"] = new("qqp", "question1", "question2", false, ["not_duplicate", "duplicate"]),
        ["MNLI"] = new("mnli", "premise", "hypothesis", true, ["contradiction", "entailment", "neutral"]),
        ["QNLI"] = new("qnli", "question", "sentence", false, ["entailment", "not_entailment"]),
        ["RTE"] = new("rte", "sentence1", "sentence2", false, ["entailment", "not_entailment"]),
        ["WNLI"] = new("wnli", "sentence1", "sentence2", false, ["not_entailment", "entailment"]),
    };

    /// <summary>The format of <paramref name="task"/>: T5's for a GLUE task, else built from the task's own names.</summary>
    /// <exception cref="ArgumentException">The task is not classification (regression and language modelling have no class words).</exception>
    public static TextToTextFormat For(TextTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.Kind != TaskKind.Classification)
            throw new ArgumentException($"Task '{task.Name}' is {task.Kind}; text-to-text formats cover classification tasks only.", nameof(task));
        if (glue.TryGetValue(task.Name, out var known) && known.Targets.Count == task.LabelNames.Count)
            return known;
        return new TextToTextFormat(task.Name.ToLowerInvariant(), task.TextColumn, task.SecondTextColumn, false, task.LabelNames);
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

    /// <summary>The target text of class <paramref name="label"/>.</summary>
    public string Target(int label) =>
        label >= 0 && label < Targets.Count ? Targets[label]
        : throw new ArgumentOutOfRangeException(nameof(label), label, $"'{Prefix}' has classes 0..{Targets.Count - 1}.");
}
