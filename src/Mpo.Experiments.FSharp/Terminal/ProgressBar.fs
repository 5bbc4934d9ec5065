/// Progress for long work: a bar with ETA on an interactive terminal, nothing in CI or when output is redirected
/// (logs stay readable, tests stay quiet).
module Mpo.Experiments.Terminal.ProgressBar

open System
open Spectre.Console

/// True when a person is watching: stdout is a terminal and CI is not set.
let interactive () =
    not Console.IsOutputRedirected && String.IsNullOrEmpty(Environment.GetEnvironmentVariable "CI")

/// Runs <c>work</c> over <c>items</c> in order, showing "<title>: <label of current item>" with a bar and ETA.
let map (title: string) (label: 'a -> string) (work: 'a -> 'b) (items: 'a list) : 'b list =
    if not (interactive ()) || List.length items < 2 then List.map work items
    else
        let results = ResizeArray()
        AnsiConsole
            .Progress()
            .AutoClear(true)
            .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn())
            .Start(fun ctx ->
                let task = ctx.AddTask(title, maxValue = float (List.length items))
                for item in items do
                    task.Description <- $"{title}: {Markup.Escape(label item)}"
                    results.Add(work item)
                    task.Increment 1.0)
        List.ofSeq results

/// Runs <c>work</c>, giving it <c>report done description</c> to move a bar of <c>total</c> units with ETA; when nobody
/// watches, <c>report</c> does nothing and the caller logs what matters itself.
let track (title: string) (total: float) (work: (float -> string -> unit) -> 'r) : 'r =
    if not (interactive ()) then work (fun _ _ -> ())
    else
        let mutable result = Unchecked.defaultof<'r>
        AnsiConsole
            .Progress()
            .AutoClear(true)
            .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn())
            .Start(fun ctx ->
                let task = ctx.AddTask(title, maxValue = total)
                result <- work (fun finished description ->
                    task.Value <- finished
                    task.Description <- $"{title}: {Markup.Escape description}"))
        result

/// Progress of items that run side by side (trials): one bar for the whole — items done of the total, with ETA — and
/// one bar per running item. Safe to call from any thread.
type Board =
    abstract Started: key: string -> unit
    abstract Progress: key: string * fraction: float * text: string -> unit
    /// The item is done; <c>line</c> says how it went (printed as "[done/total] line (ETA …)" when nobody watches).
    abstract Finished: key: string * line: string -> unit

/// "[3/8] … (elapsed 1:02, ETA 1:43)": elapsed time per finished item times the items left.
let private eta (elapsed: TimeSpan) (finished: int) (total: int) =
    let show (t: TimeSpan) = if t.TotalHours >= 1.0 then t.ToString(@"h\:mm\:ss") else t.ToString(@"m\:ss")
    if finished = 0 || finished >= total then sprintf "elapsed %s" (show elapsed)
    else sprintf "elapsed %s, ETA %s" (show elapsed) (show (TimeSpan.FromSeconds(elapsed.TotalSeconds / float finished * float (total - finished))))

/// Runs <c>work</c> with a board of <c>total</c> items titled <c>title</c>.
let board (title: string) (total: int) (work: Board -> 'r) : 'r =
    let clock = Diagnostics.Stopwatch.StartNew()
    let gate = obj ()
    let mutable finished = 0
    if not (interactive ()) then
        work
            { new Board with
                member _.Started _ = ()
                member _.Progress(_, _, _) = ()
                member _.Finished(_, line) =
                    lock gate (fun () ->
                        finished <- finished + 1
                        printfn "[%d/%d] %s (%s)" finished total line (eta clock.Elapsed finished total)) }
    else
        let mutable result = Unchecked.defaultof<'r>
        AnsiConsole
            .Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn())
            .Start(fun ctx ->
                let whole = ctx.AddTask($"{Markup.Escape title}: 0/{total} trials", maxValue = float (max 1 total))
                let running = Collections.Generic.Dictionary<string, ProgressTask>()
                result <-
                    work
                        { new Board with
                            member _.Started key =
                                lock gate (fun () -> running.[key] <- ctx.AddTask(Markup.Escape key, maxValue = 1.0))
                            member _.Progress(key, fraction, text) =
                                lock gate (fun () ->
                                    match running.TryGetValue key with
                                    | true, t ->
                                        t.Value <- min 1.0 fraction
                                        t.Description <- $"{Markup.Escape key}: {Markup.Escape text}"
                                    | _ -> ())
                            member _.Finished(key, line) =
                                lock gate (fun () ->
                                    finished <- finished + 1
                                    match running.TryGetValue key with
                                    | true, t -> t.Value <- 1.0; t.StopTask(); running.Remove key |> ignore
                                    | _ -> ()
                                    whole.Increment 1.0
                                    whole.Description <- $"{Markup.Escape title}: {finished}/{total} trials"
                                    AnsiConsole.MarkupLine(Markup.Escape(sprintf "[%d/%d] %s" finished total line))) })
        result
