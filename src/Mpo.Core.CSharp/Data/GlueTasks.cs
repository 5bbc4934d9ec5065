using System;
using System.Buffers;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Mpo.Checkpoints;

namespace Mpo.Data;

/// <summary>The nine tasks of the GLUE benchmark (Wang et al., ICLR 2019), on which MPOP and MPOE report.</summary>
public enum GlueTask
{
    /// <summary>Corpus of Linguistic Acceptability: is the sentence acceptable English? Labels 0/1; Matthews correlation.</summary>
    CoLA,
    /// <summary>Stanford Sentiment Treebank, two classes: is the sentence positive? Labels 0/1; accuracy.</summary>
    SST2,
    /// <summary>Microsoft Research Paraphrase Corpus: are the two sentences paraphrases? Labels 0/1; F1 and accuracy.</summary>
    MRPC,
    /// <summary>Semantic Textual Similarity Benchmark: a similarity score from 0 to 5 (regression); Pearson and Spearman.</summary>
    STSB,
    /// <summary>Quora Question Pairs: are the two questions duplicates? Labels 0/1; accuracy and F1.</summary>
    QQP,
    /// <summary>Multi-Genre NLI: contradiction, entailment or neutral; accuracy on the matched and mismatched splits.</summary>
    MNLI,
    /// <summary>Question NLI (from SQuAD): does the sentence answer the question? entailment/not_entailment; accuracy.</summary>
    QNLI,
    /// <summary>Recognizing Textual Entailment: entailment/not_entailment; accuracy.</summary>
    RTE,
    /// <summary>Winograd NLI: is the pronoun-substituted sentence entailed? Labels 0/1 (1 = entailment); accuracy.</summary>
    WNLI,
}

/// <summary>One example of a GLUE split.</summary>
/// <param name="Id">
/// The file's <c>index</c> column (<c>id</c> for QQP) where it has one; otherwise the zero-based position of the row
/// among the file's data rows, skipped rows included (the <c>idx</c> that Hugging Face <c>datasets</c> assigns).
/// </param>
/// <param name="TextA">The first (or only) text, exactly as in the file: GLUE text is not trimmed or unquoted.</param>
/// <param name="TextB">The second text of a pair task; <c>null</c> for the single-sentence tasks CoLA and SST-2.</param>
/// <param name="Label">The class, an index into <see cref="GlueTasks.LabelNames"/>; <c>null</c> for STS-B and for unlabelled (test) rows.</param>
/// <param name="Score">The STS-B similarity score in [0, 5]; <c>null</c> for the other tasks and for unlabelled rows.</param>
public sealed record GlueExample(string Id, string TextA, string? TextB, int? Label, double? Score);

/// <summary>The examples of one GLUE file.</summary>
/// <param name="Task">The task the file was read as.</param>
/// <param name="Path">Full path of the file.</param>
/// <param name="Labeled">
/// Whether the file carries labels. The test splits of GLUE have no label column, so their examples have neither
/// <see cref="GlueExample.Label"/> nor <see cref="GlueExample.Score"/>.
/// </param>
/// <param name="Examples">The examples in file order.</param>
/// <param name="SkippedLines">
/// One-based line numbers of rows that had fewer fields than the header and were left out. GLUE's QQP train split
/// has a few such rows (a question broken over two lines); Hugging Face <c>datasets</c> drops them too.
/// </param>
public sealed record GlueSplit(GlueTask Task, string Path, bool Labeled, IReadOnlyList<GlueExample> Examples, IReadOnlyList<int> SkippedLines);

/// <summary>
/// Reads and writes the tab-separated files of GLUE (<c>glue_data/&lt;TASK&gt;/{train,dev,test}.tsv</c>, and for MNLI
/// <c>dev_matched</c>, <c>dev_mismatched</c>, <c>test_matched</c>, <c>test_mismatched</c>) and describes each task's
/// labels and official metrics.
/// </summary>
/// <remarks>
/// Rows are split on tabs only. GLUE fields are never quoted, and its text contains literal double quotes (often
/// unbalanced), so a CSV parser that honours quotes would merge rows; this follows <c>csv.QUOTE_NONE</c> as the
/// Hugging Face and GLUE baseline readers do. Columns are found by header name, so column order and MNLI's varying
/// annotator-label columns do not matter; CoLA's train and dev files, which have no header, are read by position.
/// </remarks>
public static class GlueTasks
{
    private const int BufferSize = 1 << 20;

