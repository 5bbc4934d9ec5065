module Mpo.Core.Tests.FactorizationTests

open System
open Expecto
open Mpo.Decomposition
open Mpo.Core.Tests.Support

let bonds (rows: int list) (cols: int list) = MpoFactorization(List.toArray rows, List.toArray cols).FullBonds() |> List.ofArray

[<Tests>]
let tests =
    testList "Decomposition.Factorization" [
        testList "full bonds and sizes reproduce the MPOP shape tables (spec §3.8)" [
            test "ALBERT word embedding [5,10,10,10,6]x[2,2,4,4,2]" {
                Expect.equal (bonds [5;10;10;10;6] [2;2;4;4;2]) [1;10;200;480;12;1] "bonds"
                let f = MpoFactorization([|5;10;10;10;6|], [|2;2;4;4;2|])
                Expect.equal (f.CoreSizes(f.FullBonds()) |> List.ofArray) [100L; 40_000L; 3_840_000L; 230_400L; 144L] "core sizes"
                Expect.equal (f.ParameterCount(f.FullBonds())) 4_110_644L "ALBERT embedding total" }
            test "FFN 3072x768 [4,4,8,6,4]x[3,4,4,4,4]" {
                let f = MpoFactorization([|4;4;8;6;4|], [|3;4;4;4;4|])
                Expect.equal (f.FullBonds() |> List.ofArray) [1;12;192;384;16;1] "bonds"
                Expect.equal (f.CentralParameterCount(f.FullBonds())) 2_359_296L "central"
                Expect.equal (f.ParameterCount(f.FullBonds()) - 2_359_296L) 184_720L "auxiliary"
                Expect.equal f.CentralIndex 2 "central index" }
            test "FFN 768x3072 [3,4,4,4,4]x[4,4,8,6,4] (the issue's paper size)" {
                let f = MpoFactorization([|3;4;4;4;4|], [|4;4;8;6;4|])
                Expect.equal (f.CentralParameterCount(f.FullBonds())) 2_359_296L "central"
                Expect.equal (f.ParameterCount(f.FullBonds()) - f.CentralParameterCount(f.FullBonds())) 184_720L "auxiliary" }
            test "attention 768x768 balanced and code-default shapes" {
                Expect.equal (bonds [3;4;4;4;4] [4;4;4;4;3]) [1;12;192;192;12;1] "balanced"
                Expect.equal (bonds [4;4;4;4;3] [4;4;4;4;3]) [1;16;256;144;9;1] "code default"
                let f = MpoFactorization([|3;4;4;4;4|], [|4;4;4;4;3|])
                Expect.equal (f.ParameterCount(f.FullBonds())) 663_840L "balanced total" }
            test "BERT FFN in (MPOE repo) and 1024-dim shapes" {
                Expect.equal (bonds [8;4;4;4;6] [3;4;4;4;4]) [1;24;384;384;24;1] "BERT FFN in"
                Expect.equal (bonds [4;4;8;8;4] [4;4;4;4;4]) [1;16;256;512;16;1] "4096x1024"
                Expect.equal (bonds [4;4;4;4;4] [4;4;4;4;4]) [1;16;256;256;16;1] "1024x1024" }
        ]
        testList "chooser" [
            test "reproduces the papers' factors for 768, 1024, 3072, 4096 (and ALBERT's 30000, 128)" {
                let f d = FactorizationChooser.Factor(d) |> List.ofArray
                Expect.equal (f 768) [3;4;4;4;4] "768"
                Expect.equal (f 1024) [4;4;4;4;4] "1024"
                Expect.equal (f 3072) [4;4;8;6;4] "3072"
                Expect.equal (f 4096) [4;4;8;8;4] "4096"
                Expect.equal (f 30000) [5;10;10;10;6] "30000"
                Expect.equal (f 128) [2;2;4;4;2] "128" }
            test "pads BERT's vocabulary 30522 to 30720 with the MPOE-code factors" {
                Expect.equal (FactorizationChooser.PaddedSize 30522) 30720 "padded size"
                Expect.equal (FactorizationChooser.Factor 30522 |> List.ofArray) [6;8;10;8;8] "factors"
                let f = FactorizationChooser.Choose(30522, 768)
                Expect.equal (f.Rows, f.PaddedRows, f.Cols, f.PaddedCols) (30522, 30720, 768, 768) "padding only on rows" }
            test "square matrices get mirrored column factors (balanced bonds)" {
                let f = FactorizationChooser.Choose(768, 768)
                Expect.equal (List.ofSeq f.RowFactors, List.ofSeq f.ColFactors) ([3;4;4;4;4], [4;4;4;4;3]) "MPOP appendix 768x768"
                Expect.equal (f.FullBonds() |> List.ofArray) [1;12;192;192;12;1] "symmetric bonds" }
            test "FFN matrices: the chooser's factorization is the paper's" {
                let f = FactorizationChooser.Choose(3072, 768)
                Expect.equal (List.ofSeq f.RowFactors, List.ofSeq f.ColFactors) ([4;4;8;6;4], [3;4;4;4;4]) "3072x768" }
            testPropertyWithConfig (properties 200) "any size, any n: factors multiply to a size ≥ D, within 2D, centre-heavy" <| fun (d: int) (n: int) ->
                let d = 1 + abs d % 100_000
                let n = 2 + abs n % 6
                let factors = FactorizationChooser.Factor(d, n)
                let product = factors |> Array.fold (fun a f -> a * int64 f) 1L
                Expect.equal factors.Length n "n factors"
                Expect.isTrue (product >= int64 d && product <= 2L * int64 d + 16L) $"product {product} for {d}"
                // the largest factor sits at the centre
                Expect.equal factors.[(n - 1) / 2] (Array.max factors) "largest in the middle"
            testPropertyWithConfig (properties 100) "the central tensor holds the most parameters at full bonds" <| fun (r: int) (c: int) ->
                let rows, cols = 16 + abs r % 5000, 16 + abs c % 5000
                let f = FactorizationChooser.Choose(rows, cols)
                let sizes = f.CoreSizes(f.FullBonds())
                Expect.equal sizes.[f.CentralIndex] (Array.max sizes) "central is the largest core"
        ]
        testList "bad input names the argument" [
            test "factors whose product differs from the dimension" {
                Expect.throwsT<ArgumentException> (fun () -> MpoFactorization.Exact(768, 768, [|3;4;4;4;4|], [|4;4;4;4;4|]) |> ignore) "product 1024 ≠ 768" }
            test "messages say what is wrong" {
                let check f (fragment: string) =
                    try f () |> ignore; failtest "expected an ArgumentException"
                    with :? ArgumentException as e -> Expect.stringContains e.Message fragment "message"
                check (fun () -> MpoFactorization.Exact(768, 768, [|3;4;4;4;4|], [|4;4;4;4;4|])) "multiply to 1024, not to the 768 columns"
                check (fun () -> MpoFactorization([|768|], [|768|])) "at least 2 cores"
                check (fun () -> MpoFactorization([|3;4|], [|4;4;4|])) "same length"
                check (fun () -> MpoFactorization([|3;4|], [|4;4|], rows = 13)) "cannot hold 13 rows"
                let f = MpoFactorization([|4;4;8;6;4|], [|3;4;4;4;4|])
                check (fun () -> f.CheckBonds([|1;12;500;384;16;1|])) "bond 2 asks for dimension 500" }
        ]
    ]
