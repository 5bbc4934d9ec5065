/// Trials as JSON: the spec's syntax (snake_case, shorthands such as `"method": "full"`), the canonical form with every
/// default filled in, and the trial ID derived from that form. Reading is strict: an unknown field, a wrong type or an
/// impossible value is a SpecException naming the field's path.
module Mpo.Experiments.Specs.TrialJson

open System
open System.Collections.Generic
open System.Security.Cryptography
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open Mpo.Training
open Mpo.Experiments.Specs.Schedules
open Mpo.Experiments.Specs.Trial

/// A problem in a spec: the field (a dotted path such as `training.learning_rate.peak`), and where it was written
/// when known (file and 1-based line).
type SpecException(field: string, problem: string, source: string option, line: int option) =
    inherit ArgumentException(
        (match source, line with
         | Some s, Some l -> sprintf "%s line %d: " s l
         | Some s, None -> s + ": "
         | None, Some l -> sprintf "line %d: " l
         | None, None -> "")
        + (if field = "" then problem else sprintf "field '%s' %s" field problem))
    new(field, problem) = SpecException(field, problem, None, None)
    member _.Field = field
    member _.Problem = problem
    member _.Line = line
    /// The same problem, located in a file.
    member _.At(source: string, line: int option) = SpecException(field, problem, Some source, line)

let fail (field: string) (problem: string) : 'a = raise (SpecException(field, problem))

let join (path: string) (key: string) = if path = "" then key else path + "." + key

// ---- reading with paths -------------------------------------------------------------------------------------------

/// The object at <c>path</c>, whose keys must all be among <c>known</c>.
let expectObject (path: string) (known: string list) (node: JsonNode) =
    match node with
    | :? JsonObject as o ->
        for KeyValue(k, _) in o do
            if not (List.contains k known) then
                fail (join path k) (sprintf "is unknown%s (known: %s)" (if path = "" then "" else " in " + path) (String.Join(", ", known)))
        o
    | null -> fail path "must be an object, not null"
    | _ -> fail path (sprintf "must be an object, got %s" (node.ToJsonString()))

let private kind (node: JsonNode) = match node with null -> JsonValueKind.Null | n -> n.GetValueKind()

/// A number node as a JsonElement, whether it was parsed or built from a .NET value.
let private element (node: JsonNode) = JsonSerializer.SerializeToElement node

let readInt64 (path: string) (node: JsonNode) =
    match kind node with
    | JsonValueKind.Number ->
        let e = element node
        match e.TryGetInt64() with
        | true, v -> v
        | _ ->
            let d = e.GetDouble()
            if Math.Floor d = d && abs d < 9e15 then int64 d else fail path (sprintf "must be an integer, got %s" (node.ToJsonString()))
    | _ -> fail path (sprintf "must be an integer, got %s" (if isNull node then "null" else node.ToJsonString()))

let readInt (path: string) (node: JsonNode) =
    let v = readInt64 path node
    if v < int64 Int32.MinValue || v > int64 Int32.MaxValue then fail path (sprintf "is out of range: %d" v) else int v

let readFloat (path: string) (node: JsonNode) =
    match kind node with
    | JsonValueKind.Number -> (element node).GetDouble()
    | _ -> fail path (sprintf "must be a number, got %s" (if isNull node then "null" else node.ToJsonString()))

let readString (path: string) (node: JsonNode) =
    match kind node with
    | JsonValueKind.String -> node.GetValue<string>()
    | _ -> fail path (sprintf "must be a string, got %s" (if isNull node then "null" else node.ToJsonString()))

let readBool (path: string) (node: JsonNode) =
    match kind node with
    | JsonValueKind.True -> true
    | JsonValueKind.False -> false
    | _ -> fail path (sprintf "must be true or false, got %s" (if isNull node then "null" else node.ToJsonString()))

let optional (o: JsonObject) (key: string) : JsonNode option =
    let mutable v: JsonNode = null
    if o.TryGetPropertyValue(key, &v) && not (isNull v) then Some v else None

// ---- schedules ----------------------------------------------------------------------------------------------------

let scheduleKinds = [ "linear", ScheduleKind.Linear; "cosine", ScheduleKind.Cosine; "constant", ScheduleKind.Constant ]

