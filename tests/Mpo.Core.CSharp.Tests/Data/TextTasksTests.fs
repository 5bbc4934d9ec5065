module Mpo.Core.Tests.TextTasksTests

open System
open System.IO
open System.Security.Cryptography
open System.Text
open Expecto
open Mpo.Data
open Mpo.Core.Tests.Support

/// The repository root: the folder holding data/tasks/.
let private root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(repoFile "data/tasks/SHA256SUMS"), "..", ".."))

let private read task split = TextTasks.Read(root, task, split)

/// rows, documents and per-label counts of every split, as data/tasks/README.md reports them.
let private expected =
    [ TextTasks.Spam, [ "train", 4696, 4696, [ 3279; 1417 ]; "dev", 589, 589, [ 411; 178 ]; "test", 589, 589, [ 411; 178 ] ]
      TextTasks.SotuParty, [ "train", 4465, 62, [ 2539; 1926 ]; "dev", 998, 14, [ 624; 374 ]; "test", 977, 14, [ 536; 441 ] ]
      TextTasks.Lm, [ "train", 6950, 166, []; "dev", 804, 21, []; "test", 837, 21, [] ] ]

/// The stratum of a document under the split rule: the corpus group for spam, the party for sotu-party, the
/// source for lm (both are the id's first segment, or the label).
let private stratum (task: TextTask) (example: TextExample) =
    if task = TextTasks.SotuParty then string example.Label.Value else example.Document.Split('/')[0]

let private sha256Hex (bytes: byte[]) = Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()

/// The split rule of data/tasks/README.md, written again from its text: per stratum, documents by SHA-256 of the id
/// ascending; the first round(n·test) are test, the next round(n·dev) dev, the rest train.
let private ruleSplits (fractions: float) (documents: (string * string) seq) =
    let round (x: float) = int (Math.Floor(x + 0.5))
    documents
    |> Seq.distinct
    |> Seq.groupBy snd
    |> Seq.collect (fun (_, members) ->
        let ordered = members |> Seq.map fst |> Seq.sortBy (fun d -> sha256Hex (Encoding.UTF8.GetBytes d), d) |> Array.ofSeq
        let nTest, nDev = round (float ordered.Length * fractions), round (float ordered.Length * fractions)
        ordered |> Array.mapi (fun k d -> d, (if k < nTest then "test" elif k < nTest + nDev then "dev" else "train")))
    |> Map.ofSeq

