/// The result store: one JSON file per trial, keyed by trial ID, with the code version that made it, the trial's full
/// configuration, its seed, metrics and wall time, so every table traces back to how it was made.
///
/// Why one file per trial, written atomically (temporary name, then rename), rather than an append-only log: array
/// tasks finish in any order on any node of a shared filesystem, and a rename within one folder is atomic there
/// (POSIX and NFS alike), so a reader sees a whole record or none, and writers of different trials never touch the same
/// file. A log would need every writer to hold one lock across nodes and a torn last line would need repair. The only
/// shared decision — may this record replace the one already there? — is taken under a per-trial lock file, and the
/// rule keeps finished results: a finished record is never replaced, a failed one is replaced by any later attempt,
/// and a file that does not read as a record is never overwritten (it is reported, naming the file).
module Mpo.Experiments.Store.ResultStore

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open Mpo.Checkpoints

/// The code a record was made with: a git commit and whether the work tree had uncommitted changes; or a note saying
/// where the numbers come from when they were not made by this store's runner.
type CodeVersion =
    { Commit: string
      Dirty: bool
      Note: string option }

type Status =
    | Finished
    | Failed

/// One trial's result.
type Record =
    { TrialId: string
      Status: Status
      /// The trial's canonical configuration (every default filled in), as its ID hashes it.
      Trial: JsonObject
      Seed: int64
      Code: CodeVersion
      /// Scalar results, by name ("test.accuracy", "trainable_parameters", "train_seconds").
      Metrics: Map<string, float>
      /// Sequences, by name ("spectrum/<matrix>/bond2", "expert_load/<layer>", "squeeze/parameters").
      Series: Map<string, float list>
      /// Words ("head": the classification head, "slurm_job": the array task).
      Labels: Map<string, string>
      WallSeconds: float
      StartedAt: DateTimeOffset
      FinishedAt: DateTimeOffset
      Host: string
      /// Why a failed trial failed (exception type and message).
      Error: string option }

/// A store file that does not read as a record; it is left where it is.
type CorruptStoreException(file: string, problem: string) =
    inherit IOException(sprintf "store entry %s is not a readable trial record (%s); it was left as it is: repair or remove it to run that trial again" file problem)
    member _.File = file
    member _.Problem = problem

let formatTag = "mpo-trial-record/1"

/// The names under which trials log what the figures read: one convention for the methods that write them and the
/// figure functions that plot them (Plots/RecordPlots).
module Keys =
    /// Metric: parameters the method trains.
    let trainableParameters = "trainable_parameters"
    /// Metric: compression ratio ρ = parameters of the compressed matrices / dense (MPOP §3.6).
    let compressionRatio = "compression_ratio"
    /// Metric: relative reconstruction error ‖W − W′‖_F / ‖W‖_F.
    let relativeError = "relative_error"
    /// Series: the Schmidt values λ of bond b of a matrix (its name as the model names it).
    let spectrum (matrix: string) (bond: int) = sprintf "spectrum/%s/bond%d" matrix bond
    /// Series: the entanglement entropy of each bond of a matrix.
    let entropy (matrix: string) = sprintf "entropy/%s" matrix
    /// Series: before squeezing and after each squeeze, the model's parameters (all of them, peft's count), and a metric (e.g. "dev.accuracy").
    let squeezeParameters = "squeeze/parameters"
    let squeezeMetric (metric: string) = "squeeze/" + metric
    /// Series: the fraction of tokens each expert of a MoE layer received.
    let expertLoad (layer: string) = sprintf "expert_load/%s" layer

let private git (root: string) (args: string list) =
    try
        let psi = ProcessStartInfo("git", "-C" :: root :: args, RedirectStandardOutput = true, RedirectStandardError = true)
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        p.StandardError.ReadToEnd() |> ignore
        p.WaitForExit()
        if p.ExitCode = 0 then Some(out.Trim()) else None
    with _ -> None

/// The commit of the repository holding <c>root</c>, and whether tracked files differ from it.
let codeVersionOf (root: string) =
    match git root [ "rev-parse"; "HEAD" ] with
    | Some commit ->
        let dirty = git root [ "status"; "--porcelain"; "--untracked-files=no" ] |> Option.map (fun s -> s <> "") |> Option.defaultValue true
        { Commit = commit; Dirty = dirty; Note = None }
    | None -> { Commit = "unknown"; Dirty = true; Note = Some(sprintf "no git repository at %s" root) }

// ---- JSON ---------------------------------------------------------------------------------------------------------

let private options = JsonSerializerOptions(WriteIndented = true)

