/// Tables and figures from store records: mean ± sample std over seeds against hand-computed values, CSV columns,
/// the Pareto front against a brute-force definition, every figure function on synthetic records carrying the fields
/// the later methods will log, and `mpo report` end to end.
module Mpo.Experiments.Tests.Reports.ReportTests

open System
open System.IO
open Expecto
open Plotly.NET
open Mpo.Experiments.Plots
open Mpo.Experiments.Reports
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Tests.Support

/// A synthetic finished record: a trial with this model, learning rate and seed; metrics and series as given.
let synthetic (model: string) (lr: float) (seed: int64) (metrics: (string * float) list) (series: (string * float list) list) =
    let trial = { Trial.create model "spam" with Seed = seed; Training = { Trial.defaultTraining with LearningRate = { Trial.defaultTraining.LearningRate with Peak = lr } } }
    { TrialId = TrialJson.id trial; Status = Finished; Trial = TrialJson.writeTrial trial; Seed = seed
      Code = { Commit = "0123456789abcdef0123456789abcdef01234567"; Dirty = false; Note = None }
      Metrics = Map.ofList metrics; Series = Map.ofList series; Labels = Map.empty; WallSeconds = 1.0
      StartedAt = DateTimeOffset(2026, 1, 1, 0, 0, int seed, TimeSpan.Zero); FinishedAt = DateTimeOffset(2026, 1, 1, 0, 1, 0, TimeSpan.Zero)
      Host = "test"; Error = None }

/// Two models × three seeds with accuracies whose mean and std are easy by hand, and the series the figures read.
let records =
    [ for model, accs, params in [ "tiny-bert", [ 0.8; 0.9; 1.0 ], 1000.0; "tiny-gpt2", [ 0.7; 0.7; 0.7 ], 10.0 ] do
        for seed, acc in List.zip [ 1L; 2L; 3L ] accs ->
            synthetic model 2e-4 seed
                [ "test.accuracy", acc; Keys.trainableParameters, params; Keys.compressionRatio, 0.1 * float seed; Keys.relativeError, 0.5 / float seed ]
                [ Keys.spectrum "encoder.layer.0.intermediate.dense" 1, [ 4.0; 2.0; 1.0 ]
                  Keys.spectrum "encoder.layer.0.intermediate.dense" 2, [ 3.0; 1.0 ]
                  Keys.entropy "encoder.layer.0.intermediate.dense", [ 0.9; 1.3; 0.8 ]
                  Keys.squeezeParameters, [ 1000.0; 800.0; 600.0 ]; Keys.squeezeMetric "dev.accuracy", [ 0.9; 0.88; 0.8 ]
                  Keys.expertLoad "encoder.layer.0", [ 0.4; 0.3; 0.2; 0.1 ] ] ]

let private html (chart: GenericChart) = GenericChart.toChartHTML chart

