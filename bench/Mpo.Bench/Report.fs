/// How results reach a person: Markdown tables on stdout (pasted into the README as they are), the same tables and
/// the raw numbers under the output folder, and a progress bar only where someone is watching.
module Mpo.Bench.Report

open System
open System.IO
open System.Text.Json
open System.Text.Json.Serialization
open Spectre.Console

type Options =
    { Quick: bool
      OutDir: string
      /// A terminal and not CI: show a progress bar (it would only garble logs otherwise).
      Interactive: bool }

let interactive () =
    not Console.IsOutputRedirected && String.IsNullOrEmpty(Environment.GetEnvironmentVariable "CI")

type Align =
    | Left
    | Right

/// A Markdown table padded to aligned columns, so it also reads well as plain text.
let table (columns: (string * Align) list) (rows: string list list) =
    let headers = columns |> List.map fst
    let widths =
        columns
        |> List.mapi (fun i (h, _) -> rows |> List.fold (fun w r -> max w (List.item i r).Length) h.Length)
    let line (cells: string list) =
        List.zip3 cells widths (columns |> List.map snd)
        |> List.map (fun (c, w, a) -> if a = Right then c.PadLeft w else c.PadRight w)
        |> String.concat " | "
        |> sprintf "| %s |"
    let rule =
        List.zip widths (columns |> List.map snd)
        |> List.map (fun (w, a) -> if a = Right then String('-', max 1 (w - 1)) + ":" else String('-', w))
        |> String.concat " | "
        |> sprintf "| %s |"
    String.concat "\n" (line headers :: rule :: List.map line rows)

/// Milliseconds with about three significant digits.
let ms (x: float) =
    if Double.IsNaN x then "–"
    elif x >= 100.0 then x.ToString("F0")
    elif x >= 10.0 then x.ToString("F1")
    elif x >= 1.0 then x.ToString("F2")
    else x.ToString("F3")

/// Scientific notation, short: 4.22e9.
let sci (x: float) = if Double.IsNaN x then "–" else x.ToString("0.00e0", Globalization.CultureInfo.InvariantCulture)

let yesNo ok = if ok then "yes" else "no"

let ratio (x: float) = if Double.IsNaN x then "–" else x.ToString("F2")

let mib (x: float) = if Double.IsNaN x then "–" else x.ToString("F0")

let private json =
    let o = JsonSerializerOptions(WriteIndented = true)
    // NaN marks "not measured" (e.g. no peak-memory reset on this kernel); plain JSON has no NaN.
    o.NumberHandling <- JsonNumberHandling.AllowNamedFloatingPointLiterals
    o

/// Writes NAME.md and NAME.json under the output folder; returns their paths.
let save (opts: Options) (name: string) (markdown: string) (data: obj) =
    Directory.CreateDirectory opts.OutDir |> ignore
    let md = Path.Combine(opts.OutDir, name + ".md")
    let js = Path.Combine(opts.OutDir, name + ".json")
    File.WriteAllText(md, markdown + "\n")
    File.WriteAllText(js, JsonSerializer.Serialize(data, json) + "\n")
    md, js

/// Callbacks a benchmark uses to say what it is doing and how much of its work is done.
type Progress =
    { Describe: string -> unit
      Advance: float -> unit }

/// Runs <paramref name="body"/> under a progress bar with ETA when interactive; silently otherwise. Work units are
/// whatever the caller estimates (ideally proportional to time, so the ETA means something).
let withProgress (opts: Options) (title: string) (total: float) (body: Progress -> 'T) : 'T =
    if not opts.Interactive then
        body { Describe = ignore; Advance = ignore }
    else
        AnsiConsole
            .Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(
                TaskDescriptionColumn(),
                ProgressBarColumn(),
                PercentageColumn(),
                ElapsedTimeColumn(),
                RemainingTimeColumn(),
                SpinnerColumn()
            )
            .Start(
                Func<ProgressContext, 'T>(fun ctx ->
                    let task = ctx.AddTask(Markup.Escape title, true, total)
                    body
                        { Describe = fun d -> task.Description <- Markup.Escape($"{title}: {d}")
                          Advance = fun n -> task.Increment n })
            )
