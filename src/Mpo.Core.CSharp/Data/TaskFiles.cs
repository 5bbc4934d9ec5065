using System;
using System.Buffers;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Mpo.Checkpoints;

namespace Mpo.Data;

/// <summary>
/// Reads and writes the tab-separated files of any <see cref="TextTask"/>: GLUE's
/// (<c>glue_data/&lt;TASK&gt;/{train,dev,test}.tsv</c>, and for MNLI <c>dev_matched</c>, <c>dev_mismatched</c>,
/// <c>test_matched</c>, <c>test_mismatched</c>) and the bundled tasks' (<c>data/tasks/&lt;task&gt;/{train,dev,test}.tsv</c>).
/// </summary>
/// <remarks>
/// Rows are split on tabs only. GLUE fields are never quoted, and its text contains literal double quotes (often
/// unbalanced), so a CSV parser that honours quotes would merge rows; this follows <c>csv.QUOTE_NONE</c> as the
/// Hugging Face and GLUE baseline readers do. Columns are found by header name, so column order and MNLI's varying
/// annotator-label columns do not matter; CoLA's train and dev files, which have no header, are read by position.
/// </remarks>
public static class TaskFiles
{
    private const int BufferSize = 1 << 20;

    // Strict decoding: a file that is not UTF-8 is the wrong file, and silently decoding it to U+FFFD would feed a
    // model corrupted text. The BOM is stripped on reading (GLUE's MRPC train and dev files start with one, copied
    // from the Microsoft source file) and never written.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Reads one task file. A file without the task's label column (GLUE's test splits) is read as unlabelled. Rows
    /// with fewer fields than the header are skipped and reported in <see cref="TextSplit.SkippedLines"/>; blank
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
    public static TextSplit Read(TextTask task, string path)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException($"{task.Name} file '{full}' does not exist.", full);

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
        if (!task.LabeledHasHeader && (first is null || first.Split('\t')[0] != task.IdColumn))
        {
            columns = [.. task.LabeledColumns];
            hasHeader = false;
        }
        else
        {
            if (first is null)
                throw new InvalidDataException($"{full}: the file is empty; a {task.Name} file starts with a header line.");
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

        var textA = Required(task.TextColumn);
        var textB = task.SecondTextColumn is null ? -1 : Required(task.SecondTextColumn);
        var id = Optional(task.IdColumn);
        var document = task.DocumentColumn is null ? -1 : Optional(task.DocumentColumn);
        var label = task.LabelColumn is null ? -1 : Optional(task.LabelColumn);
        if (label < 0 && task.LabelColumn is not null)
        {
            // Without its label column a file is read as a test file; demanding the test layout's columns then
            // keeps a train/dev file whose label column is misspelled from being read as unlabelled.
            var foreign = Array.FindIndex(columns, c => !task.UnlabeledColumns.Contains(c));
            if (foreign >= 0)
                throw new InvalidDataException(
                    $"{full}: line 1, column {foreign + 1} '{columns[foreign]}': the header lacks the label column '{task.LabelColumn}', " +
                    $"so this would be a test file, but {task.Name} test files have no such column (they have {Quoted(task.UnlabeledColumns)}).");
        }
        var regression = task.Kind == TaskKind.Regression;

        var examples = new List<TextExample>();
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
                score = ParseScore(task, fields[label], problem => Bad(label, problem));
            else if (label >= 0)
            {
                var k = IndexOf(task.LabelNames, fields[label]);
                classIndex = k >= 0
                    ? k
                    : throw Bad(label, $"unknown label '{fields[label]}' (expected one of {Quoted(task.LabelNames)}).");
            }
            examples.Add(new TextExample(
                id >= 0 ? fields[id] : position.ToString(CultureInfo.InvariantCulture),
                fields[textA],
                textB >= 0 ? fields[textB] : null,
                classIndex,
                score,
                document >= 0 ? fields[document] : null));
        }
        return new TextSplit(task, full, label >= 0, examples.AsReadOnly(), skipped.AsReadOnly());
    }

    private static string Quoted(IEnumerable<string> names) => string.Join(", ", names.Select(n => $"'{n}'"));

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (var k = 0; k < names.Count; k++)
        {
            if (names[k] == name)
                return k;
        }
        return -1;
    }

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

    private static double ParseScore(TextTask task, string field, Func<string, InvalidDataException> bad)
    {
        // No whitespace, thousands separators or culture: GLUE writes plain decimals such as "3.800".
        const NumberStyles style = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;
        if (!double.TryParse(field, style, CultureInfo.InvariantCulture, out var score) || !double.IsFinite(score))
            throw bad($"score '{field}' is not a number.");
        if (score < task.MinScore || score > task.MaxScore)
            throw bad($"score {field} is outside the {task.Name} range {task.ScoreRangeText}.");
        return score;
    }

    /// <summary>
    /// Writes examples as a file of <paramref name="task"/>, in the official column layout: the train/dev layout when
    /// the examples are labelled, the test layout when none is (language-modelling tasks have one layout). Columns
    /// that <see cref="TextExample"/> does not carry (MRPC's sentence ids, MNLI's parses, ...) are left empty, and the
    /// <see cref="TextExample.Id"/> is stored only where the layout has an id column (not in CoLA, SST-2 and MRPC
    /// train/dev files, whose ids <see cref="Read"/> derives from row positions). An empty sequence writes the
    /// labelled layout. The file is replaced atomically: on any error the previous file is left as it was.
    /// </summary>
    /// <param name="task">The task whose format to write.</param>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="examples">The examples, all labelled or all unlabelled.</param>
    /// <exception cref="ArgumentException">
    /// An example has a tab, a line break or a lone surrogate in a field (the format cannot escape the first two,
    /// UTF-8 cannot encode the last), mixes labelled and unlabelled rows, has a label out of range or a score outside
    /// the task's range, or does not fit the task (a second text for a single-sentence task, a class for STS-B, a
    /// document where the files have no document column, ...). The message names the example by position and id.
    /// </exception>
    public static void Write(TextTask task, string path, IEnumerable<TextExample> examples)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(examples);
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, StrictUtf8, BufferSize, leaveOpen: true);
            bool? labeled = null;
            var position = 0;
            foreach (var example in examples)
            {
                var hasLabel = Check(task, example, position);
                if (labeled is null)
                {
                    labeled = hasLabel;
                    WriteHeader(writer, task, hasLabel);
                }
                else if (labeled != hasLabel)
                {
                    throw new ArgumentException(
                        $"Example {position} (id '{example.Id}') is {Labelled(hasLabel)} but example 0 is {Labelled(!hasLabel)}; " +
                        "a task file is either a train/dev file or a test file.", nameof(examples));
                }
                WriteRow(writer, task, example, hasLabel);
                position++;
            }
            if (labeled is null)
                WriteHeader(writer, task, labeled: task.LabelColumn is not null);
            writer.Flush();
        });
    }

    private static string Labelled(bool labeled) => labeled ? "labelled" : "unlabelled";

    /// <summary>Validates one example for writing and tells whether it is labelled.</summary>
    private static bool Check(TextTask task, TextExample? example, int position)
    {
        if (example is null)
            throw new ArgumentException($"Example {position} is null.", "examples");
        ArgumentException Bad(string problem) => new($"Example {position} (id '{example.Id}'): {problem}", "examples");

        // Records do not stop a null from callers without nullable analysis (F#, reflection).
        if (example.Id is null || example.TextA is null)
            throw Bad($"{(example.Id is null ? "Id" : "TextA")} is null.");
        foreach (var (name, value) in new[] { ("Id", example.Id), ("TextA", example.TextA), ("TextB", example.TextB), ("Document", example.Document) })
        {
            if (value is null)
                continue;
            if (value.IndexOfAny(['\t', '\n', '\r']) >= 0)
                throw Bad($"{name} contains a tab or line break, which a task file cannot hold.");
            // Checked here so the error names the example; the strict encoder would only say that some text failed.
            if (!IsValidUtf16(value))
                throw Bad($"{name} contains a lone surrogate, which UTF-8 cannot encode.");
        }
        if (task.SecondTextColumn is null && example.TextB is not null)
            throw Bad($"{task.Name} is a single-sentence task; TextB must be null.");
        if (task.SecondTextColumn is not null && example.TextB is null)
            throw Bad($"{task.Name} is a sentence-pair task; TextB is null.");
        if (task.DocumentColumn is null && example.Document is not null)
            throw Bad($"{task.Name} files have no document column; Document must be null.");

        switch (task.Kind)
        {
            case TaskKind.Regression:
                if (example.Label is not null)
                    throw Bad($"{task.Name} is scored by regression; give a Score, not a Label.");
                if (example.Score is { } s && !(s >= task.MinScore && s <= task.MaxScore))
                    throw Bad($"score {s.ToString(CultureInfo.InvariantCulture)} is outside the {task.Name} range {task.ScoreRangeText}.");
                return example.Score is not null;
            case TaskKind.Classification:
                if (example.Score is not null)
                    throw Bad($"{task.Name} is a classification task; give a Label, not a Score.");
                if (example.Label is { } k && (k < 0 || k >= task.LabelNames.Count))
                    throw Bad($"label {k} is out of range for {task.Name}'s {task.LabelNames.Count} classes.");
                return example.Label is not null;
            default:
                if (example.Label is not null || example.Score is not null)
                    throw Bad($"{task.Name} is a language-modelling task; its examples have no Label or Score.");
                return false;
        }
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

    private static void WriteHeader(StreamWriter writer, TextTask task, bool labeled)
    {
        if (labeled && !task.LabeledHasHeader)
            return;
        WriteLine(writer, labeled ? task.LabeledColumns : task.UnlabeledColumns);
    }

    private static void WriteRow(StreamWriter writer, TextTask task, TextExample example, bool labeled)
    {
        var label = example.Score is { } score
            ? score.ToString("R", CultureInfo.InvariantCulture)
            : example.Label is { } k ? task.LabelNames[k] : "";
        string Field(string column) =>
            column == task.IdColumn ? example.Id
            : column == task.TextColumn ? example.TextA
            : column == task.SecondTextColumn ? example.TextB!
            : column == task.LabelColumn ? label
            : column == task.DocumentColumn ? example.Document ?? ""
            : "";
        WriteLine(writer, (labeled ? task.LabeledColumns : task.UnlabeledColumns).Select(Field));
    }

    private static void WriteLine(StreamWriter writer, IEnumerable<string> fields)
    {
        writer.Write(string.Join('\t', fields));
        // Task files end lines with LF on every platform; WriteLine would use CRLF on Windows.
        writer.Write('\n');
    }
}