[<Tests>]
let tests =
    testList "Report" [
        test "mean ± sample standard deviation over seeds, grouped by the fields that vary" {
            let a = Report.aggregate [ 0.8; 0.9; 1.0 ]
            Expect.floatClose Accuracy.veryHigh a.Mean 0.9 "mean"
            Expect.floatClose Accuracy.veryHigh a.Std 0.1 "sample std: sqrt((0.01 + 0 + 0.01) / 2)"
            Expect.equal (Report.varying records) [ "model" ] "only the model varies (the seed is what is averaged)"
            let md = Report.markdown [ "model" ] [ "test.accuracy"; Keys.trainableParameters ] records
            Expect.stringContains md "| tiny-bert | 3 | 0.900 ± 0.100 |" "BERT's row: n = 3, mean ± std"
            Expect.stringContains md "| tiny-gpt2 | 3 | 0.700         |" "GPT-2's constant accuracy has no ± part"
            Expect.stringContains md "0123456789" "the row names its commit"
            let csv = Report.csv [ "model" ] [ "test.accuracy" ] records
            let lines = csv.TrimEnd().Split('\n')
            Expect.equal lines.[0] "model,n,test.accuracy.mean,test.accuracy.std,test.accuracy.n,code,trials" "header"
            Expect.stringStarts lines.[1] "tiny-bert,3,0.9" "values"
            Expect.stringContains lines.[1] records.[0].TrialId "the trials behind the row"
        }

        test "an object-valued field reads as its name and the key=value pairs that tell its records apart, not as JSON" {
            let withMethod (m: string) seed =
                let r = synthetic "tiny-t5" 2e-4 seed [ "test.accuracy", 0.5 ] []
                let trial = r.Trial.DeepClone().AsObject()
                trial.["method"] <- System.Text.Json.Nodes.JsonNode.Parse m
                { r with Trial = trial; TrialId = r.TrialId + m.GetHashCode().ToString() }
            let rs = [ withMethod "\"full\"" 1L; withMethod """{"name":"mpoe","experts":8}""" 1L
                       withMethod """{"name":"mpoe","experts":8,"share_central":false,"squeeze":{"loss_gap":0.03}}""" 2L ]
            Expect.equal [ for r in rs -> configValue r "method" ]
                [ Some "full"; Some "mpoe experts=8"; Some "mpoe experts=8 share_central=false squeeze.loss_gap=0.03" ] "labels"
            // rows and legends show, per method name, only the leaves that tell its records apart
            Expect.equal (Report.labelsAt "method" rs) [ "full"; "mpoe"; "mpoe share_central=false squeeze.loss_gap=0.03" ] "row labels"
            let md = Report.markdown [ "method" ] [ "test.accuracy" ] rs
            Expect.stringContains md "| mpoe share_central=false squeeze.loss_gap=0.03 | 1 |" "the row's key"
            Expect.isFalse (md.Contains "{") "no JSON in the table"
            Expect.isFalse (md.Contains "experts=8") "a leaf equal in every mpoe record is left out"
        }

        test "the Pareto front is exactly the points no other point beats (brute force over random points)" {
            let random = Random 11
            for _ in 1 .. 20 do
                let points = [ for i in 1 .. 15 -> string i, float (random.Next 10), float (random.Next 10) ]
                let dominated (x, y) = points |> List.exists (fun (_, x2, y2) -> x2 <= x && y2 >= y && (x2, y2) <> (x, y))
                let expected = points |> List.filter (fun (_, x, y) -> not (dominated (x, y))) |> Set.ofList
                Expect.equal (Figures.paretoFront points |> Set.ofList) expected "non-dominated set"
                // lower is better (perplexity): the front of the mirrored metric
                let loweredDominated (x, y) = points |> List.exists (fun (_, x2, y2) -> x2 <= x && y2 <= y && (x2, y2) <> (x, y))
                let lowered = points |> List.filter (fun (_, x, y) -> not (loweredDominated (x, y))) |> Set.ofList
                Expect.equal (Figures.paretoFrontBy false points |> Set.ofList) lowered "non-dominated set, lower is better"
        }

        test "every figure function draws the fields a record logged, and nothing for records without them" {
            let front = RecordPlots.accuracyVsParameters "test.accuracy" [ "model" ] records |> Option.get |> html
            Expect.stringContains front "Pareto front" "the front is drawn"
            Expect.stringContains front "tiny-gpt2" "a point per group"
            let r = records.Head
            Expect.equal (RecordPlots.spectrumMatrices r) [ "encoder.layer.0.intermediate.dense" ] "the matrices with spectra"
            Expect.stringContains (RecordPlots.spectra r "encoder.layer.0.intermediate.dense" |> Option.get |> html) "bond2" "one line per bond"
            Expect.stringContains (RecordPlots.entropy [ r ] |> Option.get |> html) "encoder.layer.0.intermediate.dense" "entropy per matrix"
            Expect.stringContains (RecordPlots.squeezing "dev.accuracy" [ r ] |> Option.get |> html) "0.88" "the trajectory's values"
            Expect.stringContains (RecordPlots.expertLoad r |> Option.get |> html) "expert 3" "one column per expert"
            // an ablation axis: mean ± std per value of a numeric field; none for a field that is not numeric
            let sweep = [ for lr, accs in [ 1e-4, [ 0.5; 0.7 ]; 4e-4, [ 0.9; 0.9 ] ] do
                            for seed, acc in List.zip [ 1L; 2L ] accs -> synthetic "tiny-bert" lr seed [ "test.accuracy", acc ] [] ]
            let swept = RecordPlots.metricVsField "test.accuracy" "training.learning_rate.peak" sweep |> Option.get |> html
            Expect.stringContains swept "0.6" "the mean at lr 1e-4"
            Expect.stringContains swept "0.1414213562" "its sample std as the error bar"
            Expect.isNone (RecordPlots.metricVsField "test.accuracy" "model" records) "model names are no axis"
            Expect.isSome (RecordPlots.errorVsCompression [ "model" ] records) "error vs ρ"
            let bare = synthetic "tiny-bert" 1e-4 1L [ "test.accuracy", 0.5 ] []
            Expect.isNone (RecordPlots.spectra bare "x") "no spectra logged"
            Expect.isNone (RecordPlots.entropy [ bare ]) "no entropy logged"
            Expect.isNone (RecordPlots.squeezing "dev.accuracy" [ bare ]) "no squeezing logged"
            Expect.isNone (RecordPlots.expertLoad bare) "no experts"
            Expect.isNone (RecordPlots.accuracyVsParameters "test.accuracy" [] [ bare ]) "no trained-parameter count"
        }

        test "mpo report: the table, CSV and figures from a store; a metric nobody has is named" {
            inTempDir (fun dir ->
                let store = Store(Path.Combine(dir, "store"))
                // series on one record only: each figure is a Chromium render, seconds each
                for r in records do store.Write (if r = records.Head then r else { r with Series = Map.empty }) |> ignore
                store.Write { (synthetic "tiny-t5" 2e-4 1L [] []) with Status = Failed; Error = Some "ArgumentException: broken" } |> ignore
                let out = Path.Combine(dir, "report")
                let run = mpo dir [ "report"; store.Folder; "--by"; "model"; "--out"; out ]
                Expect.equal run.Code 0 run.Err
                Expect.stringContains run.Out "6 finished trials, 1 failed" "counts"
                Expect.stringContains run.Out "0.900 ± 0.100" "mean ± std"
                Expect.stringContains run.Out "ArgumentException: broken" "failures listed with their error"
                for f in [ "table.md"; "table.csv"; "accuracy-vs-parameters.html"; "error-vs-compression.html"; "entropy.html"; "squeezing.html" ] do
                    Expect.isTrue (File.Exists(Path.Combine(out, f))) $"{f} written"
                Expect.isNonEmpty (Directory.GetFiles(out, "expert-load-*.html")) "expert load figures"
                let csv = mpo dir [ "report"; store.Folder; "--format"; "csv"; "--metrics"; "test.accuracy" ]
                Expect.stringStarts csv.Out "model,n,test.accuracy.mean" "CSV on stdout"
                let bad = mpo dir [ "report"; store.Folder; "--metrics"; "test.acuracy" ]
                Expect.equal bad.Code 2 bad.Err
                Expect.stringContains bad.Err "no finished trial has metric 'test.acuracy'" "names the metric"
                let missing = mpo dir [ "report"; Path.Combine(dir, "nowhere") ]
                Expect.equal missing.Code 2 missing.Err
                Expect.stringContains missing.Err "is not a result store" "names the folder")
        }
    ]
