// MPOP Figure 2: reconstruction error against compression ratio of word-embedding matrices, (a) MPO against CP
// (the paper's CPD; here also Tucker and the truncated SVD), (b) MPO with n = 2, 3, 5, 7 cores. Writes the points as
// JSON lines, a README with one table per model, and the two panels per model (HTML, PNG where chromium is installed).
//   ./scripts/fsi scripts/mpop-figure2.fsx [CHECKPOINT_FOLDER ...] [--out DIR]
// Models: the bundled tiny models, the imported encoders under models/ when present (all-minilm-l6-v2,
// arctic-embed-xs), and every checkpoint folder given (e.g. a local bert-base-uncased, Hugging Face layout).
// Quick mode (MPO_QUICK=1, as CI runs it): the smallest bundled model (tiny-t5, 8100×128) only, two budgets, CP with
// 10 sweeps, into a temporary folder. The committed results/mpop-figure2 come from full mode with --out results/mpop-figure2.
// Table 2 (inference cost per method) is scripts/mpop-table2.fsx and `mpo-bench table2`.
#load "references.fsx"

open System.IO
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Plots
open Mpo.Experiments.Reports

let args = fsi.CommandLineArgs |> Array.tail |> List.ofArray
let rec parse (folders, out) = function
    | "--out" :: dir :: rest -> parse (folders, Some dir) rest
    | "--out" :: [] -> failwith "--out needs a folder"
    | a :: _ when a.StartsWith "--" -> failwithf "unknown option %s (usage: mpop-figure2.fsx [CHECKPOINT_FOLDER ...] [--out DIR])" a
    | folder :: rest -> parse (folders @ [ folder ], out) rest
    | [] -> folders, out
let given, out = parse ([], None) args

let models = Path.Combine(__SOURCE_DIRECTORY__, "..", "models")
let bundled = [ "tiny-bert"; "tiny-gpt2"; "tiny-t5" ] |> List.map (fun m -> Path.Combine(models, m))
let imported = [ "all-minilm-l6-v2"; "arctic-embed-xs" ] |> List.map (fun m -> Path.Combine(models, m)) |> List.filter Directory.Exists
for folder in given do
    if not (Directory.Exists folder) then failwithf "%s: no such checkpoint folder" folder
let folders = if References.quick then [ Path.Combine(models, "tiny-t5") ] else bundled @ imported @ given
let settings = if References.quick then EmbeddingStudy.quickSettings else EmbeddingStudy.fullSettings
let outDir = match out with Some d -> Directory.CreateDirectory(d).FullName | None -> References.outputFolder "mpop-figure2"

let clock = System.Diagnostics.Stopwatch.StartNew()
let points =
    [ for folder in folders do
        let e = EmbeddingStudy.load folder
        printfn "%s: %s [%d×%d]" e.Model e.Tensor e.Rows e.Cols
        let ps = EmbeddingStudy.run settings e
        e.Weight.Dispose()
        printfn "%s\n" (EmbeddingStudy.table ps)
        yield! ps ]
EmbeddingStudy.write (Path.Combine(outDir, "points.jsonl")) points

let figures model =
    let ps = points |> List.filter (fun p -> p.Model = model)
    [ for name, chart in [ "a-methods", EmbeddingStudyPlots.methods ps; "b-cores", EmbeddingStudyPlots.cores ps ] do
        let files = Export.save (Path.Combine(outDir, $"{model}-{name}.html")) 900 560 chart
        yield files |> List.tryFind (fun f -> f.EndsWith ".png") |> Option.defaultValue (List.head files) |> Path.GetFileName ]
let command =
    "./scripts/fsi scripts/mpop-figure2.fsx" + (given |> List.map (fun g -> " " + g) |> String.concat "")
    + (match out with Some d -> " --out " + d | None -> "") + (if References.quick then " (MPO_QUICK=1)" else "")
let readme = EmbeddingStudy.readme points command (Machine.describe ()) figures
Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(outDir, "README.md"), readme + "\n")
printfn "%d points from %d model(s) in %.0f s; wrote %s (points.jsonl, README.md, figures)" points.Length folders.Length clock.Elapsed.TotalSeconds outDir
