/// A spec file for `mpo run spec.json`: a base trial, a grid over its fields, filters and overrides. Every error names
/// the field and the line it is on.
///
/// ```json
/// { "name": "lr-sweep",
///   "trial": { "task": "spam", "training": { "epochs": 1 } },
///   "grid": { "product": { "model": ["tiny-bert", "tiny-gpt2"], "training.learning_rate.peak": [1e-4, 2e-4], "seed": [1, 2] } },
///   "exclude": [ { "model": "tiny-gpt2", "training.learning_rate.peak": 1e-4 } ],
///   "overrides": [ { "when": { "model": "tiny-gpt2" }, "set": { "training.batch_size": 8 } } ] }
/// ```
/// A grid is `{"product": {field: [values], ...}}` or `{"product": [grid, ...]}`, the same with `zip` (element-wise),
/// `{"union": [grid, ...]}` or a list of grids (one after another); any grid object may carry `where`, `exclude` and
/// `overrides`.
module Mpo.Experiments.Specs.SpecJson

open System
open System.IO
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Specs.TrialJson
open Mpo.Experiments.Specs.Grid

type Spec =
    { /// Names the experiment (its default store folder, the Slurm job).
      Name: string
      /// The store folder the spec asks for (relative to the working directory), if any.
      Store: string option
      /// The fields every trial starts from.
      Base: JsonObject
      Grid: Grid
      /// Where the spec came from (messages).
      Source: string
      /// Line of each written field path ("grid.product.seed"), for messages.
      Lines: Map<string, int> }

/// 1-based line of every property of a JSON text, by document path (array elements as [i]).
let private propertyLines (text: string) =
    let bytes = Encoding.UTF8.GetBytes text
    let lineStarts = [| yield 0; for i in 0 .. bytes.Length - 1 do if bytes.[i] = byte '\n' then yield i + 1 |]
    let lineOf (offset: int64) =
        let i = Array.BinarySearch(lineStarts, int offset)
        (if i >= 0 then i else ~~~i - 1) + 1
    let mutable reader = Utf8JsonReader(ReadOnlySpan bytes, JsonReaderOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true))
    // each open container: its path, and for arrays the next element index
    let stack = Collections.Generic.Stack<string * int ref option>()
    let mutable pending = ""   // path of the property whose value comes next
    let mutable lines = Map.empty
    let valuePath () =
        if stack.Count = 0 then ""
        else
            match stack.Peek() with
            | path, Some index ->
                let p = sprintf "%s[%d]" path index.Value
                index.Value <- index.Value + 1
                p
            | _ -> pending
    while reader.Read() do
        match reader.TokenType with
        | JsonTokenType.PropertyName ->
            let parent = fst (stack.Peek())
            pending <- join parent (reader.GetString())
            lines <- Map.add pending (lineOf reader.TokenStartIndex) lines
        | JsonTokenType.StartObject -> stack.Push(valuePath (), None)
        | JsonTokenType.StartArray -> stack.Push(valuePath (), Some(ref 0))
        | JsonTokenType.EndObject | JsonTokenType.EndArray -> stack.Pop() |> ignore
        | _ -> valuePath () |> ignore
    lines

/// A predicate from `{field: value | [values], ...}`: every field has the value (or one of the values).
let private matcher (path: string) (node: JsonNode) =
    let o = match node with :? JsonObject as o -> o | _ -> fail path "must be an object of field: value (or [values])"
    let tests =
        [ for KeyValue(field, value) in o ->
            match value with
            | :? JsonArray as a -> fun t -> a |> Seq.exists (fun v -> has field v t)
            | v -> has field v ]
    o.ToJsonString(), fun t -> tests |> List.forall (fun f -> f t)

let rec private readGrid (path: string) (node: JsonNode) : Grid =
    match node with
    | :? JsonArray as a -> Union [ for i in 0 .. a.Count - 1 -> readGrid (sprintf "%s[%d]" path i) a.[i] ]
    | :? JsonObject as o ->
        let o = expectObject path [ "product"; "zip"; "union"; "where"; "exclude"; "overrides" ] o
        let combinators = [ "product"; "zip"; "union" ] |> List.filter o.ContainsKey
        let inner =
            match combinators with
            | [ c ] ->
                let p = join path c
                let children =
                    match o.[c] with
                    | :? JsonObject as axes ->
                        [ for KeyValue(field, values) in axes ->
                            match values with
                            | :? JsonArray as vs -> Axis(field, [ for v in vs -> if isNull v then null else v.DeepClone() ])
                            | _ -> fail (join p field) "must be a list of values" ]
                    | :? JsonArray as grids -> [ for i in 0 .. grids.Count - 1 -> readGrid (sprintf "%s[%d]" p i) grids.[i] ]
                    | _ -> fail p "must be an object of field: [values] or a list of grids"
                match c with
                | "product" -> Product children
                | "zip" -> Zip children
                | _ -> Union children
            | [] -> fail path "needs one of product, zip, union"
            | _ -> fail path (sprintf "has %s: give one combinator per grid object (nest them instead)" (String.Join(" and ", combinators)))
        filters path o inner
    | _ -> fail path "must be a grid object or a list of grids"

