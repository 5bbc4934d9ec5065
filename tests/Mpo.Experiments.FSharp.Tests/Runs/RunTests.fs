/// `mpo run` end to end on cheap real trials (tiny-bert, 2 updates on a small task): worker processes, a failing trial
/// recorded while the grid goes on, reruns that skip finished trials, and bad input named by field, line or path.
module Mpo.Experiments.Tests.Runs.RunTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open Mpo.Data
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Tests.Support

/// A spec of cheap trials on a written task: `seeds` × the task folders in `data`.
let cheapSpec (dir: string) (name: string) (seeds: int list) (data: string list) =
    let spec = Path.Combine(dir, name + ".json")
    let list (xs: string list) = "[" + String.Join(", ", xs) + "]"
    File.WriteAllText(
        spec,
        sprintf """{
  "name": "%s",
  "store": "%s",
  "trial": { "model": "tiny-bert", "task": "spam",
             "training": { "max_steps": 2, "batch_size": 4, "max_length": 16, "train_examples": 16 } },
  "grid": { "product": { "seed": %s, "data": %s } }
}"""
            name (Path.Combine(dir, name).Replace("\\", "/")) (list (seeds |> List.map string)) (list (data |> List.map (fun d -> "\"" + d + "\""))))
    spec, Store(Path.Combine(dir, name))

/// A task folder whose dev split is malformed: the trial that reads it fails.
let brokenTask (dir: string) =
    let folder = Path.Combine(dir, "broken")
    Directory.CreateDirectory folder |> ignore
    Mpo.Experiments.Tests.FineTuning.FineTuneTests.writeSeparableTask folder
    File.WriteAllText(Path.Combine(folder, "dev.tsv"), "id\ttext\tlabel\tdocument\n1\tsome text\tmaybe\t1\n")
    folder

let goodTask (dir: string) =
    let folder = Path.Combine(dir, "task")
    Directory.CreateDirectory folder |> ignore
    Mpo.Experiments.Tests.FineTuning.FineTuneTests.writeSeparableTask folder
    folder

let expectBad (run: Run) (fragments: string list) =
    Expect.equal run.Code 2 $"exit code 2; stdout: {run.Out}; stderr: {run.Err}"
    for f in fragments do Expect.stringContains run.Err f "the error names the problem"

[<Tests>]
let tests =
    testSequenced <| testList "Runs" [
        test "mpo run: trials in worker processes; a failing trial is recorded and the grid goes on; a rerun skips what is finished" {
            inTempDir (fun dir ->
                let good, broken = goodTask dir, brokenTask dir
                let spec, store = cheapSpec dir "grid" [ 1; 2 ] [ good; broken ]
                // whole grids of real trials: generous limits for a machine shared with other work
                let first = mpoWithin 600 [] dir [ "run"; spec; "--jobs"; "2" ]
                Expect.equal first.Code 1 $"a failed trial makes the exit code 1; {first.Out} {first.Err}"
                Expect.stringContains first.Out "4 trials: 4 run now (2 failed), 0 already finished" "summary"
                let records = store.LoadStrict()
                Expect.equal records.Count 4 "every trial has a record"
                let finished = records |> Map.filter (fun _ r -> r.Status = Finished)
                Expect.equal finished.Count 2 "the good task's two trials finished"
                for KeyValue(_, r) in finished do
                    Expect.equal r.Metrics.["steps"] 2.0 "two updates"
                    Expect.isTrue (r.Metrics.ContainsKey "test.accuracy") "test metrics"
                    Expect.equal (r.Trial.["data"].GetValue<string>()) good "the full configuration"
                    Expect.equal r.Code.Commit.Length 40 "a git commit"
                    Expect.equal r.Labels.["head"] "BertForSequenceClassification" "labels"
                    let threads = int r.Labels.["torch_threads"]
                    Expect.isTrue (threads >= 1 && threads <= Environment.ProcessorCount) $"the torch thread count it ran with ({threads})"
                for KeyValue(_, r) in records |> Map.filter (fun _ r -> r.Status = Failed) do
                    Expect.stringContains (defaultArg r.Error "") "dev.tsv" "the error is recorded, naming the file"
                let before = [ for KeyValue(id, _) in finished -> id, File.ReadAllText(store.RecordFile id) ]
                let second = mpoWithin 600 [] dir [ "run"; spec ]
                Expect.stringContains second.Out "4 trials: 2 run now (2 failed), 2 already finished" "only the failed trials run again"
                for id, text in before do Expect.equal (File.ReadAllText(store.RecordFile id)) text $"{id} untouched"
                let listed = mpo dir [ "run"; spec; "--list" ]
                Expect.equal listed.Code 0 listed.Err
                Expect.stringContains listed.Out "| finished" "--list shows the store's state")
        }

        test "bad input: a corrupted store entry, a missing model or data path, an unknown spec field, sbatch missing" {
            inTempDir (fun dir ->
                let good = goodTask dir
                let spec, store = cheapSpec dir "bad" [ 1 ] [ good ]
                let id = Mpo.Experiments.Specs.SpecJson.read spec |> Mpo.Experiments.Specs.SpecJson.trials |> List.exactlyOne |> fst
                Directory.CreateDirectory store.TrialsFolder |> ignore
                File.WriteAllText(store.RecordFile id, "not json")
                expectBad (mpo dir [ "run"; spec ]) [ store.RecordFile id; "left as it is" ]
                Expect.equal (File.ReadAllText(store.RecordFile id)) "not json" "the entry was not overwritten"
                expectBad (mpo dir [ "report"; store.Folder ]) [ store.RecordFile id ]
                File.Delete(store.RecordFile id)
                let missingData, _ = cheapSpec dir "nodata" [ 1 ] [ Path.Combine(dir, "nowhere") ]
                expectBad (mpo dir [ "run"; missingData ]) [ Path.Combine(dir, "nowhere"); "does not exist" ]
                let text = File.ReadAllText spec
                File.WriteAllText(spec, text.Replace("\"model\": \"tiny-bert\"", "\"model\": \"no-such-model\""))
                expectBad (mpo dir [ "run"; spec ]) [ "'no-such-model' is neither a bundled model" ]
                File.WriteAllText(spec, text.Replace("\"max_steps\": 2", "\"max_step\": 2"))
                expectBad (mpo dir [ "run"; spec ]) [ "line 5"; "field 'training.max_step' is unknown in training" ]
                File.WriteAllText(spec, text)
                let noSlurm = mpoWith [ "PATH", "/nonexistent" ] dir [ "run"; spec; "--slurm" ]
                expectBad noSlurm [ "sbatch was not found" ]
                expectBad (mpo dir [ "run"; spec; "--partition"; "gpu" ]) [ "--partition is an sbatch option" ]
                Expect.isFalse (Directory.Exists(Path.Combine(store.Folder, "runs"))) "nothing ran")
        }
    ]
