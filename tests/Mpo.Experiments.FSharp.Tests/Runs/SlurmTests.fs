/// `mpo run --slurm` against a real single-node Slurm started here: a 4-trial grid completes through one sbatch
/// array; a task cancelled with scancel is submitted again by rerunning, and nothing finished is redone; sbatch
/// refusing the job is reported naming the command. Skipped, saying why, where Slurm is not installed.
module Mpo.Experiments.Tests.Runs.SlurmTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Tests.Support
open Mpo.Experiments.Tests.Runs.RunTests

/// Waits until <c>check</c> holds, for at most <c>seconds</c>.
let private waitFor (seconds: float) (what: string) (check: unit -> bool) =
    let clock = Stopwatch.StartNew()
    while not (check ()) do
        if clock.Elapsed.TotalSeconds > seconds then failtestf "timed out after %.0f s waiting for %s" seconds what
        Thread.Sleep 500

let private queueEmpty (cluster: LocalSlurm.Cluster) () =
    let _, out = cluster.Command "squeue" [ "-h" ]
    out.Trim() = ""

[<Tests>]
let tests =
    testSequenced <| testList "Slurm" [
        match LocalSlurm.unavailable () with
        // skiptest inside the test: raised while the list is built, it would stop the whole assembly's discovery
        | Some why -> yield test "mpo run --slurm on a local cluster" { skiptest $"skipped: {why}" }
        | None ->
            yield test "mpo run --slurm on a local cluster: one array for the grid, a cancelled task submitted again, nothing finished redone" {
                inTempDir (fun dir ->
                    use cluster = LocalSlurm.start ()
                    let spec, store = cheapSpec dir "slurm" [ 1; 2; 3; 4 ] [ goodTask dir ]
                    let run args = mpoWith cluster.Env dir ("run" :: spec :: args)
                    // two at a time, so the last task is still pending when it is cancelled
                    let submitted = run [ "--slurm"; "--throttle"; "2" ]
                    Expect.equal submitted.Code 0 $"submitted; {submitted.Out} {submitted.Err}"
                    Expect.stringContains submitted.Out "an array of 4 tasks" "one array for the four trials"
                    let job = submitted.Out.Split(' ').[2].TrimEnd(':')
                    let code, cancelled = cluster.Command "scancel" [ $"{job}_3" ]
                    Expect.equal code 0 $"scancel {job}_3: {cancelled}"
                    waitFor 400.0 "the array to leave the queue" (queueEmpty cluster)
                    let afterFirst = store.LoadStrict()
                    Expect.equal afterFirst.Count 3 "three tasks ran and recorded their trials"
                    for KeyValue(_, r) in afterFirst do
                        Expect.equal r.Status Finished (defaultArg r.Error "")
                        Expect.stringStarts r.Labels.["slurm_job"] (job + "_") "the record names its array task"
                    let status = run [ "--status" ]
                    Expect.equal status.Code 0 status.Err
                    Expect.stringContains status.Out "3 finished, 1 not queued" "--status: three finished, the cancelled one not queued"
                    let kept = [ for KeyValue(id, _) in afterFirst -> id, File.ReadAllText(store.RecordFile id) ]
                    let again = run [ "--slurm" ]
                    Expect.equal again.Code 0 again.Err
                    Expect.stringContains again.Out "an array of 1 tasks (3 trials finished, 0 still queued)" "only the cancelled trial is submitted"
                    waitFor 300.0 "the second array" (queueEmpty cluster)
                    let all = store.LoadStrict()
                    Expect.equal (all |> Map.filter (fun _ r -> r.Status = Finished)).Count 4 "the grid is complete"
                    for id, text in kept do Expect.equal (File.ReadAllText(store.RecordFile id)) text $"{id} was not redone"
                    let nothing = run [ "--slurm" ]
                    Expect.stringContains nothing.Out "nothing to submit: 4 trials finished" "a complete grid submits nothing"
                    // sbatch refusing the job: an unknown partition
                    let other, _ = cheapSpec dir "refused" [ 9 ] [ goodTask dir ]
                    let refused = mpoWith cluster.Env dir [ "run"; other; "--slurm"; "--partition"; "no-such-partition" ]
                    Expect.equal refused.Code 2 refused.Err
                    Expect.stringContains refused.Err "sbatch refused the job" "names the command"
                    Expect.stringContains refused.Err "partition" "and repeats what sbatch said")
            }
    ]
