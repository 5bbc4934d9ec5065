/// Plain Markdown tables: what the CLI prints and what README and reports embed.
module Mpo.Experiments.Reports.Tables

open System

/// A Markdown table with right-aligned numeric-looking columns.
let markdown (headers: string list) (rows: string list list) =
    let columns = List.length headers
    for row in rows do
        if List.length row <> columns then invalidArg "rows" $"a row has {List.length row} cells, the table {columns} columns"
    let widths =
        [ for c in 0 .. columns - 1 -> (headers.[c] :: (rows |> List.map (fun r -> r.[c]))) |> List.map String.length |> List.max ]
    let numeric c = rows |> List.forall (fun r -> let s = r.[c].TrimEnd('%', 'x', '×') in s = "" || fst (Double.TryParse s))
    let cell c (text: string) = if numeric c then text.PadLeft widths.[c] else text.PadRight widths.[c]
    let line cells = "| " + String.Join(" | ", cells |> List.mapi cell) + " |"
    let rule = "|" + String.Join("|", [ for c in 0 .. columns - 1 -> if numeric c then String('-', widths.[c] + 1) + ":" else String('-', widths.[c] + 2) ]) + "|"
    String.Join("\n", line headers :: rule :: List.map line rows)

let int64s (n: int64) = n.ToString("N0", Globalization.CultureInfo.InvariantCulture)
let ratio (x: float) = x.ToString("0.000", Globalization.CultureInfo.InvariantCulture)
let sci (x: float) = x.ToString("0.000e+00", Globalization.CultureInfo.InvariantCulture)
let percent (x: float) = (100.0 * x).ToString("0.0", Globalization.CultureInfo.InvariantCulture) + "%"
let factors (f: int seq) = "[" + String.Join(",", f) + "]"