/// `0.5`, `{"linear": [from, to]}` or `{"steps": [[0, 0.5], [1000, 0.25]]}`.
let readSchedule (path: string) (node: JsonNode) =
    match node with
    | :? JsonValue -> Constant(readFloat path node)
    | :? JsonObject as o when o.Count = 1 ->
        let o = expectObject path [ "constant"; "linear"; "steps" ] o
        match optional o "constant", optional o "linear", optional o "steps" with
        | Some v, _, _ -> Constant(readFloat (join path "constant") v)
        | _, Some (:? JsonArray as a), _ when a.Count = 2 ->
            Linear(readFloat (join path "linear[0]") a.[0], readFloat (join path "linear[1]") a.[1])
        | _, Some _, _ -> fail (join path "linear") "must be [from, to]"
        | _, _, Some (:? JsonArray as a) ->
            Steps [ for i in 0 .. a.Count - 1 ->
                      match a.[i] with
                      | :? JsonArray as p when p.Count = 2 ->
                          readInt64 (sprintf "%s.steps[%d][0]" path i) p.[0], readFloat (sprintf "%s.steps[%d][1]" path i) p.[1]
                      | _ -> fail (sprintf "%s.steps[%d]" path i) "must be [update, value]" ]
        | _ -> fail (join path "steps") "must be a list of [update, value] pairs"
    | _ -> fail path "must be a number, {\"constant\": v}, {\"linear\": [from, to]} or {\"steps\": [[update, value], ...]}"

let writeSchedule (s: Schedule) : JsonNode =
    match s with
    | Constant v -> JsonObject [ KeyValuePair("constant", JsonValue.Create v :> JsonNode) ]
    | Linear (a, b) -> JsonObject [ KeyValuePair("linear", JsonArray(JsonValue.Create a, JsonValue.Create b) :> JsonNode) ]
    | Steps points ->
        JsonObject [ KeyValuePair("steps", JsonArray([| for (s, v) in points -> JsonArray(JsonValue.Create s, JsonValue.Create v) :> JsonNode |]) :> JsonNode) ]

// ---- methods ------------------------------------------------------------------------------------------------------

/// Every method's name, for messages.
let methodNames =
    [ Method.Full.Name; (Method.Lfa defaultMpoTuning).Name; (Method.Mpop(defaultMpoTuning, defaultSqueeze)).Name
      (Method.MpopDir(defaultMpoTuning, 1L)).Name; "lora"; "svd"; "last-layers"; "switch"; "moe"; "mpoe" ]

/// The fields of an MoE method (ExpertSettings), as specs write them.
let expertFields = [ "name"; "experts"; "top_k"; "capacity_factor"; "balance_loss"; "z_loss"; "jitter"; "gradient_mask"; "gradient_mask_mode"; "cores"; "share_central"; "mpo_learning_rate" ]

/// The MPO cores' own learning rate of a method (MPOP's methods and MPOE), when it gives one.
let private readMpoLearningRate (path: string) (o: JsonObject) =
    optional o "mpo_learning_rate" |> Option.map (readFloat (join path "mpo_learning_rate"))

/// `{"name": "mpoe", "experts": 8, "gradient_mask": 0.5, ...}`: absent fields take the method's preset (with its
/// experts); `"capacity_factor": null` is no dropping.
let readExperts (path: string) (kind: Mpo.Tuning.MoeKind) (o: JsonObject) =
    let o = expectObject path expertFields o
    let experts = optional o "experts" |> Option.map (readInt (join path "experts")) |> Option.defaultValue 8
    let d = expertDefaults kind experts
    let get key read fallback = optional o key |> Option.map (read (join path key)) |> Option.defaultValue fallback
    { Experts = experts
      TopK = get "top_k" readInt d.TopK
      CapacityFactor = (if o.ContainsKey "capacity_factor" then optional o "capacity_factor" |> Option.map (readFloat (join path "capacity_factor")) else d.CapacityFactor)
      BalanceLoss = get "balance_loss" readFloat d.BalanceLoss
      ZLoss = get "z_loss" readFloat d.ZLoss
      Jitter = get "jitter" readFloat d.Jitter
      GradientMask = get "gradient_mask" readFloat d.GradientMask
      GradientMaskMode = get "gradient_mask_mode" readString d.GradientMaskMode
      Cores = get "cores" readInt d.Cores
      ShareCentral = get "share_central" readBool d.ShareCentral
      MpoLearningRate = readMpoLearningRate path o }

let writeExperts (o: JsonObject) (e: ExpertSettings) =
    o.["experts"] <- JsonValue.Create e.Experts
    o.["top_k"] <- JsonValue.Create e.TopK
    o.["capacity_factor"] <- (match e.CapacityFactor with Some c -> JsonValue.Create c :> JsonNode | None -> null)
    o.["balance_loss"] <- JsonValue.Create e.BalanceLoss
    o.["z_loss"] <- JsonValue.Create e.ZLoss
    o.["jitter"] <- JsonValue.Create e.Jitter
    o.["gradient_mask"] <- JsonValue.Create e.GradientMask
    o.["gradient_mask_mode"] <- JsonValue.Create e.GradientMaskMode
    o.["cores"] <- JsonValue.Create e.Cores
    // only when off: trials written before the switch existed keep their JSON, hence their IDs
    if not e.ShareCentral then o.["share_central"] <- JsonValue.Create false
    e.MpoLearningRate |> Option.iter (fun lr -> o.["mpo_learning_rate"] <- JsonValue.Create lr)