let toJson (r: Record) : JsonObject =
    let o = JsonObject()
    o.["format"] <- formatTag
    o.["trial_id"] <- r.TrialId
    o.["status"] <- (match r.Status with Finished -> "finished" | Failed -> "failed")
    o.["trial"] <- r.Trial.DeepClone()
    o.["seed"] <- r.Seed
    let code = JsonObject()
    code.["commit"] <- r.Code.Commit
    code.["dirty"] <- r.Code.Dirty
    code.["note"] <- (match r.Code.Note with Some n -> JsonValue.Create n :> JsonNode | None -> null)
    o.["code"] <- code
    let metrics = JsonObject()
    for KeyValue(k, v) in r.Metrics do
        if Double.IsFinite v then metrics.[k] <- v   // NaN/∞ are not JSON: an unmeasurable value is left out
    o.["metrics"] <- metrics
    let series = JsonObject()
    for KeyValue(k, v) in r.Series do
        series.[k] <- JsonArray([| for x in v -> (if Double.IsFinite x then JsonValue.Create x :> JsonNode else null) |])
    o.["series"] <- series
    let labels = JsonObject()
    for KeyValue(k, v) in r.Labels do labels.[k] <- v
    o.["labels"] <- labels
    o.["wall_seconds"] <- r.WallSeconds
    o.["started_at"] <- r.StartedAt.ToString "O"
    o.["finished_at"] <- r.FinishedAt.ToString "O"
    o.["host"] <- r.Host
    o.["error"] <- (match r.Error with Some e -> JsonValue.Create e :> JsonNode | None -> null)
    o

/// Reads a record; any deviation from the format is an exception whose message says what.
let ofJson (node: JsonNode) =
    let o = match node with :? JsonObject as o -> o | _ -> failwith "not a JSON object"
    let field (k: string) = match o.[k] with null -> failwithf "no '%s'" k | v -> v
    if (field "format").GetValue<string>() <> formatTag then failwithf "format is not %s" formatTag
    let code = field "code" :?> JsonObject
    let obj (k: string) = match field k with :? JsonObject as x -> x | _ -> failwithf "'%s' is not an object" k
    { TrialId = (field "trial_id").GetValue<string>()
      Status =
        match (field "status").GetValue<string>() with
        | "finished" -> Finished
        | "failed" -> Failed
        | s -> failwithf "status '%s' is neither finished nor failed" s
      Trial = (obj "trial").DeepClone().AsObject()
      Seed = (field "seed").GetValue<int64>()
      Code =
        { Commit = code.["commit"].GetValue<string>()
          Dirty = code.["dirty"].GetValue<bool>()
          Note = (match code.["note"] with null -> None | n -> Some(n.GetValue<string>())) }
      Metrics = obj "metrics" |> Seq.map (fun (KeyValue(k, v)) -> k, v.GetValue<double>()) |> Map.ofSeq
      Series =
        obj "series"
        |> Seq.map (fun (KeyValue(k, v)) -> k, [ for x in v.AsArray() -> (match x with null -> nan | x -> x.GetValue<double>()) ])
        |> Map.ofSeq
      Labels = obj "labels" |> Seq.map (fun (KeyValue(k, v)) -> k, v.GetValue<string>()) |> Map.ofSeq
      WallSeconds = (field "wall_seconds").GetValue<double>()
      StartedAt = DateTimeOffset.Parse((field "started_at").GetValue<string>(), Globalization.CultureInfo.InvariantCulture)
      FinishedAt = DateTimeOffset.Parse((field "finished_at").GetValue<string>(), Globalization.CultureInfo.InvariantCulture)
      Host = (field "host").GetValue<string>()
      Error = (match o.["error"] with null -> None | e -> Some(e.GetValue<string>())) }

/// A value of the trial's configuration by dotted path ("training.learning_rate.peak"), as text; None when absent.
/// An object-valued configuration field as its "name" (if a string) and its other leaves as (dotted key, value text).
let valueParts (o: JsonObject) =
    let leaf (n: JsonNode) =
        match n with
        | null -> "null"
        | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> v.GetValue<string>()
        | n -> n.ToJsonString()
    let rec pairs (prefix: string) (o: JsonObject) =
        [ for KeyValue(k, v) in o do
            let key = if prefix = "" then k else prefix + "." + k
            match v with
            | :? JsonObject as inner -> yield! pairs key inner
            | v -> yield key, leaf v ]
    let name = match o.["name"] with | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> Some(v.GetValue<string>()) | _ -> None
    name, pairs "" o |> List.filter (fun (k, _) -> not (k = "name" && name.IsSome))

