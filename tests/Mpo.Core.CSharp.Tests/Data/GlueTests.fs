module Mpo.Core.Tests.GlueTests

open System
open System.IO
open System.Text
open Expecto
open Mpo.Data
open Mpo.Core.Tests.Support

let private labeled id a (b: string) (k: int) = TextExample(id, a, b, Nullable k, Nullable())
let private scored id a (b: string) (s: float) = TextExample(id, a, b, Nullable(), Nullable s)
let private unlabeled id a (b: string) = TextExample(id, a, b, Nullable(), Nullable())

/// GLUE's folder name of each task in glue_data/: the task's name.
let private folder (task: TextTask) = task.Name

let private fixture task file = Mpo.Tests.RepoFiles.find $"tests/fixtures/glue/{folder task}/{file}"

/// Runs `body` with a fresh folder under the system temp path and removes it afterwards, pass or fail.
let private withTempDir (body: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "mpo-glue-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try body dir finally Directory.Delete(dir, true)


/// Writes `content` (UTF-8, no BOM) to `name` in `dir` and reads it as `task`, expecting InvalidDataException.
let private readFails task (dir: string) name (content: string) fragments =
    let path = Path.Combine(dir, name)
    File.WriteAllText(path, content)
    throwsWith<InvalidDataException> (path :: fragments) (fun () -> TaskFiles.Read(task, path) |> ignore) |> ignore

/// Every fixture with the examples it must yield (written by hand from the fixture text) and its skipped lines.
let private fixtures : (TextTask * string * bool * TextExample list * int list) list =
    let trophy = "The trophy would not fit in the suitcase because it was too big."
    [ GlueTasks.CoLA, "train.tsv", true,
        [ labeled "0" "The cat that the dog chased ran away." null 1
          labeled "1" "The cat that the dog chased ran away it." null 0
          labeled "2" "She said \"hello\" and left." null 1
          labeled "3" "\"Which book did you wonder whether to read?" null 0 ], []
      GlueTasks.CoLA, "test.tsv", false,
        [ unlabeled "0" "Books were read by \"everyone." null
          unlabeled "1" "The more you eat, the less you want." null ], []
      GlueTasks.SST2, "train.tsv", true,
        [ labeled "0" "a gorgeous , witty film " null 1
          labeled "1" "the plot is \" borrowed \" from better movies " null 0
          labeled "2" "'' it 's not '' bad , just dull " null 0 ], []
      GlueTasks.SST2, "test.tsv", false,
        [ unlabeled "0" "an uneven but often charming debut ." null
          unlabeled "1" "\" wow \" ." null ], []
      GlueTasks.MRPC, "train.tsv", true,
        [ labeled "0" "The company said profits rose 5 percent." "Profits rose 5 percent, the company said." 1
          labeled "1" "\"We are pleased,\" the chief executive said." "The chief executive declined to comment on the \"deal\"." 0 ], []
      GlueTasks.MRPC, "test.tsv", false,
        [ unlabeled "0" "Shares fell 3 cents." "The stock lost 3 cents." ], []
      GlueTasks.STSB, "train.tsv", true,
        [ scored "0" "A man is playing a flute." "A man plays the flute." 3.8
          scored "1" "\"Hope\" is the thing." "Nothing is certain." 0.0
          scored "2" "Why not?" "Why not." 5.0 ], []
      GlueTasks.STSB, "test.tsv", false,
        [ unlabeled "0" "Rain expected \"later\"." "Showers are forecast." ], []
      GlueTasks.QQP, "train.tsv", true,
        [ labeled "10" "How do I learn C#?" "What is the best way to learn C#?" 1
          labeled "11" "What does \"quid pro quo\" mean?" "Is Latin hard?" 0
          labeled "14" "Is \"this\" a duplicate?" "Is this a duplicate?" 1 ],
        // line 4 and 5: one row broken over two lines; line 6: question2 missing.
        [ 4; 5; 6 ]
      GlueTasks.QQP, "test.tsv", false,
        [ unlabeled "0" "How old is \"the\" universe?" "What is the age of the universe?" ], []
      // MNLI classes: 0 contradiction, 1 entailment, 2 neutral.
      GlueTasks.MNLI, "train.tsv", true,
        [ labeled "0" "The cat sat." "A cat stood." 2
          labeled "1" "yeah \"i guess\" so" "I agree." 1
          labeled "2" "He never left the house." "He went out every day." 0 ], []
      // label2 of the first row is "entailment": only gold_label counts.
      GlueTasks.MNLI, "dev_matched.tsv", true,
        [ labeled "0" "The cat sat." "A cat stood." 2
          labeled "2" "He never left the house." "He went out every day." 0 ], []
      GlueTasks.MNLI, "test_matched.tsv", false,
        [ unlabeled "1" "yeah \"i guess\" so" "I agree." ], []
      GlueTasks.QNLI, "dev.tsv", true,
        [ labeled "0" "What is \"the\" capital of France?" "Paris is the capital of France." 0
          labeled "1" "When did it rain?" "The \"storm\" was loud." 1 ], []
      GlueTasks.QNLI, "test.tsv", false,
        [ unlabeled "0" "Who wrote it?" "It was written in 1900." ], []
      GlueTasks.RTE, "train.tsv", true,
        [ labeled "0" "The \"Titan\" project began in 2004." "The Titan project started in 2004." 0
          labeled "1" "Prices rose sharply." "Prices fell." 1 ], []
      GlueTasks.RTE, "test.tsv", false,
        [ unlabeled "0" "A dog barked." "An animal made a sound." ], []
      GlueTasks.WNLI, "train.tsv", true,
        [ labeled "0" trophy "The trophy was too big." 1
          labeled "1" trophy "The suitcase was too big." 0 ], []
      GlueTasks.WNLI, "test.tsv", false,
        [ unlabeled "0" "Joan thanked Susan for \"all\" the help she had given." "Susan had given help." ], [] ]

/// Short printable strings with GLUE's troublesome characters: literal and unbalanced quotes, '' quotes,
/// backslashes, leading/trailing spaces, non-ASCII and astral-plane characters.
let private randomText (rng: Random) =
    let pieces = [| "a"; "Zq"; " "; "\""; "'"; "''"; "é"; "✓"; "😀"; ","; "."; "#1"; "\\"; "("; "0" |]
    String.Join("", Array.init (rng.Next(0, 10)) (fun _ -> pieces[rng.Next pieces.Length]))

let private randomExample (rng: Random) (task: TextTask) labelled =
    let b = if task.IsPair then randomText rng else null
    let id = string (rng.Next 100000) + randomText rng
    match labelled, task with
    | false, _ -> unlabeled id (randomText rng) b
    // Thousandths are what STS-B files hold; 0 and 5 are the ends of the range.
    | true, _ when task.IsRegression -> scored id (randomText rng) b (float (rng.Next(0, 5001)) / 1000.0)
    | true, _ -> labeled id (randomText rng) b (rng.Next task.NumLabels)

/// The train/dev layouts of CoLA, SST-2 and MRPC have no id column; every test layout has one.
let private storesId (task: TextTask) labelled =
    not labelled || not (List.contains task [ GlueTasks.CoLA; GlueTasks.SST2; GlueTasks.MRPC ])

let private readerTests =
    testList "reading" [
        for task, file, isLabeled, expected, skipped in fixtures do
            test $"{folder task}/{file}" {
                let path = fixture task file
                let split = TaskFiles.Read(task, path)
                Expect.equal split.Task task "task"
                Expect.equal split.Path (Path.GetFullPath path) "full path"
                Expect.equal split.Labeled isLabeled "labelled exactly when the file has the label column"
                Expect.equal (List.ofSeq split.Examples) expected "examples, texts verbatim"
                Expect.equal (List.ofSeq split.SkippedLines) skipped "skipped lines" }

        test "MRPC's byte order mark is not part of the first column name" {
            let bytes = File.ReadAllBytes(fixture GlueTasks.MRPC "train.tsv")
            Expect.equal bytes[0..2] [| 0xEFuy; 0xBBuy; 0xBFuy |] "the fixture starts with a BOM, as GLUE's file does"
            let first = TaskFiles.Read(GlueTasks.MRPC, fixture GlueTasks.MRPC "train.tsv").Examples[0]
            Expect.equal first.Label (Nullable 1) "read as labelled: the Quality column was found" }

        test "columns are found by name, in any order, with unknown columns ignored" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "rte.tsv")
                File.WriteAllText(path, "label\textra\tsentence2\tindex\tsentence1\nnot_entailment\tx\tB\t17\tA\n")
                let split = TaskFiles.Read(GlueTasks.RTE, path)
                Expect.equal (List.ofSeq split.Examples) [ labeled "17" "A" "B" 1 ] "read by name") }

        test "CRLF endings are accepted; blank lines are neither rows nor skipped" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "sst.tsv")
                File.WriteAllText(path, "sentence\tlabel\r\n\r\nfine .\t1\r\n\r\nbad .\t0\r\n\r\n")
                let split = TaskFiles.Read(GlueTasks.SST2, path)
                Expect.equal (List.ofSeq split.Examples) [ labeled "0" "fine ." null 1; labeled "1" "bad ." null 0 ] "positions ignore blank lines"
                Expect.isEmpty split.SkippedLines "nothing skipped") }

        test "row positions count skipped rows, as Hugging Face's idx does" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "sst.tsv")
                File.WriteAllText(path, "sentence\tlabel\nfine .\t1\nbroken\ngood .\t1\n")
                let split = TaskFiles.Read(GlueTasks.SST2, path)
                Expect.equal (split.Examples |> Seq.map _.Id |> List.ofSeq) [ "0"; "2" ] "the broken row takes position 1"
                Expect.equal (List.ofSeq split.SkippedLines) [ 3 ] "line 3 skipped") }

        test "an empty CoLA train file is an empty labelled split" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "train.tsv")
                File.WriteAllText(path, "")
                let split = TaskFiles.Read(GlueTasks.CoLA, path)
                Expect.isTrue split.Labeled "headerless layout is the labelled one"
                Expect.isEmpty split.Examples "no examples") }

        test "a missing file is a FileNotFoundException naming it" {
            let path = Path.Combine(Path.GetTempPath(), "mpo-glue-missing-" + Guid.NewGuid().ToString("N"), "dev.tsv")
            let e = throwsWith<FileNotFoundException> [ path ] (fun () -> TaskFiles.Read(GlueTasks.RTE, path) |> ignore)
            Expect.equal e.FileName path "FileName" }

        test "malformed files: the message names the file, the line and the column" {
            withTempDir (fun dir ->
                readFails GlueTasks.RTE dir "no-sentence2.tsv" "index\tsentence1\tlabel\n0\tA\tentailment\n"
                    [ "line 1"; "required column 'sentence2'"; "'index', 'sentence1', 'label'" ]
                readFails GlueTasks.MRPC dir "lower-case.tsv" "quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                    [ "line 1, column 1 'quality'"; "lacks the label column 'Quality'"; "'index', '#1 ID'" ]
                readFails GlueTasks.MNLI dir "dash.tsv"
                    ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                     + "0\t1\t1e\tfiction\t\t\t\t\tA\tB\tentailment\tentailment\n"
                     + "1\t2\t2n\tfiction\t\t\t\t\tC\tD\tneutral\t-\n")
                    [ "line 3"; "column 12 'gold_label'"; "unknown label '-'"; "'contradiction', 'entailment', 'neutral'" ]
                readFails GlueTasks.CoLA dir "cola-label.tsv" "src\t1\t\tFine.\nsrc\t2\t\tOdd.\n"
                    [ "line 2"; "column 2 'label'"; "unknown label '2'" ]
                readFails GlueTasks.QNLI dir "case.tsv" "index\tquestion\tsentence\tlabel\n0\tQ\tS\tEntailment\n"
                    [ "line 2"; "column 4 'label'"; "'Entailment'" ]
                let stsb rowScore =
                    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                    + $"0\tmain-news\theadlines\t2015\t1\tnone\tnone\tA\tB\t{rowScore}\n"
                readFails GlueTasks.STSB dir "comma.tsv" (stsb "4,5") [ "line 2"; "column 10 'score'"; "'4,5' is not a number" ]
                readFails GlueTasks.STSB dir "empty-score.tsv" (stsb "") [ "line 2"; "column 10 'score'"; "'' is not a number" ]
                readFails GlueTasks.STSB dir "nan.tsv" (stsb "NaN") [ "line 2"; "column 10 'score'"; "'NaN' is not a number" ]
                readFails GlueTasks.STSB dir "spaced.tsv" (stsb " 4.0") [ "line 2"; "column 10 'score'"; "' 4.0' is not a number" ]
                readFails GlueTasks.STSB dir "range.tsv" (stsb "5.2") [ "line 2"; "column 10 'score'"; "outside the STS-B range" ]
                readFails GlueTasks.WNLI dir "extra-field.tsv" "index\tsentence1\tsentence2\tlabel\n0\tA\tB\t1\n1\tA\tB\tC\t0\n"
                    [ "line 3"; "5 tab-separated fields but the header has 4" ]
                readFails GlueTasks.RTE dir "empty.tsv" "" [ "empty"; "header" ]
                readFails GlueTasks.QQP dir "twice.tsv" "id\tquestion1\tquestion2\tquestion1\n" [ "line 1"; "column 4 'question1'"; "twice" ]) }

        test "invalid UTF-8 is refused, not decoded to replacement characters" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "latin1.tsv")
                File.WriteAllBytes(path, Array.append (Encoding.ASCII.GetBytes "sentence\tlabel\ncaf") [| 0xE9uy; 0x09uy; 0x31uy; 0x0Auy |])
                throwsWith<InvalidDataException> [ path; "line 2: not valid UTF-8" ] (fun () -> TaskFiles.Read(GlueTasks.SST2, path) |> ignore)
                |> ignore) }
    ]