let private contentTests =
    testList "content" [
        for task, splits in expected do
            for split, rows, documents, labels in splits do
                test $"{task.Name}/{split}: rows, documents, labels" {
                    let data = read task split
                    Expect.equal data.Examples.Count rows "rows"
                    Expect.isEmpty data.SkippedLines "no malformed row"
                    Expect.equal data.Labeled (task.Kind = TaskKind.Classification) "labelled exactly when classification"
                    Expect.equal (data.Examples |> Seq.map _.Document |> Seq.distinct |> Seq.length) documents "documents"
                    Expect.equal (data.Examples |> Seq.map _.Id |> Seq.distinct |> Seq.length) rows "ids are unique"
                    if task.Kind = TaskKind.Classification then
                        let counts = [ for k in 0 .. task.NumLabels - 1 -> data.Examples |> Seq.filter (fun e -> e.Label = Nullable k) |> Seq.length ]
                        Expect.equal counts labels "rows per class"
                    for e in data.Examples do
                        Expect.isTrue (e.Id = e.Document || e.Id.StartsWith(e.Document + "/")) $"{e.Id}: id names its document"
                        Expect.isNull e.TextB "single text"
                        Expect.isFalse e.Score.HasValue "no score"
                        let t = e.TextA
                        if t.Length = 0 || t <> t.Trim() || t.Contains "  " || t |> Seq.exists Char.IsControl then
                            failtestf "%s: text is not one clean line: %A" e.Id (t.Substring(0, min 80 t.Length))
                    if task = TextTasks.Spam then
                        let longest = data.Examples |> Seq.map (fun e -> e.TextA.EnumerateRunes() |> Seq.length) |> Seq.max
                        Expect.isLessThanOrEqual longest 1000 "truncated to 1,000 characters"
                    if task = TextTasks.SotuParty then
                        let shortest = data.Examples |> Seq.map (fun e -> e.TextA.Split(' ').Length) |> Seq.min
                        Expect.isGreaterThanOrEqual shortest 20 "no tiny passage" }

        for task, _ in expected do
            test $"{task.Name}: splits never share a document and follow the hash rule" {
                let documents =
                    [ for split in TextTasks.Splits do
                        for e in (read task split).Examples -> e.Document, split, stratum task e ]
                let splitOf = documents |> List.map (fun (d, s, _) -> d, s) |> List.distinct
                let shared = splitOf |> List.countBy fst |> List.filter (fun (_, n) -> n > 1)
                Expect.isEmpty shared "a document in two splits"
                let fraction = if task = TextTasks.SotuParty then 0.15 else 0.1
                let rule = ruleSplits fraction (documents |> List.map (fun (d, _, s) -> d, s))
                for d, s in splitOf do
                    Expect.equal s rule[d] $"{d}: split by the rule" }

        test "sotu-party and lm share no address: pre-training never reads the classification text" {
            let addresses task = set [ for split in TextTasks.Splits do for e in (read task split).Examples -> e.Document ]
            let party = addresses TextTasks.SotuParty
            let lm = addresses TextTasks.Lm |> Set.filter (fun d -> d.StartsWith "sotu/")
            Expect.isEmpty (Set.intersect party lm) "shared addresses"
            Expect.equal lm.Count 72 "lm addresses 1861–1932"
            let year (d: string) = int (d.Substring(5, 4))
            Expect.isTrue (party |> Set.forall (fun d -> year d >= 1933)) "sotu-party from 1933"
            Expect.isTrue (lm |> Set.forall (fun d -> year d >= 1861 && year d <= 1932)) "lm 1861–1932" }

        test "no two spam e-mails have the same text" {
            let texts = [ for split in TextTasks.Splits do for e in (read TextTasks.Spam split).Examples -> e.TextA ]
            Expect.equal (List.distinct texts).Length texts.Length "exact duplicates removed" }

        test "lm documents: DocumentTexts joins each document's rows in order" {
            let dev = read TextTasks.Lm "dev"
            let texts = dev.DocumentTexts()
            Expect.equal texts.Count 21 "one text per document"
            let first = dev.Examples |> Seq.takeWhile (fun e -> e.Document = dev.Examples[0].Document) |> Seq.map _.TextA
            Expect.equal texts[0] (String.Join("\n\n", first)) "paragraphs joined by a blank line" }
    ]

let private fileTests =
    testList "files" [
        test "every file has the SHA-256 that the preparation recorded in SHA256SUMS" {
            let lines = File.ReadAllLines(Path.Combine(root, TextTasks.Folder, "SHA256SUMS"))
            Expect.equal lines.Length 9 "three tasks × three splits"
            for line in lines do
                let hash, file = line.Substring(0, 64), line.Substring(66)
                Expect.equal (sha256Hex (File.ReadAllBytes(Path.Combine(root, TextTasks.Folder, file)))) hash file }

        test "a bundled split survives write and read, byte for byte" {
            let dir = Path.Combine(Path.GetTempPath(), "mpo-tasks-" + Guid.NewGuid().ToString("N"))
            Directory.CreateDirectory dir |> ignore
            try
                for task in TextTasks.All do
                    let original = Path.Combine(root, TextTasks.Folder, task.Name, "dev.tsv")
                    let copy = Path.Combine(dir, task.Name + ".tsv")
                    TaskFiles.Write(task, copy, (TaskFiles.Read(task, original)).Examples)
                    Expect.equal (File.ReadAllBytes copy) (File.ReadAllBytes original) $"{task.Name}: the writer's layout is the files' layout"
            finally
                Directory.Delete(dir, true) }

        test "tasks by name; an unknown split or name is refused with the choices" {
            Expect.equal (TextTasks.ByName "SOTU-PARTY") TextTasks.SotuParty "case aside"
            throwsWith<ArgumentException> [ "'glue'"; "CoLA"; "spam"; "lm" ] (fun () -> TextTasks.ByName "glue" |> ignore) |> ignore
            throwsWith<ArgumentException> [ "'validation'"; "lm"; "train, dev or test" ] (fun () -> read TextTasks.Lm "validation" |> ignore) |> ignore }
    ]