/// Wraps <c>grid</c> in the filters and overrides written beside it.
and private filters (path: string) (o: JsonObject) (grid: Grid) =
    let grid =
        match optional o "where" with
        | Some w -> let label, keep = matcher (join path "where") w in Where(label, keep, grid)
        | None -> grid
    let grid =
        match optional o "exclude" with
        | Some (:? JsonArray as a) ->
            [ for i in 0 .. a.Count - 1 -> matcher (sprintf "%s.exclude[%d]" path i) a.[i] ]
            |> List.fold (fun g (label, drop) -> Where("not " + label, (drop >> not), g)) grid
        | Some _ -> fail (join path "exclude") "must be a list of {field: value} objects"
        | None -> grid
    match optional o "overrides" with
    | Some (:? JsonArray as a) ->
        [ for i in 0 .. a.Count - 1 ->
            let p = sprintf "%s.overrides[%d]" path i
            let item = expectObject p [ "when"; "set" ] a.[i]
            let label, matches =
                match optional item "when" with
                | Some w -> matcher (join p "when") w
                | None -> "always", (fun _ -> true)
            let patch =
                match optional item "set" with
                | Some (:? JsonObject as s) when s.Count > 0 -> [ for KeyValue(f, v) in s -> f, (if isNull v then null else v.DeepClone()) ]
                | _ -> fail (join p "set") "must be a non-empty object of field: value"
            label, matches, patch ]
        |> List.fold (fun g (label, matches, patch) -> Override(label, matches, patch, g)) grid
    | Some _ -> fail (join path "overrides") "must be a list of {\"when\": {...}, \"set\": {...}} objects"
    | None -> grid

let specFields = [ "name"; "store"; "trial"; "grid"; "where"; "exclude"; "overrides" ]

/// The line a problem with <c>field</c> (a spec path such as grid.product.seed, or a trial field) is on.
let lineOf (spec: Spec) (field: string) =
    match Map.tryFind field spec.Lines with
    | Some l -> Some l
    | None ->
        // a trial field: where an axis or override sets it (or an enclosing field), else where the base trial has it
        let rec prefixes (f: string) =
            [ yield f
              match f.LastIndexOf '.' with
              | -1 -> ()
              | i -> yield! prefixes (f.Substring(0, i)) ]
        let candidates = prefixes field
        let written = spec.Lines |> Map.toList
        candidates
        |> List.tryPick (fun f ->
            written |> List.tryPick (fun (path, line) -> if path.EndsWith("." + f) && not (path.StartsWith "trial.") then Some line else None)
            |> Option.orElse (Map.tryFind ("trial." + f) spec.Lines))
        // a field nobody wrote (a required one, or one a default makes impossible): the base trial's line
        |> Option.orElse (Map.tryFind "trial" spec.Lines)

/// Runs <c>f</c>, locating any SpecException it raises in the spec's file.
let located (spec: Spec) (f: unit -> 'a) =
    try f ()
    with :? SpecException as e when e.Line.IsNone -> raise (e.At(spec.Source, lineOf spec e.Field))

/// Reads a spec from JSON text; <c>source</c> names it in messages.
let parse (source: string) (text: string) =
    let lines =
        try propertyLines text
        with :? JsonException as e ->
            raise (SpecException("", sprintf "is not valid JSON: %s" e.Message, Some source, (e.LineNumber |> Option.ofNullable |> Option.map (fun l -> int l + 1))))
    let doc =
        try JsonNode.Parse(text, documentOptions = JsonDocumentOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true))
        with :? JsonException as e ->
            raise (SpecException("", sprintf "is not valid JSON: %s" e.Message, Some source, (e.LineNumber |> Option.ofNullable |> Option.map (fun l -> int l + 1))))
    let locate (f: unit -> 'a) =
        try f ()
        with :? SpecException as e when e.Line.IsNone -> raise (e.At(source, Map.tryFind e.Field lines))
    locate (fun () ->
        let o = expectObject "" specFields doc
        let name =
            match optional o "name" with
            | Some n -> readString "name" n
            | None -> Path.GetFileNameWithoutExtension source
        if name = "" || name.IndexOfAny([| '/'; '\\'; ' ' |]) >= 0 then fail "name" (sprintf "must be a non-empty name without spaces or slashes, got '%s'" name)
        let baseTrial =
            match optional o "trial" with
            | Some (:? JsonObject as t) -> expectObject "trial" trialFields t |> ignore; t.DeepClone().AsObject()
            | Some _ -> fail "trial" "must be an object (the fields every trial starts from)"
            | None -> JsonObject()
        let grid = match optional o "grid" with Some g -> readGrid "grid" g | None -> Product []
        { Name = name
          Store = optional o "store" |> Option.map (readString "store")
          Base = baseTrial
          Grid = filters "" o grid
          Source = source
          Lines = lines })

let read (path: string) =
    if not (File.Exists path) then raise (FileNotFoundException(sprintf "spec file %s does not exist" path, path))
    parse path (File.ReadAllText path)

/// The spec's trials with their IDs (errors name the field and line).
let trials (spec: Spec) = located spec (fun () -> expand spec.Base spec.Grid)