let private writerTests =
    testList "writing" [
        test "seeded random examples of every task round-trip, labelled and unlabelled" {
            let rng = Random 20210801
            withTempDir (fun dir ->
                for task in GlueTasks.All do
                    for labelled in [ true; false ] do
                        let examples = List.init 40 (fun _ -> randomExample rng task labelled)
                        let path = Path.Combine(dir, $"{task}-{labelled}.tsv")
                        TaskFiles.Write(task, path, examples)
                        let split = TaskFiles.Read(task, path)
                        let expected =
                            examples |> List.mapi (fun i e -> if storesId task labelled then e else TextExample(string i, e.TextA, e.TextB, e.Label, e.Score))
                        Expect.equal split.Labeled labelled $"{task} labelled={labelled}: layout"
                        Expect.equal (List.ofSeq split.Examples) expected $"{task} labelled={labelled}: examples"
                        Expect.isEmpty split.SkippedLines $"{task} labelled={labelled}: nothing skipped") }

        test "every fixture survives read, write, read; the written header is the official one" {
            withTempDir (fun dir ->
                for task, file, _, _, _ in fixtures do
                    let original = TaskFiles.Read(task, fixture task file)
                    let path = Path.Combine(dir, $"{folder task}-{file}")
                    TaskFiles.Write(task, path, original.Examples)
                    let again = TaskFiles.Read(task, path)
                    Expect.equal (List.ofSeq again.Examples) (List.ofSeq original.Examples) $"{folder task}/{file}"
                    // CoLA train has no header, and MNLI dev files carry five annotator labels where the writer
                    // uses the train layout's one.
                    if not (task = GlueTasks.CoLA && file = "train.tsv") && file <> "dev_matched.tsv" then
                        Expect.equal (File.ReadLines path |> Seq.head) (File.ReadLines(fixture task file) |> Seq.head)
                            $"{folder task}/{file}: header") }

        test "exact bytes: LF endings, no BOM, unknown columns empty, CoLA without header" {
            withTempDir (fun dir ->
                let bytesOf task examples =
                    let path = Path.Combine(dir, "out.tsv")
                    TaskFiles.Write(task, path, examples)
                    File.ReadAllBytes path
                Expect.equal (bytesOf GlueTasks.RTE [ labeled "7" "A \"b\"" "C" 1 ])
                    (Encoding.UTF8.GetBytes "index\tsentence1\tsentence2\tlabel\n7\tA \"b\"\tC\tnot_entailment\n") "RTE"
                Expect.equal (bytesOf GlueTasks.CoLA [ labeled "x" "Fine." null 1; labeled "y" "Ødd." null 0 ])
                    (Encoding.UTF8.GetBytes "\t1\t\tFine.\n\t0\t\tØdd.\n") "CoLA train layout"
                Expect.equal (bytesOf GlueTasks.MRPC [ unlabeled "3" "A" "B" ])
                    (Encoding.UTF8.GetBytes "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n3\t\t\tA\tB\n") "MRPC test layout"
                Expect.equal (bytesOf GlueTasks.STSB [ scored "0" "A" "B" 3.8 ] |> Encoding.UTF8.GetString |> fun s -> s.Split('\t') |> Array.last)
                    "3.8\n" "shortest round-trip score"
                Expect.equal (bytesOf GlueTasks.RTE []) (Encoding.UTF8.GetBytes "index\tsentence1\tsentence2\tlabel\n") "empty: labelled header"
                Expect.equal (bytesOf GlueTasks.CoLA []) [||] "empty CoLA: nothing") }

        test "bad examples are refused with the example and the problem named" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "out.tsv")
                let fails task examples fragments =
                    let e = throwsWith<ArgumentException> fragments (fun () -> TaskFiles.Write(task, path, examples))
                    Expect.equal e.ParamName "examples" "names the argument"
                let ok = labeled "0" "A" "B" 0
                fails GlueTasks.RTE [ ok; labeled "1" "A\tB" "C" 0 ] [ "Example 1 (id '1')"; "TextA"; "tab or line break" ]
                fails GlueTasks.RTE [ labeled "0" "A" "B\nC" 0 ] [ "Example 0"; "TextB"; "tab or line break" ]
                fails GlueTasks.RTE [ labeled "0\r" "A" "B" 0 ] [ "Example 0"; "Id"; "tab or line break" ]
                fails GlueTasks.RTE [ labeled "0" "A" ("B" + string '\uD800') 0 ] [ "Example 0"; "TextB"; "lone surrogate" ]
                fails GlueTasks.RTE [ ok; unlabeled "1" "A" "B" ] [ "Example 1"; "unlabelled but example 0 is labelled" ]
                fails GlueTasks.RTE [ labeled "0" "A" "B" 2 ] [ "label 2 is out of range"; "2 classes" ]
                fails GlueTasks.MNLI [ labeled "0" "A" "B" (-1) ] [ "label -1 is out of range"; "3 classes" ]
                fails GlueTasks.SST2 [ labeled "0" "A" "B" 0 ] [ "single-sentence"; "TextB must be null" ]
                fails GlueTasks.QQP [ labeled "0" "A" null 0 ] [ "sentence-pair"; "TextB is null" ]
                fails GlueTasks.QNLI [ scored "0" "A" "B" 1.0 ] [ "classification task"; "not a Score" ]
                fails GlueTasks.STSB [ labeled "0" "A" "B" 1 ] [ "regression"; "not a Label" ]
                fails GlueTasks.STSB [ scored "0" "A" "B" 5.5 ] [ "score 5.5 is outside" ]
                fails GlueTasks.STSB [ scored "0" "A" "B" nan ] [ "score NaN is outside" ]
                fails GlueTasks.RTE [ TextExample("0", null, "B", Nullable 0, Nullable()) ] [ "TextA is null" ]) }

        test "a refused write leaves the previous file as it was" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "dev.tsv")
                TaskFiles.Write(GlueTasks.WNLI, path, [ labeled "0" "A" "B" 1 ])
                let before = File.ReadAllBytes path
                // Rows before the bad one are already streamed out when it is found.
                let rows = [ for i in 0 .. 999 -> labeled (string i) "A" "B" 0 ] @ [ labeled "1000" "A\nB" "C" 0 ]
                throwsWith<ArgumentException> [ "Example 1000" ] (fun () -> TaskFiles.Write(GlueTasks.WNLI, path, rows)) |> ignore
                Expect.equal (File.ReadAllBytes path) before "unchanged"
                Expect.equal (Directory.GetFiles dir |> Array.map Path.GetFileName) [| "dev.tsv" |] "no temporary file left") }
    ]