    // Strict decoding: a file that is not UTF-8 is the wrong file, and silently decoding it to U+FFFD would feed a
    // model corrupted text. The BOM is stripped on reading (GLUE's MRPC train and dev files start with one, copied
    // from the Microsoft source file) and never written.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The column layout of one task. <paramref name="Labeled"/> and <paramref name="Unlabeled"/> are the official
    /// column lists of the train/dev and the test files; <paramref name="LabeledHasHeader"/> is false only for CoLA.
    /// </summary>
    private sealed record Format(
        string Id,
        string TextA,
        string? TextB,
        string Label,
        string[] Labeled,
        bool LabeledHasHeader,
        string[] Unlabeled,
        ReadOnlyCollection<string> LabelNames,
        GlueMetric[] Metrics);

    private static readonly ReadOnlyCollection<string> Binary = Array.AsReadOnly(new[] { "0", "1" });
    private static readonly ReadOnlyCollection<string> Entailment = Array.AsReadOnly(new[] { "entailment", "not_entailment" });

    private static readonly string[] MnliTest =
    [
        "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
        "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
    ];

    private static readonly string[] StsbTest =
        ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"];

    // After the arrays above: static initializers run in textual order.
    private static readonly Format[] Formats = Enum.GetValues<GlueTask>().Select(Build).ToArray();

    private static Format FormatOf(GlueTask task) =>
        (uint)task < (uint)Formats.Length ? Formats[(int)task] : throw new ArgumentOutOfRangeException(nameof(task), task, "Not a GLUE task.");

