/// `mpo count`: MPOP's published counts from configurations alone, peft's line, and bad input (exit code 2, named).
module Mpo.Experiments.Tests.CountTests

open System.IO
open Expecto
open Mpo.Experiments.Tests.Support

let albert = repoFile "data/configs/models/albert-base-v2.json"

let lastLine (text: string) = text.TrimEnd().Split('\n') |> Array.last

[<Tests>]
let tests =
    testSequenced <| testList "Cli.count" [
        test "ALBERT-base-v2: plain, MPOP_full+LFA with the appendix shapes, and a tuner file (the WNLI script's caps)" {
            let plain = mpo "." [ "count"; "--config"; albert ]
            Expect.equal plain.Code 0 plain.Err
            Expect.equal (lastLine plain.Out) "trainable params: 11,685,122 || all params: 11,685,122 || trainable%: 100.0000" "ALBERT_rep"
            let full = mpo "." [ "count"; "--config"; albert; "--mpo"; "mpop-albert" ]
            Expect.equal full.Code 0 full.Err
            Expect.equal (lastLine full.Out) "trainable params: 1,187,574 || all params: 12,695,286 || trainable%: 9.3544" "MPOP_full+LFA"
            Expect.stringContains full.Out "| word_embedding   |        1 | 30000×128 | [5,10,10,10,6] x [2,2,4,4,2] | [1,10,200,480,12,1] |" "the table names factors and bonds"
            let wnli = mpo "." [ "count"; "--config"; albert; "--mpo"; repoFile "data/configs/mpop/albert-code-wnli.json" ]
            Expect.equal (lastLine wnli.Out) "trainable params: 552,147 || all params: 2,484,331 || trainable%: 22.2252" "WNLI caps" }

        test "MPOE's T5-base totals from the configuration alone: MPOE n = 4, 8, 16 and dense 8-expert Switch, routers apart" {
            let t5 = repoFile "data/configs/models/t5-base.json"
            for kind, n, total, routers in [ "mpoe", 4, "258,369,792", "73,824"; "mpoe", 8, "293,836,032", "147,648"; "mpoe", 16, "364,768,512", "295,296"
                                             "switch", 8, "1,015,627,008", "147,456"; "moe", 8, "1,015,627,008", "147,456" ] do
                let run = mpo "." [ "count"; "--config"; t5; "--moe"; kind; "--experts"; string n ]
                Expect.equal run.Code 0 run.Err
                Expect.stringContains run.Out $"without routers: {total} parameters; routers: {routers}" $"{kind} n = {n}"
            let table = mpo "." [ "count"; "--config"; t5; "--moe"; "mpoe"; "--experts"; "8" ]
            Expect.stringContains table.Out "| mpo experts × 8 |     24 | 113,246,208 | 147,648 |    113,246,208 |   70,932,480 | 184,326,336 |" "per-role table"
            Expect.equal (lastLine table.Out) "trainable params: 293,983,680 || all params: 293,983,680 || trainable%: 100.0000" "peft's line counts the routers" }

        test "MPOE without parameter sharing (Table 3's w/o PS): --no-share-central adds (n − 1) central tensors of 2,359,296 per FFN matrix" {
            let t5 = repoFile "data/configs/models/t5-base.json"
            let withoutRouters (out: string) =
                let line = out.Split('\n') |> Array.find (fun l -> l.StartsWith "without routers: ")
                int64 (line.Split(' ').[2].Replace(",", ""))
            for n in [ 4; 8 ] do
                let shared = mpo "." [ "count"; "--config"; t5; "--moe"; "mpoe"; "--experts"; string n ]
                let unshared = mpo "." [ "count"; "--config"; t5; "--moe"; "mpoe"; "--experts"; string n; "--no-share-central" ]
                Expect.equal unshared.Code 0 unshared.Err
                // at full bonds a central tensor holds as many parameters as the matrix (spec §5.4); 48 FFN matrices
                Expect.equal (withoutRouters unshared.Out) (withoutRouters shared.Out + int64 (n - 1) * 48L * 2_359_296L) $"n = {n}"
            let eight = mpo "." [ "count"; "--config"; t5; "--moe"; "mpoe"; "--experts"; "8"; "--no-share-central" ]
            Expect.stringContains eight.Out "without routers: 1,086,559,488 parameters; routers: 147,648" "T5-base, 8 unshared MPO experts"
            Expect.stringContains eight.Out "| mpo-unshared experts × 8 |     24 | 113,246,208 | 147,648 |              0 |" "no shared central in the table"
            Expect.stringContains eight.Out "each owning its central tensor" "the MoE line says so" }

        testList "bad input: exit code 2, naming the file, field or argument" [
            let case name (args: string -> string list) (fragment: string -> string) =
                test name {
                    inTempDir (fun dir ->
                        let run = mpo dir ("count" :: args dir)
                        Expect.equal run.Code 2 $"exit code 2; stdout {run.Out} stderr {run.Err}"
                        Expect.stringContains run.Err (fragment dir) "named") }
            case "no such config" (fun _ -> [ "--config"; "nope/config.json" ]) (fun _ -> "nope/config.json")
            case "MobileBERT is not a family Mpo builds" (fun _ -> [ "--config"; repoFile "data/configs/models/mobilebert-uncased.json" ]) (fun _ -> "unknown architecture 'mobilebert'")
            case "unknown preset" (fun _ -> [ "--config"; albert; "--mpo"; "mpop-roberta" ]) (fun _ -> "mpop-roberta")
            case "a tuner file with a misspelt field" (fun d ->
                File.WriteAllText(Path.Combine(d, "t.json"), """{"preset": "mpop-albert", "truncaton": {}}""")
                [ "--config"; albert; "--mpo"; Path.Combine(d, "t.json") ]) (fun d -> "'truncaton'")
            case "factors that fit no module" (fun _ -> [ "--config"; albert; "--mpo"; "mpop-bert" ]) (fun _ -> "albert.embeddings.word_embeddings")
            case "zero labels" (fun _ -> [ "--config"; albert; "--labels"; "0" ]) (fun _ -> "--labels")
            case "an unknown MoE method" (fun _ -> [ "--config"; albert; "--moe"; "mixtral" ]) (fun _ -> "--moe")
            case "--experts without --moe" (fun _ -> [ "--config"; albert; "--experts"; "4" ]) (fun _ -> "--experts")
            case "zero experts" (fun _ -> [ "--config"; albert; "--moe"; "mpoe"; "--experts"; "0" ]) (fun _ -> "--experts")
            case "--no-share-central on dense experts" (fun _ -> [ "--config"; albert; "--moe"; "switch"; "--no-share-central" ]) (fun _ -> "--no-share-central is for --moe mpoe")
            case "--no-share-central without --moe" (fun _ -> [ "--config"; albert; "--no-share-central" ]) (fun _ -> "--no-share-central needs --moe mpoe")
        ]
    ]
