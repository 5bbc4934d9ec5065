module Mpo.Experiments.Tests.TablesTests

open Expecto
open Mpo.Experiments.Reports

[<Tests>]
let tests =
    testList "Reports.Tables" [
        test "markdown: aligned columns, numbers right-aligned, a rule row" {
            let t = Tables.markdown [ "name"; "params" ] [ [ "a"; "1,000" ]; [ "bb"; "7" ] ]
            Expect.equal t "| name | params |\n|------|-------:|\n| a    |  1,000 |\n| bb   |      7 |" "table" }
        test "a row with the wrong number of cells is refused" {
            Expect.throwsT<System.ArgumentException> (fun () -> Tables.markdown [ "a"; "b" ] [ [ "1" ] ] |> ignore) "ragged" }
    ]