let private definitionTests =
    testList "definitions" [
        test "the bundled tasks: kinds, labels, head widths, metrics" {
            Expect.equal (List.ofSeq TextTasks.Spam.LabelNames) [ "ham"; "spam" ] "spam labels (F1's positive class is spam)"
            Expect.equal (List.ofSeq TextTasks.Spam.Metrics) [ TaskMetric.F1; TaskMetric.Accuracy ] "spam metrics"
            Expect.equal (List.ofSeq TextTasks.SotuParty.LabelNames) [ "Democratic"; "Republican" ] "party labels"
            Expect.equal (List.ofSeq TextTasks.SotuParty.Metrics) [ TaskMetric.Accuracy; TaskMetric.Matthews ] "party metrics"
            Expect.equal TextTasks.Lm.Kind TaskKind.LanguageModeling "lm kind"
            Expect.equal TextTasks.Lm.NumLabels 0 "no head"
            Expect.equal (List.ofSeq TextTasks.Lm.Metrics) [ TaskMetric.Perplexity ] "lm metric" }

        test "an inconsistent definition is refused, naming the task and the problem" {
            let make kind label (labels: string list) range metrics (unlabeled: string list) =
                TextTask("bad", kind, "id", "text", null, label, null, [ "id"; "text"; "label" ], unlabeled, metrics,
                         labels, range) |> ignore
            let fails fragments f = throwsWith<ArgumentException> ("Task 'bad'" :: fragments) f |> ignore
            fails [ "two distinct label names" ] (fun () -> make TaskKind.Classification "label" [ "a" ] (Nullable()) [ TaskMetric.Accuracy ] [ "id"; "text" ])
            fails [ "F1 needs two classes" ] (fun () -> make TaskKind.Classification "label" [ "a"; "b"; "c" ] (Nullable()) [ TaskMetric.F1 ] [ "id"; "text" ])
            fails [ "scored by Pearson or Spearman" ] (fun () -> make TaskKind.Regression "label" [] (Nullable(struct (0.0, 1.0))) [ TaskMetric.Accuracy ] [ "id"; "text" ])
            fails [ "min < max" ] (fun () -> make TaskKind.Regression "label" [] (Nullable(struct (1.0, 1.0))) [ TaskMetric.Pearson ] [ "id"; "text" ])
            fails [ "unlabelled layout has the label column" ] (fun () -> make TaskKind.Classification "label" [ "a"; "b" ] (Nullable()) [ TaskMetric.Accuracy ] [ "id"; "text"; "label" ])
            fails [ "label column 'gold'"; "not in the labelled layout" ] (fun () -> make TaskKind.Classification "gold" [ "a"; "b" ] (Nullable()) [ TaskMetric.Accuracy ] [ "id"; "text" ])
            fails [ "no label column" ] (fun () -> make TaskKind.LanguageModeling "label" [] (Nullable()) [ TaskMetric.Perplexity ] [ "id"; "text" ]) }

        test "perplexity: exp of the mean negative log-likelihood; a uniform model over V tokens scores V" {
            for v in [ 2.0; 100.0; 50257.0 ] do
                expectClose 1e-12 (TaskMetrics.Perplexity(1234.0 * log v, 1234L)) v $"uniform over {v}"
            Expect.equal (TaskMetrics.Perplexity(0.0, 10L)) 1.0 "a certain model"
            throwsWith<ArgumentException> [ "tokens is 0" ] (fun () -> TaskMetrics.Perplexity(1.0, 0L) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "negativeLogLikelihood is -1" ] (fun () -> TaskMetrics.Perplexity(-1.0, 3L) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "lm is a language-modelling task"; "Perplexity" ]
                (fun () -> TaskMetrics.Compute(TextTasks.Lm, [| 0 |], [| 0 |]) |> ignore) |> ignore }
    ]

[<Tests>]
let tests = testList "Data.TextTasks" [ definitionTests; contentTests; fileTests ]