/// A baseline's hyper-parameters, read by its C# configuration (the field names of its adapter_config.json); a
/// problem names the field under the method's path.
let private tunerMethod (path: string) (o: JsonObject) (read: JsonObject -> string -> 'c) =
    let fields = JsonObject()
    for KeyValue(k, v) in o do
        if k <> "name" then fields.[k] <- (if isNull v then null else v.DeepClone())
    try read fields path
    with :? Mpo.Tuning.InvalidTunerConfigException as e -> fail (join path e.Field) e.Problem

let private mpoFields = [ "mpo"; "mpo_learning_rate" ]

let private readMpoTuning (path: string) (o: JsonObject) =
    { Tuner = optional o "mpo" |> Option.map (readString (join path "mpo")) |> Option.defaultValue defaultMpoTuning.Tuner
      MpoLearningRate = readMpoLearningRate path o }

let private writeMpoTuning (o: JsonObject) (m: MpoTuning) =
    o.["mpo"] <- JsonValue.Create m.Tuner
    o.["mpo_learning_rate"] <- (match m.MpoLearningRate with Some lr -> JsonValue.Create lr :> JsonNode | None -> null)

/// `{"loss_gap": 0.03, "warmup_steps": 10, "recovery_steps": 10, "target_parameters": 4000000, "max_cuts": 50,
/// "families": ["ffn_in", "ffn_out"]}`, every field optional.
let private readSqueeze (path: string) (node: JsonNode) =
    let o = expectObject path [ "loss_gap"; "warmup_steps"; "recovery_steps"; "target_parameters"; "max_cuts"; "families" ] node
    let d = defaultSqueeze
    let get key read fallback = optional o key |> Option.map (read (join path key)) |> Option.defaultValue fallback
    { LossGap = get "loss_gap" readFloat d.LossGap
      WarmupSteps = get "warmup_steps" readInt d.WarmupSteps
      RecoverySteps = get "recovery_steps" readInt d.RecoverySteps
      TargetParameters = optional o "target_parameters" |> Option.map (readInt64 (join path "target_parameters"))
      MaxCuts = optional o "max_cuts" |> Option.map (readInt (join path "max_cuts"))
      Families =
        optional o "families"
        |> Option.map (fun v ->
            match v with
            | :? JsonArray as a -> [ for i in 0 .. a.Count - 1 -> readString (sprintf "%s.families[%d]" path i) a.[i] ]
            | _ -> fail (join path "families") "must be a list of family names") }

let private writeSqueeze (s: SqueezeSettings) : JsonNode =
    let o = JsonObject()
    o.["loss_gap"] <- JsonValue.Create s.LossGap
    o.["warmup_steps"] <- JsonValue.Create s.WarmupSteps
    o.["recovery_steps"] <- JsonValue.Create s.RecoverySteps
    o.["target_parameters"] <- (match s.TargetParameters with Some p -> JsonValue.Create p :> JsonNode | None -> null)
    o.["max_cuts"] <- (match s.MaxCuts with Some c -> JsonValue.Create c :> JsonNode | None -> null)
    o.["families"] <- (match s.Families with Some f -> JsonArray([| for x in f -> JsonValue.Create x :> JsonNode |]) :> JsonNode | None -> null)
    o

/// `"full"`, `"lfa"`, `"mpop"` or `{"name": ..., ...its hyper-parameters}`: `mpo` (a tuner preset or configuration
/// file) and `mpo_learning_rate` for the MPO methods, `squeeze` for mpop, `target_parameters` (required) for mpop-dir.
let readMethod (path: string) (node: JsonNode) =
    let name, o =
        match node with
        | :? JsonValue -> readString path node, JsonObject()
        | :? JsonObject as o ->
            match optional o "name" with
            | Some n -> readString (join path "name") n, o
            | None -> fail (join path "name") "is required"
        | _ -> fail path "must be a method name or an object with a name"
    match name with
    | "full" ->
        expectObject path [ "name" ] o |> ignore   // full fine-tuning has no hyper-parameters of its own
        Method.Full
    | "lfa" ->
        expectObject path ("name" :: mpoFields) o |> ignore
        Method.Lfa(readMpoTuning path o)
    | "mpop" ->
        expectObject path ("name" :: "squeeze" :: mpoFields) o |> ignore
        Method.Mpop(readMpoTuning path o, optional o "squeeze" |> Option.map (readSqueeze (join path "squeeze")) |> Option.defaultValue defaultSqueeze)
    | "mpop-dir" ->
        expectObject path ("name" :: "target_parameters" :: mpoFields) o |> ignore
        match optional o "target_parameters" with
        | Some v -> Method.MpopDir(readMpoTuning path o, readInt64 (join path "target_parameters") v)
        | None -> fail (join path "target_parameters") "is required (the size to truncate to before fine-tuning)"
    | "lora" -> Method.Lora(tunerMethod path o (fun j s -> Mpo.Tuning.LoraConfig.FromJson(j, s)))
    | "svd" -> Method.Svd(tunerMethod path o (fun j s -> Mpo.Tuning.SvdTunerConfig.FromJson(j, s)))
    | "last-layers" -> Method.LastLayers(tunerMethod path o (fun j s -> Mpo.Tuning.LastLayersConfig.FromJson(j, s)))
    | "switch" -> Method.Switch(readExperts path Mpo.Tuning.MoeKind.Switch o)
    | "moe" -> Method.Moe(readExperts path Mpo.Tuning.MoeKind.Moe o)
    | "mpoe" -> Method.Mpoe(readExperts path Mpo.Tuning.MoeKind.Mpoe o)
    | other -> fail (join path "name") (sprintf "'%s' is not a method (known: %s)" other (String.Join(", ", methodNames)))

let writeMethod (m: Method) : JsonNode =
    let o = JsonObject()
    o.["name"] <- JsonValue.Create m.Name
    let fields (config: JsonObject) =
        for KeyValue(k, v) in Seq.toArray config do
            config.Remove k |> ignore
            o.[k] <- v
    match m with
    | Method.Full -> ()
    | Method.Lfa t -> writeMpoTuning o t
    | Method.Mpop (t, s) ->
        writeMpoTuning o t
        o.["squeeze"] <- writeSqueeze s
    | Method.MpopDir (t, target) ->
        writeMpoTuning o t
        o.["target_parameters"] <- JsonValue.Create target
    | Method.Lora c -> fields (c.ToJson())
    | Method.Svd c -> fields (c.ToJson())
    | Method.LastLayers c -> fields (c.ToJson())
    | Method.Switch e | Method.Moe e | Method.Mpoe e -> writeExperts o e
    o

// ---- trials -------------------------------------------------------------------------------------------------------

let private readLearningRate (path: string) (node: JsonNode) (d: LearningRate) =
    let o = expectObject path [ "peak"; "schedule"; "warmup_ratio"; "warmup_steps" ] node
    let shape =
        match optional o "schedule" with
        | None -> d.Shape
        | Some s ->
            let name = readString (join path "schedule") s
            match scheduleKinds |> List.tryFind (fun (n, _) -> n = name) with
            | Some (_, k) -> k
            | None -> fail (join path "schedule") (sprintf "'%s' is not a schedule (known: %s)" name (String.Join(", ", List.map fst scheduleKinds)))
    let warmup =
        match optional o "warmup_ratio", optional o "warmup_steps" with
        | Some r, None -> WarmupRatio(readFloat (join path "warmup_ratio") r)
        | None, Some s -> WarmupSteps(readInt64 (join path "warmup_steps") s)
        | None, None -> d.Warmup
        | Some _, Some _ -> fail (join path "warmup_steps") "and warmup_ratio exclude each other: give one"
    { Peak = optional o "peak" |> Option.map (readFloat (join path "peak")) |> Option.defaultValue d.Peak
      Shape = shape
      Warmup = warmup }

let private readTraining (path: string) (node: JsonNode) (d: Training) =
    let o =
        expectObject path [ "epochs"; "batch_size"; "learning_rate"; "weight_decay"; "max_length"; "evaluations_per_epoch"
                            "max_steps"; "train_examples"; "dev_examples"; "test_examples" ] node
    let get key read fallback = optional o key |> Option.map (read (join path key)) |> Option.defaultValue fallback
    let getOpt key read fallback =
        if not (o.ContainsKey key) then fallback
        else
            match optional o key with
            | None -> None
            | Some v -> Some(read (join path key) v)
    { Epochs = get "epochs" readInt d.Epochs
      BatchSize = get "batch_size" readInt d.BatchSize
      LearningRate = (match optional o "learning_rate" with Some v -> readLearningRate (join path "learning_rate") v d.LearningRate | None -> d.LearningRate)
      WeightDecay = get "weight_decay" readFloat d.WeightDecay
      MaxLength = get "max_length" readInt d.MaxLength
      EvaluationsPerEpoch = get "evaluations_per_epoch" readInt d.EvaluationsPerEpoch
      MaxSteps = getOpt "max_steps" readInt64 d.MaxSteps
      TrainExamples = getOpt "train_examples" readInt d.TrainExamples
      DevExamples = getOpt "dev_examples" readInt d.DevExamples
      TestExamples = getOpt "test_examples" readInt d.TestExamples }

let trialFields = [ "model"; "task"; "data"; "method"; "training"; "seed" ]

/// Reads a trial; absent fields take the defaults. <c>path</c> prefixes the field names in errors.
let readTrial (path: string) (node: JsonNode) =
    let o = expectObject path trialFields node
    let required key = match optional o key with Some v -> readString (join path key) v | None -> fail (join path key) "is required"
    let t =
        { Model = required "model"
          Task = required "task"
          Data = optional o "data" |> Option.map (readString (join path "data"))
          Method = optional o "method" |> Option.map (readMethod (join path "method")) |> Option.defaultValue Method.Full
          Training = (match optional o "training" with Some v -> readTraining (join path "training") v defaultTraining | None -> defaultTraining)
          Seed = optional o "seed" |> Option.map (readInt64 (join path "seed")) |> Option.defaultValue defaultSeed }
    match problems t with
    | (field, problem) :: _ -> fail (join path field) problem
    | [] -> t

/// The canonical JSON of a trial: every field, defaults included, in one fixed order.
let writeTrial (t: Trial) : JsonObject =
    let tr = t.Training
    let lr = JsonObject()
    lr.["peak"] <- JsonValue.Create tr.LearningRate.Peak
    lr.["schedule"] <- JsonValue.Create(scheduleKinds |> List.find (fun (_, k) -> k = tr.LearningRate.Shape) |> fst)
    match tr.LearningRate.Warmup with
    | WarmupRatio r -> lr.["warmup_ratio"] <- JsonValue.Create r
    | WarmupSteps s -> lr.["warmup_steps"] <- JsonValue.Create s
    let training = JsonObject()
    training.["epochs"] <- JsonValue.Create tr.Epochs
    training.["batch_size"] <- JsonValue.Create tr.BatchSize
    training.["learning_rate"] <- lr
    training.["weight_decay"] <- JsonValue.Create tr.WeightDecay
    training.["max_length"] <- JsonValue.Create tr.MaxLength
    training.["evaluations_per_epoch"] <- JsonValue.Create tr.EvaluationsPerEpoch
    training.["max_steps"] <- (match tr.MaxSteps with Some s -> JsonValue.Create s :> JsonNode | None -> null)
    training.["train_examples"] <- (match tr.TrainExamples with Some n -> JsonValue.Create n :> JsonNode | None -> null)
    // written only when set, so the IDs of trials from before the field existed stay what they were
    match tr.DevExamples with
    | Some n -> training.["dev_examples"] <- JsonValue.Create n
    | None -> ()
    match tr.TestExamples with
    | Some n -> training.["test_examples"] <- JsonValue.Create n
    | None -> ()
    let o = JsonObject()
    o.["model"] <- JsonValue.Create t.Model
    o.["task"] <- JsonValue.Create t.Task
    o.["data"] <- (match t.Data with Some d -> JsonValue.Create d :> JsonNode | None -> null)
    o.["method"] <- writeMethod t.Method
    o.["training"] <- training
    o.["seed"] <- JsonValue.Create t.Seed
    o

let private compact = JsonSerializerOptions(WriteIndented = false)

/// The canonical JSON as one line: what the trial ID hashes.
let canonical (t: Trial) = (writeTrial t).ToJsonString compact

/// A file- and Slurm-safe rendering of a model name or folder ("models/tiny-bert/" → "tiny-bert").
let private slug (s: string) =
    let name = IO.Path.GetFileName(s.TrimEnd('/', '\\'))
    String([| for c in (if name = "" then s else name) -> if Char.IsLetterOrDigit c || c = '-' || c = '.' then c else '_' |])

/// The trial's ID: readable parts, then the first 12 hex digits of the SHA-256 of its canonical JSON. Equal content
/// (defaults spelt out or not, fields in any order, grids in any order) gives the same ID; any changed value, another.
let id (t: Trial) =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes(canonical t)) |> Convert.ToHexString
    sprintf "%s-%s-%s-s%d-%s" t.Method.Name (slug t.Model) (slug t.Task) t.Seed (hash.Substring(0, 12).ToLowerInvariant())