let private taskTests =
    test "labels, head widths and official metrics of every task" {
        let table =
            [ GlueTasks.CoLA, [ "0"; "1" ], 2, [ TaskMetric.Matthews ]
              GlueTasks.SST2, [ "0"; "1" ], 2, [ TaskMetric.Accuracy ]
              GlueTasks.MRPC, [ "0"; "1" ], 2, [ TaskMetric.F1; TaskMetric.Accuracy ]
              GlueTasks.STSB, [], 1, [ TaskMetric.Pearson; TaskMetric.Spearman ]
              GlueTasks.QQP, [ "0"; "1" ], 2, [ TaskMetric.Accuracy; TaskMetric.F1 ]
              GlueTasks.MNLI, [ "contradiction"; "entailment"; "neutral" ], 3, [ TaskMetric.Accuracy ]
              GlueTasks.QNLI, [ "entailment"; "not_entailment" ], 2, [ TaskMetric.Accuracy ]
              GlueTasks.RTE, [ "entailment"; "not_entailment" ], 2, [ TaskMetric.Accuracy ]
              GlueTasks.WNLI, [ "0"; "1" ], 2, [ TaskMetric.Accuracy ] ]
        Expect.equal (table |> List.map (fun (t, _, _, _) -> t)) (List.ofSeq GlueTasks.All) "all nine tasks"
        Expect.equal (GlueTasks.All |> Seq.map _.Name |> List.ofSeq)
            [ "CoLA"; "SST-2"; "MRPC"; "STS-B"; "QQP"; "MNLI"; "QNLI"; "RTE"; "WNLI" ] "GLUE's folder names"
        for task, names, width, metrics in table do
            Expect.equal (List.ofSeq task.LabelNames) names $"{task}: label names"
            Expect.equal task.NumLabels width $"{task}: head width"
            Expect.equal task.IsRegression (task = GlueTasks.STSB) $"{task}: regression"
            Expect.equal (List.ofSeq task.Metrics) metrics $"{task}: metrics"
        let metrics = GlueTasks.MRPC.Metrics :?> Collections.Generic.IList<TaskMetric>
        Expect.throwsT<NotSupportedException> (fun () -> metrics[0] <- TaskMetric.Spearman) "callers cannot change a task's metrics"
        Expect.equal (TextTasks.ByName "sst-2") GlueTasks.SST2 "found by name, case aside" }