/// A configuration value as a table cell or legend label: strings bare, and an object as its "name" followed by its
/// other leaves as dotted key=value pairs ("mpoe experts=8 share_central=false"), not as JSON text.
let valueLabel (node: JsonNode) =
    match node with
    | null -> "null"
    | :? JsonObject as o ->
        let name, rest = valueParts o
        String.Join(" ", Option.toList name @ [ for k, v in rest -> k + "=" + v ])
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> v.GetValue<string>()
    | n -> n.ToJsonString()

/// The configuration node at a dotted path of a record's trial.
let configNode (r: Record) (path: string) =
    let rec go (node: JsonNode) (parts: string list) =
        match node, parts with
        | null, _ -> None
        | n, [] -> Some n
        | (:? JsonObject as o), p :: rest -> go o.[p] rest
        | _ -> None
    go r.Trial (List.ofArray (path.Split '.'))

let configValue (r: Record) (path: string) = configNode r path |> Option.map valueLabel

// ---- the store ----------------------------------------------------------------------------------------------------

/// What writing a record did.
type WriteOutcome =
    | Written
    /// A finished record of the trial was already there and was kept.
    | KeptFinished of existing: Record

/// What a store holds: the records that read, and the files that do not (never dropped silently).
type Contents =
    { Records: Map<string, Record>
      Corrupt: (string * string) list }

    member c.Finished = c.Records |> Map.filter (fun _ r -> r.Status = Finished)

/// A store folder: trials/<id>.json (the records), runs/<id>/ (each trial's resumable run folder, unless
/// <c>runFolder</c> names it otherwise).
type Store(folder: string, ?runFolder: string -> string) =
    let folder = Path.GetFullPath folder
    let trials = Path.Combine(folder, "trials")
    let runFolder = defaultArg runFolder (fun id -> Path.Combine(folder, "runs", id))

    member _.Folder = folder
    member _.TrialsFolder = trials
    member _.RecordFile(id: string) = Path.Combine(trials, id + ".json")
    member _.RunFolder(id: string) = runFolder id

    /// The record of one trial; None when there is none. A file that does not read raises CorruptStoreException.
    member s.TryRead(id: string) =
        let file = s.RecordFile id
        if not (File.Exists file) then None
        else
            let record =
                try ofJson (JsonNode.Parse(File.ReadAllText file))
                with e -> raise (CorruptStoreException(file, e.Message))
            if record.TrialId <> id then raise (CorruptStoreException(file, sprintf "it holds trial %s" record.TrialId))
            Some record

    /// Every record; unreadable files are listed, not skipped.
    member s.Load() =
        if not (Directory.Exists trials) then { Records = Map.empty; Corrupt = [] }
        else
            let files = Directory.GetFiles(trials, "*.json") |> Array.filter (fun f -> not (Path.GetFileName(f).StartsWith ".")) |> Array.sort
            let read =
                [ for f in files ->
                    let id = Path.GetFileNameWithoutExtension f
                    try Choice1Of2(s.TryRead(id).Value) with :? CorruptStoreException as e -> Choice2Of2(f, e.Problem) ]
            { Records = read |> List.choose (function Choice1Of2 r -> Some(r.TrialId, r) | _ -> None) |> Map.ofList
              Corrupt = read |> List.choose (function Choice2Of2 c -> Some c | _ -> None) }

    /// Every record, failing with the first unreadable file's name when there is one.
    member s.LoadStrict() =
        let c = s.Load()
        match c.Corrupt with
        | (file, problem) :: rest ->
            let more = if rest.IsEmpty then "" else sprintf "; %d more unreadable: %s" rest.Length (String.Join(", ", rest |> List.map fst))
            raise (CorruptStoreException(file, problem + more))
        | [] -> c.Records

    /// Writes <c>record</c> under a per-trial lock: a finished record already there is kept; a failed one is replaced.
    member s.Write(record: Record) =
        Directory.CreateDirectory trials |> ignore
        let lockFile = Path.Combine(trials, "." + record.TrialId + ".lock")
        // FileShare.None takes an exclusive advisory lock (flock) on Unix; other writers of this trial wait
        let rec acquire (attempt: int) =
            try new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)
            with :? IOException when attempt < 600 ->
                Thread.Sleep(50)
                acquire (attempt + 1)
        use _lock = acquire 0
        match s.TryRead record.TrialId with
        | Some existing when existing.Status = Finished -> KeptFinished existing
        | _ ->
            AtomicFile.WriteAllText(s.RecordFile record.TrialId, (toJson record).ToJsonString options + "\n")
            Written