    private static Format Build(GlueTask task) => task switch
    {
        // CoLA train/dev: source code, label, the original author's mark ('*', '?', ...), sentence; no header.
        GlueTask.CoLA => new("index", "sentence", null, "label",
            ["source", "label", "author_mark", "sentence"], false, ["index", "sentence"], Binary, [GlueMetric.Matthews]),
        GlueTask.SST2 => new("index", "sentence", null, "label",
            ["sentence", "label"], true, ["index", "sentence"], Binary, [GlueMetric.Accuracy]),
        GlueTask.MRPC => new("index", "#1 String", "#2 String", "Quality",
            ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], true,
            ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"], Binary, [GlueMetric.F1, GlueMetric.Accuracy]),
        GlueTask.STSB => new("index", "sentence1", "sentence2", "score",
            [.. StsbTest, "score"], true, StsbTest, ReadOnlyCollection<string>.Empty, [GlueMetric.Pearson, GlueMetric.Spearman]),
        GlueTask.QQP => new("id", "question1", "question2", "is_duplicate",
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], true,
            ["id", "question1", "question2"], Binary, [GlueMetric.Accuracy, GlueMetric.F1]),
        // The train layout; dev files carry label1..label5 before gold_label, which reading by name absorbs.
        // Label order as in the GLUE baselines and BERT's run_classifier (Hugging Face datasets orders them
        // entailment, neutral, contradiction instead).
        GlueTask.MNLI => new("index", "sentence1", "sentence2", "gold_label",
            [.. MnliTest, "label1", "gold_label"], true, MnliTest,
            Array.AsReadOnly(new[] { "contradiction", "entailment", "neutral" }), [GlueMetric.Accuracy]),
        GlueTask.QNLI => new("index", "question", "sentence", "label",
            ["index", "question", "sentence", "label"], true, ["index", "question", "sentence"], Entailment, [GlueMetric.Accuracy]),
        GlueTask.RTE => new("index", "sentence1", "sentence2", "label",
            ["index", "sentence1", "sentence2", "label"], true, ["index", "sentence1", "sentence2"], Entailment, [GlueMetric.Accuracy]),
        GlueTask.WNLI => new("index", "sentence1", "sentence2", "label",
            ["index", "sentence1", "sentence2", "label"], true, ["index", "sentence1", "sentence2"], Binary, [GlueMetric.Accuracy]),
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "Not a GLUE task."),
    };

    /// <summary>
    /// The label strings as the files (and GLUE's submission format) spell them; a name's position is its class
    /// index. Empty for STS-B, whose label is a score.
    /// </summary>
    /// <param name="task">The task.</param>
    public static IReadOnlyList<string> LabelNames(GlueTask task) => FormatOf(task).LabelNames;

    /// <summary>Whether the task is scored by regression (STS-B) rather than classification.</summary>
    /// <param name="task">The task.</param>
    public static bool IsRegression(GlueTask task) => FormatOf(task).LabelNames.Count == 0;

    /// <summary>The width of the task's output head: the number of classes, or 1 for STS-B's regression.</summary>
    /// <param name="task">The task.</param>
    public static int NumLabels(GlueTask task) => IsRegression(task) ? 1 : FormatOf(task).LabelNames.Count;

    /// <summary>
    /// The metrics GLUE reports for the task, in the leaderboard's order (e.g. MRPC: F1 then accuracy). A fresh
    /// array each call.
    /// </summary>
    /// <param name="task">The task.</param>
    public static GlueMetric[] OfficialMetrics(GlueTask task) => (GlueMetric[])FormatOf(task).Metrics.Clone();

    /// <summary>
    /// Reads one GLUE file. A file without the task's label column (the test splits) is read as unlabelled. Rows
    /// with fewer fields than the header are skipped and reported in <see cref="GlueSplit.SkippedLines"/>; blank
    /// lines are ignored.
    /// </summary>
    /// <param name="task">The task whose format the file is in.</param>
    /// <param name="path">The <c>.tsv</c> file.</param>
    /// <returns>The examples, in file order.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">
    /// The file is empty where a header is expected, is not UTF-8, lacks a text column, repeats a column name, lacks
    /// the label column yet has a column that the task's test files do not (a misspelled label column), has a row
    /// with more fields than the header, or holds an unknown label or an unparsable or out-of-range score. The
    /// message names the file, the line and, where one is involved, the column.
    /// </exception>
    public static GlueSplit Read(GlueTask task, string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var format = FormatOf(task);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException($"GLUE {task} file '{full}' does not exist.", full);

        using var reader = new StreamReader(full, StrictUtf8, detectEncodingFromByteOrderMarks: true, BufferSize);
        var lineNumber = 0;
        string? NextLine()
        {
            try
            {
                var line = reader.ReadLine();
                if (line is not null)
                    lineNumber++;
                return line;
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"{full}: line {FirstInvalidUtf8Line(full)}: not valid UTF-8.", e);
            }
        }

        var first = NextLine();
        string[] columns;
        bool hasHeader;
        // CoLA's test file has a header and its train/dev files do not; their first field is a source code such
        // as "gj04", never "index".
        if (!format.LabeledHasHeader && (first is null || first.Split('\t')[0] != format.Id))
        {
            columns = format.Labeled;
            hasHeader = false;
        }
        else
        {
            if (first is null)
                throw new InvalidDataException($"{full}: the file is empty; a GLUE {task} file starts with a header line.");
            columns = first.Split('\t');
            hasHeader = true;
        }

        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var c = 0; c < columns.Length; c++)
        {
            if (!index.TryAdd(columns[c], c))
                throw new InvalidDataException($"{full}: line 1, column {c + 1} '{columns[c]}': the name appears twice in the header.");
        }
        int Required(string name) => index.TryGetValue(name, out var c)
            ? c
            : throw new InvalidDataException(
                $"{full}: line 1: required column '{name}' is missing from the header (found: {Quoted(columns)}).");
        int Optional(string name) => index.TryGetValue(name, out var c) ? c : -1;

        var textA = Required(format.TextA);
        var textB = format.TextB is null ? -1 : Required(format.TextB);
        var id = Optional(format.Id);
        var label = Optional(format.Label);
        if (label < 0)
        {
            // Without its label column a file is read as a test file; demanding the test layout's columns then
            // keeps a train/dev file whose label column is misspelled from being read as unlabelled.
            var foreign = Array.FindIndex(columns, c => !format.Unlabeled.Contains(c));
            if (foreign >= 0)
                throw new InvalidDataException(
                    $"{full}: line 1, column {foreign + 1} '{columns[foreign]}': the header lacks the label column '{format.Label}', " +
                    $"so this would be a test file, but {task} test files have no such column (they have {Quoted(format.Unlabeled)}).");
        }
        var regression = format.LabelNames.Count == 0;

        var examples = new List<GlueExample>();
        var skipped = new List<int>();
        var rows = 0;
        for (var line = hasHeader ? NextLine() : first; line is not null; line = NextLine())
        {
            // A blank line holds no row, as csv.DictReader sees it; it neither counts as skipped nor takes a position.
            if (line.Length == 0)
                continue;
            var position = rows++;
            var fields = line.Split('\t');
            if (fields.Length < columns.Length)
            {
                skipped.Add(lineNumber);
                continue;
            }
            if (fields.Length > columns.Length)
                throw new InvalidDataException(
                    $"{full}: line {lineNumber}: {fields.Length} tab-separated fields but the header has {columns.Length} (a tab inside a field?).");

            InvalidDataException Bad(int column, string problem) =>
                new($"{full}: line {lineNumber}, column {column + 1} '{columns[column]}': {problem}");
            int? classIndex = null;
            double? score = null;
            if (label >= 0 && regression)
                score = ParseScore(fields[label], problem => Bad(label, problem));
            else if (label >= 0)
            {
                var k = format.LabelNames.IndexOf(fields[label]);
                classIndex = k >= 0
                    ? k
                    : throw Bad(label, $"unknown label '{fields[label]}' (expected one of {Quoted(format.LabelNames)}).");
            }
            examples.Add(new GlueExample(
                id >= 0 ? fields[id] : position.ToString(CultureInfo.InvariantCulture),
                fields[textA],
                textB >= 0 ? fields[textB] : null,
                classIndex,
                score));
        }
        return new GlueSplit(task, full, label >= 0, examples.AsReadOnly(), skipped.AsReadOnly());
    }

    private static string Quoted(IEnumerable<string> names) => string.Join(", ", names.Select(n => $"'{n}'"));

    /// <summary>
    /// The one-based line of the first invalid UTF-8 sequence, counting line breaks as <see cref="StreamReader.ReadLine"/>
    /// does. The reader decodes whole buffers ahead of the line it returns, so its exception cannot say where the bad
    /// bytes are; this rescans the file, which is acceptable on the way to an error.
    /// </summary>
    private static int FirstInvalidUtf8Line(string path)
    {
        ReadOnlySpan<byte> rest = File.ReadAllBytes(path);
        var line = 1;
        var previous = 0;
        while (!rest.IsEmpty && Rune.DecodeFromUtf8(rest, out var rune, out var consumed) == OperationStatus.Done)
        {
            if (rune.Value == '\r' || (rune.Value == '\n' && previous != '\r'))
                line++;
            previous = rune.Value;
            rest = rest[consumed..];
        }
        return line;
    }

    private static double ParseScore(string field, Func<string, InvalidDataException> bad)
    {
        // No whitespace, thousands separators or culture: GLUE writes plain decimals such as "3.800".
        const NumberStyles style = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;
        if (!double.TryParse(field, style, CultureInfo.InvariantCulture, out var score) || !double.IsFinite(score))
            throw bad($"score '{field}' is not a number.");
        if (score is < 0 or > 5)
            throw bad($"score {field} is outside the STS-B range 0 to 5.");
        return score;
    }

    /// <summary>
    /// Writes examples as a GLUE file of <paramref name="task"/>, in the official column layout: the train/dev
    /// layout when the examples are labelled, the test layout when none is. Columns that <see cref="GlueExample"/>
    /// does not carry (MRPC's sentence ids, MNLI's parses, ...) are left empty, and the <see cref="GlueExample.Id"/>
    /// is stored only where the layout has an id column (not in CoLA, SST-2 and MRPC train/dev files, whose ids
    /// <see cref="Read"/> derives from row positions). An empty sequence writes the labelled layout. The file is
    /// replaced atomically: on any error the previous file is left as it was.
    /// </summary>
    /// <param name="task">The task whose format to write.</param>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="examples">The examples, all labelled or all unlabelled.</param>
    /// <exception cref="ArgumentException">
    /// An example has a tab, a line break or a lone surrogate in a field (the format cannot escape the first two,
    /// UTF-8 cannot encode the last), mixes labelled and unlabelled rows, has a label out of range or a score outside
    /// [0, 5], or does not fit the task (a second text for a single-sentence task, a class for STS-B, ...). The
    /// message names the example by position and id.
    /// </exception>
    public static void Write(GlueTask task, string path, IEnumerable<GlueExample> examples)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(examples);
        var format = FormatOf(task);
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, StrictUtf8, BufferSize, leaveOpen: true);
            bool? labeled = null;
            var position = 0;
            foreach (var example in examples)
            {
                var hasLabel = Check(task, format, example, position);
                if (labeled is null)
                {
                    labeled = hasLabel;
                    WriteHeader(writer, format, hasLabel);
                }
                else if (labeled != hasLabel)
                {
                    throw new ArgumentException(
                        $"Example {position} (id '{example.Id}') is {Labelled(hasLabel)} but example 0 is {Labelled(!hasLabel)}; " +
                        "a GLUE file is either a train/dev file or a test file.", nameof(examples));
                }
                WriteRow(writer, format, example, hasLabel);
                position++;
            }
            if (labeled is null)
                WriteHeader(writer, format, labeled: true);
            writer.Flush();
        });
    }

    private static string Labelled(bool labeled) => labeled ? "labelled" : "unlabelled";

    /// <summary>Validates one example for writing and tells whether it is labelled.</summary>
    private static bool Check(GlueTask task, Format format, GlueExample? example, int position)
    {
        if (example is null)
            throw new ArgumentException($"Example {position} is null.", "examples");
        ArgumentException Bad(string problem) => new($"Example {position} (id '{example.Id}'): {problem}", "examples");

        // Records do not stop a null from callers without nullable analysis (F#, reflection).
        if (example.Id is null || example.TextA is null)
            throw Bad($"{(example.Id is null ? "Id" : "TextA")} is null.");
        foreach (var (name, value) in new[] { ("Id", example.Id), ("TextA", example.TextA), ("TextB", example.TextB) })
        {
            if (value is null)
                continue;
            if (value.IndexOfAny(['\t', '\n', '\r']) >= 0)
                throw Bad($"{name} contains a tab or line break, which a GLUE file cannot hold.");
            // Checked here so the error names the example; the strict encoder would only say that some text failed.
            if (!IsValidUtf16(value))
                throw Bad($"{name} contains a lone surrogate, which UTF-8 cannot encode.");
        }
        if (format.TextB is null && example.TextB is not null)
            throw Bad($"{task} is a single-sentence task; TextB must be null.");
        if (format.TextB is not null && example.TextB is null)
            throw Bad($"{task} is a sentence-pair task; TextB is null.");

        if (format.LabelNames.Count == 0)
        {
            if (example.Label is not null)
                throw Bad($"{task} is scored by regression; give a Score, not a Label.");
            if (example.Score is { } s && !(s >= 0 && s <= 5))
                throw Bad($"score {s.ToString(CultureInfo.InvariantCulture)} is outside the STS-B range 0 to 5.");
            return example.Score is not null;
        }
        if (example.Score is not null)
            throw Bad($"{task} is a classification task; give a Label, not a Score.");
        if (example.Label is { } k && (k < 0 || k >= format.LabelNames.Count))
            throw Bad($"label {k} is out of range for {task}'s {format.LabelNames.Count} classes.");
        return example.Label is not null;
    }

    private static bool IsValidUtf16(string value)
    {
        for (var rest = value.AsSpan(); !rest.IsEmpty;)
        {
            if (Rune.DecodeFromUtf16(rest, out _, out var consumed) != OperationStatus.Done)
                return false;
            rest = rest[consumed..];
        }
        return true;
    }

    private static void WriteHeader(StreamWriter writer, Format format, bool labeled)
    {
        if (labeled && !format.LabeledHasHeader)
            return;
        WriteLine(writer, labeled ? format.Labeled : format.Unlabeled);
    }

    private static void WriteRow(StreamWriter writer, Format format, GlueExample example, bool labeled)
    {
        var label = example.Score is { } score
            ? score.ToString("R", CultureInfo.InvariantCulture)
            : example.Label is { } k ? format.LabelNames[k] : "";
        string Field(string column) =>
            column == format.Id ? example.Id
            : column == format.TextA ? example.TextA
            : column == format.TextB ? example.TextB!
            : column == format.Label ? label
            : "";
        WriteLine(writer, (labeled ? format.Labeled : format.Unlabeled).Select(Field));
    }

    private static void WriteLine(StreamWriter writer, IEnumerable<string> fields)
    {
        writer.Write(string.Join('\t', fields));
        // GLUE files end lines with LF on every platform; WriteLine would use CRLF on Windows.
        writer.Write('\n');
    }
}
