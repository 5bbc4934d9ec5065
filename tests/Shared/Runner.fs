/// Runs an Expecto suite as an executable and ends with the one plain line CI sums: `N passed, N failed, N skipped`.
/// (Expecto's own summary carries colours and its own wording; there is no `dotnet test` adapter here.)
module Mpo.Tests.Runner

open Expecto
open Expecto.Impl

let run (argv: string[]) (tests: Test) =
    let plainSummary (summary: TestRunSummary) =
        // errored tests count as failed: either way the suite did not hold.
        let failed = summary.failed.Length + summary.errored.Length
        printfn "%d passed, %d failed, %d skipped" summary.passed.Length failed summary.ignored.Length
    let config =
        { defaultConfig with
            printer =
                { defaultConfig.printer with
                    summary = fun cfg summary -> async {
                        do! defaultConfig.printer.summary cfg summary
                        plainSummary summary } } }
    runTestsWithCLIArgs [ CLIArguments.Printer config.printer; CLIArguments.No_Spinner ] argv tests
