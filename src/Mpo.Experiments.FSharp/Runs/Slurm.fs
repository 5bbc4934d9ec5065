/// Beyond one machine: a grid's unfinished trials as one Slurm job array (`sbatch --array=0-(n-1)%throttle`), each
/// task running this same `mpo` program on its trial ID against the store on the shared filesystem. Rerunning
/// submits what is neither finished nor still queued or running, so a cancelled task is submitted again and nothing
/// finished is redone.
module Mpo.Experiments.Runs.Slurm

open System
open System.ComponentModel
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open Mpo.Checkpoints
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Store.ResultStore

/// What sbatch is asked for besides the array.
type Options =
    { Partition: string option
      /// Wall-clock limit per task, in Slurm's syntax ("30", "2:00:00", "1-00:00:00").
      Time: string option
      Gpus: int option
      /// Tasks of the array running at once (the `%` of --array); None: all.
      Throttle: int option
      CpusPerTask: int option }

let defaults = { Partition = None; Time = None; Gpus = None; Throttle = None; CpusPerTask = None }

/// A Slurm command that is missing or refused: the message names the command and repeats what it said.
type SlurmException(message: string) =
    inherit Exception(message)

/// Runs a Slurm client command; returns (exit code, stdout, stderr). A command that is not installed is a
/// SlurmException naming it.
let command (name: string) (args: string list) =
    let psi = ProcessStartInfo(name, args, RedirectStandardOutput = true, RedirectStandardError = true)
    let p =
        try Process.Start psi
        with :? Win32Exception as e ->
            raise (SlurmException(sprintf "%s was not found (%s): running on Slurm needs its client commands (sbatch, squeue) on PATH" name e.Message))
    use p = p
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.WaitForExit()
    p.ExitCode, out.Result, err.Result

/// One submitted array: its job ID and the trial each task index runs.
type Submission =
    { JobId: string
      Trials: string list
      Submitted: DateTimeOffset
      Script: string }

let folder (store: Store) = Path.Combine(store.Folder, "slurm")
let private submissionsFile (store: Store) = Path.Combine(folder store, "submissions.json")

/// Every array submitted for this store, oldest first.
let submissions (store: Store) =
    let file = submissionsFile store
    if not (File.Exists file) then []
    else
        let doc =
            try JsonNode.Parse(File.ReadAllText file).AsArray()
            with e -> raise (CorruptStoreException(file, e.Message))
        [ for s in doc ->
            { JobId = s.["job_id"].GetValue<string>()
              Trials = [ for t in s.["trials"].AsArray() -> t.GetValue<string>() ]
              Submitted = DateTimeOffset.Parse(s.["submitted"].GetValue<string>(), Globalization.CultureInfo.InvariantCulture)
              Script = s.["script"].GetValue<string>() } ]

let private saveSubmissions (store: Store) (all: Submission list) =
    let array =
        JsonArray(
            [| for s in all ->
                 let o = JsonObject()
                 o.["job_id"] <- s.JobId
                 o.["trials"] <- JsonArray([| for t in s.Trials -> JsonValue.Create t :> JsonNode |])
                 o.["submitted"] <- s.Submitted.ToString "O"
                 o.["script"] <- s.Script
                 o :> JsonNode |])
    AtomicFile.WriteAllText(submissionsFile store, array.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)) + "\n")

/// The queue's state of every task of this store's arrays still known to squeue, by trial ID ("PENDING", "RUNNING").
let queued (store: Store) =
    let subs = submissions store
    if subs.IsEmpty then Map.empty
    else
        let code, out, err = command "squeue" [ "-h"; "-r"; "-o"; "%i|%T" ]
        if code <> 0 then raise (SlurmException(sprintf "squeue failed (exit %d): %s" code (err.Trim())))
        let byJob = subs |> List.map (fun s -> s.JobId, s) |> Map.ofList
        [ for line in out.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
            match line.Trim().Split '|' with
            | [| task; state |] ->
                match task.Split '_' with
                | [| job; index |] ->
                    match Map.tryFind job byJob, Int32.TryParse index with
                    | Some s, (true, i) when i < s.Trials.Length -> yield s.Trials.[i], state
                    | _ -> ()
                | _ -> ()
            | _ -> () ]
        |> Map.ofList

/// Single-quoted for bash.
let private quote (s: string) = "'" + s.Replace("'", "'\\''") + "'"

