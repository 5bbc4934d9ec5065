/// Grids of trials: axes (a field and its values) combined by product, zip and union, narrowed by filters and
/// changed by overrides. A grid point is a list of field assignments applied to a base trial; expansion reads each
/// point strictly (defaults filled in) into a trial, so its ID depends on its content only — reordering a grid keeps
/// every ID, changing a value makes a new trial, and points that come out equal are one trial.
module Mpo.Experiments.Specs.Grid

open System
open System.Text.Json
open System.Text.Json.Nodes
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Specs.TrialJson

/// Field assignments ("training.learning_rate.peak" = 1e-4), applied in order.
type Patch = (string * JsonNode) list

type Grid =
    /// One field taking each of its values in turn.
    | Axis of field: string * values: JsonNode list
    /// Every combination of the children's points.
    | Product of Grid list
    /// The children's points paired element-wise (equal lengths).
    | Zip of Grid list
    /// The children's points one after another.
    | Union of Grid list
    /// Only the points whose trial satisfies the predicate (described by the label in messages).
    | Where of label: string * keep: (Trial -> bool) * Grid
    /// The points whose trial satisfies the predicate get the patch on top.
    | Override of label: string * matches: (Trial -> bool) * patch: Patch * Grid

/// Keys of which one object holds at most one: setting one removes the others (a grid that sets warmup_steps replaces
/// a base's warmup_ratio instead of contradicting it; one that sets an SVD method's budget, its rank).
let private exclusive =
    [ [ "warmup_ratio"; "warmup_steps" ]; [ "rank"; "budget" ]; [ "constant"; "linear"; "steps" ] ]

/// <c>target</c> with <c>value</c> at the dotted <c>field</c> (objects created on the way).
let set (field: string) (value: JsonNode) (target: JsonObject) =
    let parts = field.Split '.'
    if parts |> Array.exists String.IsNullOrWhiteSpace then fail field "is not a field path (dotted names such as training.learning_rate.peak)"
    let mutable o = target
    for i in 0 .. parts.Length - 2 do
        match o.[parts.[i]] with
        | :? JsonObject as child -> o <- child
        | null ->
            let child = JsonObject()
            o.[parts.[i]] <- child
            o <- child
        | :? JsonValue as v when parts.[i] = "method" ->
            // "method": "full" is shorthand for {"name": "full"}
            let child = JsonObject()
            child.["name"] <- v.DeepClone()
            o.[parts.[i]] <- child
            o <- child
        | _ -> fail (String.Join(".", parts.[.. i])) (sprintf "is not an object, so %s cannot be set" field)
    let key = parts.[parts.Length - 1]
    for group in exclusive do
        if List.contains key group then
            for other in group do
                if other <> key then o.Remove other |> ignore
    o.[key] <- (if isNull value then null else value.DeepClone())

let private apply (baseTrial: JsonObject) (patch: Patch) =
    let o = baseTrial.DeepClone().AsObject()
    for field, value in patch do set field value o
    o

/// The trial a point makes of the base.
let trialOf (baseTrial: JsonObject) (patch: Patch) = readTrial "" (apply baseTrial patch)

/// Whether <c>trial</c> has <c>value</c> at <c>field</c>: setting it changes nothing (so 1e-3 matches 0.001, and a
/// default matches whether written or not).
let has (field: string) (value: JsonNode) (trial: Trial) =
    let o = writeTrial trial
    set field value o
    try canonical (readTrial "" o) = canonical trial with :? SpecException -> false

/// A JSON value from an F# one (strings, numbers, booleans, lists, records serialize as System.Text.Json does).
let node (value: obj) : JsonNode =
    match value with
    | :? JsonNode as n -> n
    | :? Method as m -> writeMethod m
    | null -> null
    | v -> JsonSerializer.SerializeToNode(v, v.GetType())

let axis (field: string) (values: 'a list) = Axis(field, values |> List.map (box >> node))
let models (names: string list) = axis "model" names
let tasks (names: string list) = axis "task" names
let seeds (seeds: int64 list) = axis "seed" seeds
let methods (methods: Method list) = Axis("method", methods |> List.map writeMethod)
let product grids = Product grids
let zip grids = Zip grids
let union grids = Union grids
let where label keep grid = Where(label, keep, grid)
let exclude label drop grid = Where("not " + label, (drop >> not), grid)
let overrideWhen label matches (patch: (string * obj) list) grid = Override(label, matches, patch |> List.map (fun (f, v) -> f, node v), grid)

/// The grid's points, in order (filters and overrides evaluated on the trial each point makes of the base).
let rec points (baseTrial: JsonObject) (grid: Grid) : Patch list =
    match grid with
    | Axis (field, []) -> fail field "has an empty list of values: the grid would have no trials"
    | Axis (field, values) -> [ for v in values -> [ field, v ] ]
    | Product children ->
        children |> List.fold (fun acc g -> [ for a in acc do for b in points baseTrial g -> a @ b ]) [ [] ]
    | Zip [] -> [ [] ]
    | Zip children ->
        let lists = children |> List.map (points baseTrial)
        let n = List.head lists |> List.length
        match List.zip children lists |> List.tryFind (fun (_, l) -> List.length l <> n) with
        | Some (g, l) ->
            let name = match g with Axis (f, _) -> f | _ -> "a zipped grid"
            fail name (sprintf "has %d values but is zipped with %d: zip pairs lists of equal length" (List.length l) n)
        | None -> List.transpose lists |> List.map List.concat
    | Union children -> children |> List.collect (points baseTrial)
    | Where (_, keep, g) -> points baseTrial g |> List.filter (fun p -> keep (trialOf baseTrial p))
    | Override (_, matches, patch, g) ->
        points baseTrial g |> List.map (fun p -> if matches (trialOf baseTrial p) then p @ patch else p)

/// The grid's trials with their IDs, in grid order, each once.
let expand (baseTrial: JsonObject) (grid: Grid) =
    points baseTrial grid
    |> List.map (fun p -> let t = trialOf baseTrial p in id t, t)
    |> List.distinctBy fst

/// The base of a grid built in F#: a trial's canonical JSON (the grid's axes then replace its fields).
let baseOf (trial: Trial) = writeTrial trial
