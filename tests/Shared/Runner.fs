/// Runs an Expecto suite as an executable and ends with the one plain line CI sums: `N passed, N failed, N skipped`.
/// (Expecto's own summary carries colours and its own wording; there is no `dotnet test` adapter here.)
module Mpo.Tests.Runner

open System
open Expecto
open Expecto.Impl

let run (argv: string[]) (tests: Test) =
    let mutable counts = None
    let config =
        { defaultConfig.printer with
            summary = fun cfg summary -> async {
                do! defaultConfig.printer.summary cfg summary
                // errored tests count as failed: either way the suite did not hold.
                counts <- Some (summary.passed.Length, summary.failed.Length + summary.errored.Length, summary.ignored.Length) } }
    let exitCode = runTestsWithCLIArgs [ CLIArguments.Printer config; CLIArguments.No_Spinner ] argv tests
    // Printed after Expecto has finished writing (its logger ends lines with colour resets).
    Console.Out.Flush()
    match counts with
    | Some (passed, failed, skipped) -> Console.Out.Write(sprintf "\n%d passed, %d failed, %d skipped\n" passed failed skipped)
    | None -> ()
    Console.Out.Flush()
    exitCode
