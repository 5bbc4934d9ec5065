/// Running a grid's trials on this machine: in this process one after another (notebooks, scripts, `mpo finetune`),
/// or in worker processes — each the same `mpo` program running one trial by its ID — at most one per core at a time.
/// Trials already finished in the store are skipped; a failed trial is recorded and the others go on; a run folder
/// left by an interrupted trial resumes where it stopped.
module Mpo.Experiments.Runs.Runner

open System
open System.Diagnostics
open System.IO
open System.Reflection
open Mpo.Training
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Terminal

/// What one run of a grid did.
type Summary =
    { /// Trials in the grid.
      Total: int
      /// Trials the store already had finished (not run again).
      Skipped: string list
      /// The records this run stored, in grid order.
      Records: Record list
      /// The failures of trials run in this process, by trial ID (to re-raise where a caller wants to stop on them).
      Errors: (string * exn) list }

    member s.Failed = s.Records |> List.filter (fun r -> r.Status = Failed)

/// Splits <c>trials</c> into those the store has finished and those to run. A store file that does not read stops
/// everything (naming the file): it may be a finished result, and running its trial again could replace it.
let plan (store: Store) (trials: (string * Trial) list) =
    let contents = store.Load()
    match contents.Corrupt with
    | (file, problem) :: _ -> raise (CorruptStoreException(file, problem))
    | [] -> ()
    let finished = contents.Finished
    trials |> List.partition (fun (id, _) -> finished.ContainsKey id)

/// "finished in 12.3 s: test accuracy 0.912 (trainable params: … || all params: … || trainable%: …)" or "FAILED: the error".
let describe (r: Record) =
    match r.Status with
    | Finished ->
        let test = r.Metrics |> Map.toList |> List.filter (fun (k, _) -> k.StartsWith "test." && k <> "test.invalid") |> List.truncate 3
        let shown = String.Join(", ", [ for k, v in test -> sprintf "%s %.4f" (k.Substring 5) v ])
        let counted =
            match r.Metrics.TryFind "trainable_parameters", r.Metrics.TryFind "parameters" with
            | Some t, Some a -> sprintf " (%O)" (Mpo.Tuning.ParameterCount(int64 t, int64 a))
            | _ -> ""
        sprintf "%s finished in %.1f s%s%s" r.TrialId r.WallSeconds (if shown = "" then "" else ": test " + shown) counted
    | Failed -> sprintf "%s FAILED after %.1f s: %s" r.TrialId r.WallSeconds (defaultArg r.Error "unknown error")

/// Progress reports of a training run, as a fraction of its updates and the loss.
let private trainingProgress (report: float -> string -> unit) =
    { new IProgress<TrainingProgress> with
        member _.Report p =
            match p.Event with
            | TrainingEvent.Step when p.TotalSteps > 0L -> report (float p.Step / float p.TotalSteps) (sprintf "step %d/%d, loss %.3f" p.Step p.TotalSteps p.Loss)
            | TrainingEvent.Evaluation ->
                let shown = String.Join(", ", [ for KeyValue(k, v) in p.Metrics -> sprintf "%s %.4f" k v ])
                report (float p.Step / float (max 1L p.TotalSteps)) (sprintf "step %d/%d, dev %s" p.Step p.TotalSteps shown)
            | _ -> () }

/// Runs the unfinished trials here, one after another, with a bar for the grid and one for the running trial.
let inProcess (title: string) (store: Store) (trials: (string * Trial) list) =
    let finished, pending = plan store trials
    let results =
        ProgressBar.board title pending.Length (fun board ->
            [ for id, trial in pending ->
                board.Started id
                let r, error = Execute.attempt store id trial Map.empty (trainingProgress (fun f text -> board.Progress(id, f, text)))
                board.Finished(id, describe r)
                r, error |> Option.map (fun e -> id, e) ])
    { Total = trials.Length; Skipped = List.map fst finished; Records = List.map fst results; Errors = List.choose snd results }

/// The marker a worker writes before each progress line on its standard output (when MPO_WORKER_PROGRESS is set).
let progressMarker = "@@mpo-progress "

