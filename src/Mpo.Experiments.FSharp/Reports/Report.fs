/// Tables from the result store: finished trials grouped by configuration fields (by default every field that varies,
/// except the seed), each metric as mean ± standard deviation over the group's seeds, in Markdown or CSV, with the
/// code version and trial IDs behind every row.
module Mpo.Experiments.Reports.Report

open System
open System.Globalization
open System.Text.Json.Nodes
open Mpo.Experiments.Store.ResultStore

/// Mean, sample standard deviation (n − 1; 0 for one value) and count.
type Aggregate =
    { Mean: float
      Std: float
      Count: int }

let aggregate (values: float list) =
    let n = List.length values
    if n = 0 then { Mean = nan; Std = nan; Count = 0 }
    else
        let mean = List.average values
        let std = if n < 2 then 0.0 else sqrt ((values |> List.sumBy (fun v -> (v - mean) ** 2.0)) / float (n - 1))
        { Mean = mean; Std = std; Count = n }

/// Every leaf of a trial's configuration as (dotted path, value as text).
let configFields (r: Record) =
    let rec walk (path: string) (node: JsonNode) =
        match node with
        | :? JsonObject as o -> [ for KeyValue(k, v) in o do yield! walk (if path = "" then k else path + "." + k) v ]
        | null -> [ path, "null" ]
        | :? JsonValue as v when v.GetValueKind() = Text.Json.JsonValueKind.String -> [ path, v.GetValue<string>() ]
        | n -> [ path, n.ToJsonString() ]
    walk "" r.Trial

/// The configuration fields whose values differ between records, the seed excepted (what a table should show).
let varying (records: Record list) =
    let all = records |> List.map (configFields >> Map.ofList)
    let paths = all |> List.collect Map.toList |> List.map fst |> List.distinct
    paths
    |> List.filter (fun p -> p <> "seed")
    |> List.filter (fun p -> all |> List.map (Map.tryFind p) |> List.distinct |> List.length > 1)

/// The label of each record's value at <c>path</c> (in the records' order) for a table or legend. A record stores its
/// method with every hyper-parameter resolved, so an object's label is its name and only the leaves that differ
/// between the records of that name ("mpoe experts=16" beside "mpoe experts=8", "switch" alone): what tells the rows
/// apart, not the defaults.
let labelsAt (path: string) (records: Record list) =
    // each object's (name, leaves) read once, then used both to find the differing leaves and to label
    let nodes =
        records |> List.map (fun r ->
            match configNode r path with
            | Some(:? JsonObject as o) -> Some(Choice1Of2(valueParts o))
            | Some n -> Some(Choice2Of2 n)
            | None -> None)
    let shownKeys =
        nodes
        |> List.choose (function Some(Choice1Of2 parts) -> Some parts | _ -> None)
        |> List.groupBy fst
        |> List.map (fun (name, members) ->
            let maps = members |> List.map (snd >> Map.ofList)
            let keys = maps |> List.collect (Map.toList >> List.map fst) |> List.distinct
            name, keys |> List.filter (fun k -> maps |> List.map (Map.tryFind k) |> List.distinct |> List.length > 1) |> Set.ofList)
        |> Map.ofList
    [ for node in nodes ->
        match node with
        | None -> "–"
        | Some(Choice1Of2(name, rest)) ->
            String.Join(" ", Option.toList name @ [ for k, v in rest do if shownKeys.[name].Contains k then yield k + "=" + v ])
        | Some(Choice2Of2 n) -> valueLabel n ]

/// Groups of records with equal values at <c>by</c> (labelled by <see cref="labelsAt"/>), in first-seen order.
let groups (by: string list) (records: Record list) =
    let labels = [ for p in by -> labelsAt p records ] |> List.transpose
    let keys = if by.IsEmpty then records |> List.map (fun _ -> []) else labels
    List.zip keys records
    |> List.groupBy fst
    |> List.map (fun (key, members) -> key, List.map snd members)

/// The metrics a table shows by default: the test metrics all records have, then trained parameters and minutes.
let defaultMetrics (records: Record list) =
    let common =
        records |> List.map (fun r -> r.Metrics |> Map.toList |> List.map fst |> Set.ofList) |> function
        | [] -> Set.empty
        | first :: rest -> List.fold Set.intersect first rest
    let test = common |> Set.filter (fun k -> k.StartsWith "test." && k <> "test.invalid") |> Set.toList
    let extra = [ Keys.trainableParameters; "train_seconds" ] |> List.filter common.Contains
    match test @ extra with
    | [] -> common |> Set.toList |> List.truncate 6
    | chosen -> chosen

let private invariant (x: float) (format: string) = x.ToString(format, CultureInfo.InvariantCulture)

/// "0.912 ± 0.010" (counts as integers, seconds as such; "–" when no record has the metric).
let cell (metric: string) (a: Aggregate) =
    if a.Count = 0 || Double.IsNaN a.Mean then "–"
    else
        let format = if metric.Contains "parameters" || metric = "steps" || metric.EndsWith "examples" then "N0" elif metric.EndsWith "seconds" then "0.0" else "0.000"
        // no ± for one seed, or a spread that rounds to nothing at the table's precision
        if a.Count = 1 || invariant a.Std format = invariant 0.0 format then invariant a.Mean format
        else sprintf "%s ± %s" (invariant a.Mean format) (invariant a.Std format)

/// One row per group: its key values, n (seeds), each metric's aggregate, and the short commits behind it.
let rows (by: string list) (metrics: string list) (records: Record list) =
    let finished = records |> List.filter (fun r -> r.Status = Finished)
    [ for key, members in groups by finished ->
        let codes =
            members
            |> List.map (fun r ->
                match r.Code.Note with
                | Some note -> (match note.IndexOf " (" with -1 -> note | i -> note.Substring(0, i))
                | None -> r.Code.Commit.Substring(0, min 10 r.Code.Commit.Length) + (if r.Code.Dirty then "+dirty" else ""))
            |> List.distinct
        key, members, [ for m in metrics -> m, aggregate [ for r in members do match Map.tryFind m r.Metrics with Some v -> yield v | None -> () ] ], codes ]

let markdown (by: string list) (metrics: string list) (records: Record list) =
    let table = rows by metrics records
    Tables.markdown
        (by @ [ "n" ] @ metrics @ [ "code" ])
        [ for key, members, cells, codes in table -> key @ [ string members.Length ] @ [ for m, a in cells -> cell m a ] @ [ String.Join("; ", codes) ] ]

let private csvField (s: string) = if s.IndexOfAny([| ','; '"'; '\n' |]) >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s

/// CSV with mean, std and n per metric, and the trial IDs and code versions of each row.
let csv (by: string list) (metrics: string list) (records: Record list) =
    let header = by @ [ "n" ] @ (metrics |> List.collect (fun m -> [ m + ".mean"; m + ".std"; m + ".n" ])) @ [ "code"; "trials" ]
    let lines =
        [ for key, members, cells, codes in rows by metrics records ->
            key @ [ string members.Length ]
            @ (cells |> List.collect (fun (_, a) -> [ invariant a.Mean "R"; invariant a.Std "R"; string a.Count ]))
            @ [ String.Join("; ", codes); String.Join(" ", members |> List.map (fun r -> r.TrialId)) ] ]
    String.Join("\n", (header :: lines) |> List.map (List.map csvField >> fun cells -> String.Join(",", cells))) + "\n"

/// The failed trials and why (they are in the store, not in the table).
let failures (records: Record list) =
    [ for r in records do
        if r.Status = Failed then yield sprintf "- %s: %s" r.TrialId (defaultArg r.Error "unknown error") ]