/// The job script: array task i runs the i-th line's trial of <c>trialsFile</c>.
let script (name: string) (options: Options) (count: int) (trialsFile: string) (specFile: string) (store: Store) =
    let host, dll = Runner.programCommand ()
    let throttle = defaultArg options.Throttle count
    let logs = Path.Combine(folder store, "logs")
    String.Join(
        "\n",
        [ yield "#!/bin/bash"
          yield sprintf "#SBATCH --job-name=mpo-%s" name
          yield sprintf "#SBATCH --array=0-%d%%%d" (count - 1) throttle
          yield sprintf "#SBATCH --output=%s" (Path.Combine(logs, "%A_%a.out"))
          yield sprintf "#SBATCH --chdir=%s" (Directory.GetCurrentDirectory())
          match options.Partition with Some p -> yield sprintf "#SBATCH --partition=%s" p | None -> ()
          match options.Time with Some t -> yield sprintf "#SBATCH --time=%s" t | None -> ()
          match options.Gpus with Some g -> yield sprintf "#SBATCH --gpus=%d" g | None -> ()
          match options.CpusPerTask with Some c -> yield sprintf "#SBATCH --cpus-per-task=%d" c | None -> ()
          yield "# one trial per array task: the same mpo program, the trial named by its ID (see mpo run --help)"
          yield "set -euo pipefail"
          yield sprintf "trial=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" %s)" (quote trialsFile)
          // torch gets the task's CPUs, not the node's: oversubscribed threads spin and slow every task down
          yield sprintf "exec %s %s run %s --store %s --trial \"$trial\" --threads \"${SLURM_CPUS_PER_TASK:-1}\""
                    (quote host) (quote dll) (quote (Path.GetFullPath specFile)) (quote store.Folder)
          yield "" ])

/// What submitting did.
type Submitted =
    { Submission: Submission option
      /// Trials the store has finished.
      Finished: string list
      /// Trials still queued or running from an earlier submission.
      Queued: string list }

/// Submits the trials that are neither finished nor queued as one array. <c>name</c> names the job.
let submit (name: string) (store: Store) (specFile: string) (options: Options) (trials: (string * Trial) list) =
    let finished, unfinished = Runner.plan store trials
    let queue = queued store
    let waiting, pending = unfinished |> List.partition (fun (id, _) -> queue.ContainsKey id)
    let result = { Submission = None; Finished = List.map fst finished; Queued = List.map fst waiting }
    if pending.IsEmpty then result
    else
        let slurm = folder store
        Directory.CreateDirectory(Path.Combine(slurm, "logs")) |> ignore
        let stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff")
        let trialsFile = Path.Combine(slurm, sprintf "array-%s.trials" stamp)
        AtomicFile.WriteAllText(trialsFile, String.Join("\n", pending |> List.map fst) + "\n")
        let scriptFile = Path.Combine(slurm, sprintf "array-%s.sh" stamp)
        AtomicFile.WriteAllText(scriptFile, script name options pending.Length trialsFile specFile store)
        let code, out, err = command "sbatch" [ "--parsable"; scriptFile ]
        if code <> 0 then
            raise (SlurmException(sprintf "sbatch refused the job (exit %d) for %s: %s" code scriptFile (err.Trim())))
        let jobId = out.Trim().Split(';').[0]
        if jobId = "" || not (Seq.forall Char.IsDigit jobId) then
            raise (SlurmException(sprintf "sbatch printed no job ID for %s (stdout: '%s', stderr: '%s')" scriptFile (out.Trim()) (err.Trim())))
        let submission = { JobId = jobId; Trials = List.map fst pending; Submitted = DateTimeOffset.Now; Script = scriptFile }
        saveSubmissions store (submissions store @ [ submission ])
        { result with Submission = Some submission }

/// One line of `mpo run --status`.
type TrialState =
    { Trial: string
      /// "<job>_<task>" of the latest submission that ran or runs it.
      Task: string option
      /// finished, failed, PENDING, RUNNING, …, "not queued" or "not submitted".
      State: string
      Detail: string }

/// The state of every trial: the store's record, else the queue's, else whether it was ever submitted.
let status (store: Store) (trials: (string * Trial) list) =
    let contents = store.Load()
    let subs = submissions store
    let queue = if subs.IsEmpty then Map.empty else queued store
    let taskOf id =
        subs |> List.rev |> List.tryPick (fun s -> s.Trials |> List.tryFindIndex ((=) id) |> Option.map (fun i -> sprintf "%s_%d" s.JobId i))
    [ for id, _ in trials ->
        let task = taskOf id
        match Map.tryFind id contents.Records, Map.tryFind id queue with
        | Some r, _ when r.Status = Finished -> { Trial = id; Task = task; State = "finished"; Detail = Runner.describe r }
        | _, Some state -> { Trial = id; Task = task; State = state; Detail = "" }
        | Some r, None -> { Trial = id; Task = task; State = "failed"; Detail = defaultArg r.Error "" }
        | None, None when task.IsSome -> { Trial = id; Task = task; State = "not queued"; Detail = "cancelled or lost: `mpo run --slurm` submits it again" }
        | None, None -> { Trial = id; Task = None; State = "not submitted"; Detail = "" } ],
    contents.Corrupt