/// A worker's progress reporter: marker lines on stdout for the parent, or plain evaluation lines for a person.
let workerProgress () =
    if Environment.GetEnvironmentVariable "MPO_WORKER_PROGRESS" = "1" then
        trainingProgress (fun fraction text ->
            Console.Out.WriteLine(sprintf "%s%s %s" progressMarker (fraction.ToString("R", Globalization.CultureInfo.InvariantCulture)) text)
            Console.Out.Flush())
    else
        { new IProgress<TrainingProgress> with
            member _.Report p =
                if p.Event = TrainingEvent.Evaluation then
                    printfn "  step %d/%d: dev %s" p.Step p.TotalSteps (String.Join(", ", [ for KeyValue(k, v) in p.Metrics -> sprintf "%s %.4f" k v ])) }

/// How to start this program again: the dotnet host and mpo.dll (also from a notebook or fsi, whose entry is not mpo).
let programCommand () =
    let dll = typeof<Summary>.Assembly.Location
    let host =
        match Environment.ProcessPath with
        | null -> "dotnet"
        | p when Path.GetFileNameWithoutExtension p = "dotnet" -> p
        | _ -> "dotnet"
    host, dll

/// Runs the unfinished trials in worker processes, at most <c>jobs</c> at once, each with an equal share of the cores
/// for torch. <c>specFile</c> is the spec the trials come from (each worker reads it and runs the trial with its ID).
let workers (title: string) (store: Store) (specFile: string) (jobs: int) (trials: (string * Trial) list) =
    let finished, pending = plan store trials
    let jobs = max 1 (min jobs pending.Length)
    let threads = max 1 (Environment.ProcessorCount / jobs)
    let host, dll = programCommand ()
    let logs = Path.Combine(store.Folder, "logs")
    Directory.CreateDirectory logs |> ignore
    let records =
        ProgressBar.board title pending.Length (fun board ->
            let one (id: string, _: Trial) =
                async {
                    board.Started id
                    let log = Path.Combine(logs, id + ".log")
                    let psi =
                        ProcessStartInfo(host, [ dll; "run"; Path.GetFullPath specFile; "--store"; store.Folder; "--trial"; id; "--threads"; string threads ],
                                         RedirectStandardOutput = true, RedirectStandardError = true)
                    psi.Environment.["MPO_WORKER_PROGRESS"] <- "1"
                    use writer = new StreamWriter(log, true)
                    let gate = obj ()
                    let write (line: string) = lock gate (fun () -> writer.WriteLine line; writer.Flush())
                    use p = new Process(StartInfo = psi)
                    p.OutputDataReceived.Add(fun e ->
                        match e.Data with
                        | null -> ()
                        | line when line.StartsWith progressMarker ->
                            let rest = line.Substring progressMarker.Length
                            let space = rest.IndexOf ' '
                            match Double.TryParse(rest.Substring(0, max 0 space), Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
                            | true, f -> board.Progress(id, f, rest.Substring(space + 1))
                            | _ -> write line
                        | line -> write line)
                    p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then write e.Data)
                    p.Start() |> ignore
                    p.BeginOutputReadLine()
                    p.BeginErrorReadLine()
                    do! p.WaitForExitAsync() |> Async.AwaitTask
                    p.WaitForExit()   // drains the output handlers
                    let record =
                        match (try store.TryRead id with :? CorruptStoreException -> None) with
                        | Some r -> r
                        | None ->
                            // the worker died before it could record anything (killed, out of memory)
                            let now = DateTimeOffset.Now
                            let r =
                                { TrialId = id; Status = Failed; Trial = Mpo.Experiments.Specs.TrialJson.writeTrial (snd (pending |> List.find (fun (i, _) -> i = id)))
                                  Seed = (snd (pending |> List.find (fun (i, _) -> i = id))).Seed; Code = Execute.codeVersion.Force()
                                  Metrics = Map.empty; Series = Map.empty; Labels = Map.empty; WallSeconds = 0.0; StartedAt = now; FinishedAt = now
                                  Host = Environment.MachineName
                                  Error = Some(sprintf "worker exited with code %d without a record; its output is in %s" p.ExitCode log) }
                            match store.Write r with
                            | Written -> r
                            | KeptFinished existing -> existing
                    board.Finished(id, describe record)
                    return record
                }
            pending |> List.map one |> fun c -> Async.Parallel(c, maxDegreeOfParallelism = jobs) |> Async.RunSynchronously |> List.ofArray)
    { Total = trials.Length; Skipped = List.map fst finished; Records = records; Errors = [] }
