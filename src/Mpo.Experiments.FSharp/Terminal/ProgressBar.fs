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