/// Average 1-based ranks by the definition: 1 + (number of smaller values) + (number of other equal values) / 2.
/// Quadratic, and independent of the library's sort-based ranking.
let private averageRanks (xs: float[]) =
    xs |> Array.map (fun x ->
        let smaller = xs |> Array.filter (fun y -> y < x) |> Array.length
        let equal = xs |> Array.filter (fun y -> y = x) |> Array.length
        float smaller + float (equal + 1) / 2.0)

let private close tolerance (actual: float) (expected: float) message =
    Expect.floatClose { absolute = tolerance; relative = tolerance } actual expected message

let private randomBits (rng: Random) n = Array.init n (fun _ -> rng.Next 2)

let private metricTests =
    testList "metrics" [
        test "by hand: 7 binary predictions, accuracy 4/7, F1 4/7, MCC 1/6" {
            // predictions 1 1 1 0 0 1 0
            // labels      1 0 1 1 0 0 0
            // TP = 2 (positions 0, 2), FP = 2 (1, 5), FN = 1 (3), TN = 2 (4, 6)
            // accuracy = (TP + TN) / 7 = 4/7
            // F1 = 2TP / (2TP + FP + FN) = 4 / 7; equivalently P = 1/2, R = 2/3, 2PR/(P+R) = (2/3)/(7/6) = 4/7
            // MCC = (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 − 2) / √(4·3·4·3) = 2/12 = 1/6
            let p = [| 1; 1; 1; 0; 0; 1; 0 |]
            let l = [| 1; 0; 1; 1; 0; 0; 0 |]
            close 1e-15 (TaskMetrics.Accuracy(p, l)) (4.0 / 7.0) "accuracy"
            close 1e-15 (TaskMetrics.F1(p, l)) (4.0 / 7.0) "F1"
            close 1e-15 (TaskMetrics.Matthews(p, l)) (1.0 / 6.0) "MCC" }

        test "F1 = 2PR/(P+R) on seeded random predictions; 0 without positives, 1 when perfect" {
            let rng = Random 5
            for trial in 1 .. 50 do
                let n = rng.Next(2, 200)
                let p, l = randomBits rng n, randomBits rng n
                let count a b = Seq.zip p l |> Seq.filter (fun (x, y) -> x = a && y = b) |> Seq.length |> float
                let tp, fp, fn = count 1 1, count 1 0, count 0 1
                let expected =
                    if tp = 0.0 then 0.0
                    else let precision, recall = tp / (tp + fp), tp / (tp + fn) in 2.0 * precision * recall / (precision + recall)
                close 1e-12 (TaskMetrics.F1(p, l)) expected $"trial {trial}"
            Expect.equal (TaskMetrics.F1([| 0; 0; 0 |], [| 0; 0; 0 |])) 0.0 "no positives anywhere: 0, as f1_score"
            Expect.equal (TaskMetrics.F1([| 1; 0; 1 |], [| 1; 0; 1 |])) 1.0 "perfect" }

        test "Matthews: ±1 for perfect and inverted, 0 when undefined, scikit-learn's −1/3 example" {
            let rng = Random 7
            let l = Array.append [| 0; 1 |] (randomBits rng 98)
            Expect.equal (TaskMetrics.Matthews(l, l)) 1.0 "perfect"
            Expect.equal (TaskMetrics.Matthews(l |> Array.map (fun x -> 1 - x), l)) -1.0 "inverted"
            Expect.equal (TaskMetrics.Matthews(Array.zeroCreate l.Length, l)) 0.0 "constant predictions"
            Expect.equal (TaskMetrics.Matthews(l, Array.create l.Length 1)) 0.0 "constant labels"
            // matthews_corrcoef([+1, +1, +1, -1], [+1, -1, +1, +1]): TP 2, FN 1, FP 1, TN 0 → (0 − 1)/√(3·3·1·1) = −1/3;
            // class ids need not be 0 and 1.
            close 1e-15 (TaskMetrics.Matthews([| 1; -1; 1; 1 |], [| 1; 1; 1; -1 |])) (-1.0 / 3.0) "scikit-learn docs" }

        test "Matthews, binary: the phi coefficient, i.e. the count formula and Pearson's r of the 0/1 vectors" {
            let rng = Random 11
            for trial in 1 .. 50 do
                let n = rng.Next(4, 300)
                let p, l = randomBits rng n, randomBits rng n
                p[0] <- 0; p[1] <- 1; l[0] <- 0; l[1] <- 1 // neither constant, so r is defined
                let count a b = Seq.zip p l |> Seq.filter (fun (x, y) -> x = a && y = b) |> Seq.length |> float
                let tp, tn, fp, fn = count 1 1, count 0 0, count 1 0, count 0 1
                let formula = (tp * tn - fp * fn) / sqrt ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
                let mcc = TaskMetrics.Matthews(p, l)
                close 1e-12 mcc formula $"trial {trial}: count formula"
                close 1e-12 mcc (TaskMetrics.Pearson(Array.map float p, Array.map float l)) $"trial {trial}: phi" }

        test "Matthews, three classes by hand: 12/√528; invariant to renaming classes" {
            // labels      0 0 1 1 2 2      gold counts t = (2, 2, 2)
            // predictions 0 1 1 1 2 0      predicted counts p = (2, 3, 1), correct c = 4, n = 6
            // cov(y,ŷ) = c·n − Σ t_k p_k = 24 − (4 + 6 + 2) = 12
            // cov(ŷ,ŷ) = n² − Σ p_k² = 36 − 14 = 22;  cov(y,y) = n² − Σ t_k² = 36 − 12 = 24
            // MCC = 12 / √(22·24) = 12/√528
            let l = [| 0; 0; 1; 1; 2; 2 |]
            let p = [| 0; 1; 1; 1; 2; 0 |]
            close 1e-15 (TaskMetrics.Matthews(p, l)) (12.0 / sqrt 528.0) "by hand"
            let rename = Array.map (fun k -> [| 7; -3; 40 |][k])
            close 1e-15 (TaskMetrics.Matthews(rename p, rename l)) (12.0 / sqrt 528.0) "renamed" }

        test "Pearson: by hand, SciPy's docs example, affine invariance, symmetry" {
            // x = 1 2 3 4, y = 2 4 5 9: deviations (−1.5, −.5, .5, 1.5) and (−3, −1, 0, 4)
            // Σdxdy = 4.5 + .5 + 0 + 6 = 11, Σdx² = 5, Σdy² = 26 → r = 11/√130
            close 1e-15 (TaskMetrics.Pearson([| 1.0; 2.0; 3.0; 4.0 |], [| 2.0; 4.0; 5.0; 9.0 |])) (11.0 / sqrt 130.0) "by hand"
            // pearsonr([1, 2, 3, 4, 5], [10, 9, 2.5, 6, 4]) = −0.7426106572325057:
            // Σdxdy = −7.4 − 2.7 + 0 − .3 − 4.6 = −15, Σdx² = 10, Σdy² = 40.8 → −15/√408
            close 1e-15 (TaskMetrics.Pearson([| 1.0; 2.0; 3.0; 4.0; 5.0 |], [| 10.0; 9.0; 2.5; 6.0; 4.0 |])) (-15.0 / sqrt 408.0) "SciPy docs"
            let rng = Random 13
            for trial in 1 .. 30 do
                let n = rng.Next(3, 100)
                let x = Array.init n (fun _ -> rng.NextDouble() * 5.0)
                let y = Array.init n (fun i -> x[i] + rng.NextDouble() * 3.0)
                let r = TaskMetrics.Pearson(x, y)
                let a, b = 0.1 + rng.NextDouble() * 10.0, rng.NextDouble() * 100.0 - 50.0
                close 1e-12 (TaskMetrics.Pearson(x |> Array.map (fun v -> a * v + b), y)) r $"trial {trial}: positive slope"
                close 1e-12 (TaskMetrics.Pearson(x |> Array.map (fun v -> -a * v + b), y)) -r $"trial {trial}: negative slope"
                close 1e-15 (TaskMetrics.Pearson(y, x)) r $"trial {trial}: symmetric"
                close 1e-12 (TaskMetrics.Pearson(x, x |> Array.map (fun v -> 3.0 * v - 1.0))) 1.0 $"trial {trial}: linear" }

        test "Spearman: ties by hand, SciPy's docs example, Pearson of average ranks, monotone invariance" {
            // x = 1 2 2 3 → ranks 1 2.5 2.5 4; y = 1 3 2 4 → ranks 1 3 2 4; both mean 2.5
            // Σdxdy = 2.25 + 0 + 0 + 2.25 = 4.5, Σdx² = 4.5, Σdy² = 5 → 4.5/√22.5 = √0.9
            close 1e-15 (TaskMetrics.Spearman([| 1.0; 2.0; 2.0; 3.0 |], [| 1.0; 3.0; 2.0; 4.0 |])) (sqrt 0.9) "ties by hand"
            // spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233: ranks of y are 1 2 3.5 5 3.5,
            // Σdxdy = 4 + 1 + 0 + 2 + 1 = 8, Σdx² = 10, Σdy² = 9.5 → 8/√95
            close 1e-15 (TaskMetrics.Spearman([| 1.0; 2.0; 3.0; 4.0; 5.0 |], [| 5.0; 6.0; 7.0; 8.0; 7.0 |])) (8.0 / sqrt 95.0) "SciPy docs"
            let rng = Random 17
            for trial in 1 .. 30 do
                let n = rng.Next(3, 80)
                // One decimal on a 0–5 scale, like STS-B scores: plenty of ties.
                let x = Array.init n (fun _ -> Math.Round(rng.NextDouble() * 5.0, 1))
                let y = Array.init n (fun i -> Math.Round(x[i] * 0.5 + rng.NextDouble() * 2.5, 1))
                x[0] <- 0.0; x[1] <- 5.0; y[0] <- 0.0; y[1] <- 5.0 // neither constant
                let rho = TaskMetrics.Spearman(x, y)
                close 1e-12 rho (TaskMetrics.Pearson(averageRanks x, averageRanks y)) $"trial {trial}: Pearson of ranks"
                close 1e-12 (TaskMetrics.Spearman(Array.map exp x, Array.map (fun v -> v * v * v) y)) rho $"trial {trial}: monotone"
            close 1e-15 (TaskMetrics.Spearman([| 1.0; 2.0; 3.0; 4.0 |], [| 1.0; 8.0; 27.0; 1000.0 |])) 1.0 "monotone but not linear" }

        test "correlations of a constant are undefined: NaN, as SciPy" {
            Expect.isTrue (Double.IsNaN(TaskMetrics.Pearson([| 0.1; 0.1; 0.1 |], [| 1.0; 2.0; 3.0 |]))) "Pearson, constant predictions"
            Expect.isTrue (Double.IsNaN(TaskMetrics.Pearson([| 1.0; 2.0; 3.0 |], [| 4.0; 4.0; 4.0 |]))) "Pearson, constant labels"
            Expect.isTrue (Double.IsNaN(TaskMetrics.Spearman([| 2.5; 2.5 |], [| 1.0; 2.0 |]))) "Spearman" }

        test "Compute: the official metrics of each task, in order, equal to the single functions" {
            let rng = Random 19
            for task in GlueTasks.All do
                let n = 64
                if task.IsRegression then
                    let p = Array.init n (fun _ -> rng.NextDouble() * 5.0)
                    let s = Array.init n (fun i -> Math.Clamp(p[i] + rng.NextDouble() - 0.5, 0.0, 5.0))
                    let result = TaskMetrics.Compute(task, p, s)
                    Expect.equal (List.ofSeq result.Keys) [ TaskMetric.Pearson; TaskMetric.Spearman ] "STS-B keys"
                    Expect.equal result[TaskMetric.Pearson] (TaskMetrics.Pearson(p, s)) "Pearson"
                    Expect.equal result[TaskMetric.Spearman] (TaskMetrics.Spearman(p, s)) "Spearman"
                else
                    let k = task.NumLabels
                    let p, l = Array.init n (fun _ -> rng.Next k), Array.init n (fun _ -> rng.Next k)
                    let result = TaskMetrics.Compute(task, p, l)
                    Expect.equal (List.ofSeq result.Keys) (List.ofSeq task.Metrics) $"{task}: keys in order"
                    for KeyValue(metric, value) in result do
                        let single =
                            match metric with
                            | TaskMetric.Accuracy -> TaskMetrics.Accuracy(p, l)
                            | TaskMetric.F1 -> TaskMetrics.F1(p, l)
                            | _ -> TaskMetrics.Matthews(p, l)
                        Expect.equal value single $"{task}: {metric}" }

        test "bad input: ArgumentException naming the argument" {
            let fails (paramName: string) fragments f =
                let e = throwsWith<ArgumentException> fragments f
                Expect.equal e.ParamName paramName $"ParamName of {e.Message}"
            fails "predictions" [ "predictions is empty" ] (fun () -> TaskMetrics.Accuracy([||], [||]) |> ignore)
            fails "labels" [ "labels has length 2 but predictions has length 3" ] (fun () -> TaskMetrics.Matthews([| 0; 1; 0 |], [| 0; 1 |]) |> ignore)
            fails "labels" [ "labels has length 1 but predictions has length 2" ] (fun () -> TaskMetrics.Spearman([| 0.0; 1.0 |], [| 0.0 |]) |> ignore)
            fails "labels" [ "labels[1] is 2"; "0 and 1 only" ] (fun () -> TaskMetrics.F1([| 0; 1 |], [| 0; 2 |]) |> ignore)
            fails "predictions" [ "predictions[0] is -1" ] (fun () -> TaskMetrics.F1([| -1; 1 |], [| 0; 1 |]) |> ignore)
            fails "predictions" [ "predictions[1] is NaN"; "finite" ] (fun () -> TaskMetrics.Pearson([| 0.0; nan |], [| 0.0; 1.0 |]) |> ignore)
            fails "labels" [ "labels[0] is Infinity"; "finite" ] (fun () -> TaskMetrics.Spearman([| 0.0; 1.0 |], [| infinity; 1.0 |]) |> ignore)
            fails "predictions" [ "at least two pairs" ] (fun () -> TaskMetrics.Pearson([| 1.0 |], [| 1.0 |]) |> ignore)
            fails "task" [ "STS-B is scored by regression" ] (fun () -> TaskMetrics.Compute(GlueTasks.STSB, [| 1 |], [| 1 |]) |> ignore)
            fails "task" [ "RTE is a classification task" ] (fun () -> TaskMetrics.Compute(GlueTasks.RTE, [| 1.0; 2.0 |], [| 1.0; 2.0 |]) |> ignore)
            fails "predictions" [ "predictions[1] is 3"; "MNLI has classes 0 to 2" ] (fun () -> TaskMetrics.Compute(GlueTasks.MNLI, [| 0; 3 |], [| 0; 1 |]) |> ignore)
            fails "labels" [ "labels[0] is -1"; "CoLA has classes 0 to 1" ] (fun () -> TaskMetrics.Compute(GlueTasks.CoLA, [| 0; 1 |], [| -1; 1 |]) |> ignore)
            fails "scores" [ "scores has length 1 but predictions has length 2" ] (fun () -> TaskMetrics.Compute(GlueTasks.STSB, [| 1.0; 2.0 |], [| 1.0 |]) |> ignore) }
    ]

[<Tests>]
let tests = testList "Data.Glue" [ taskTests; readerTests; writerTests; metricTests ]
