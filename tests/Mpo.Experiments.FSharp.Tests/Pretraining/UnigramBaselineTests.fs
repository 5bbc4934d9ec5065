module Mpo.Experiments.Tests.Pretraining.UnigramBaselineTests

open Expecto
open Mpo.Experiments.Pretraining

[<Tests>]
let tests =
    testList "Pretraining.UnigramBaseline" [
        test "uniform counts give perplexity = vocabulary size" {
            let u = UnigramBaseline.fit 4 [ 0L; 1L; 2L; 3L; 0L; 1L; 2L; 3L ]
            Expect.floatClose Accuracy.veryHigh (UnigramBaseline.perplexity u [ 0L; 3L; 2L ]) 4.0 "uniform"
        }
        test "add-one smoothing by hand" {
            // counts [3, 1, 0], N = 4, V = 3: p = [4/7, 2/7, 1/7]
            let u = UnigramBaseline.fit 3 [ 0L; 0L; 0L; 1L ]
            let expected = -(log (4.0 / 7.0) + log (1.0 / 7.0)) / 2.0
            Expect.floatClose Accuracy.veryHigh (UnigramBaseline.crossEntropy u [ 0L; 2L ]) expected "mean NLL"
        }
        test "frequencies beat uniform on text drawn from them (Gibbs' inequality)" {
            let rng = System.Random 7
            let draw () = [ for _ in 1 .. 5000 -> if rng.NextDouble() < 0.7 then 0L else int64 (rng.Next(1, 10)) ]
            let u = UnigramBaseline.fit 10 (draw ())
            Expect.isLessThan (UnigramBaseline.perplexity u (draw ())) 10.0 "below the uniform perplexity"
        }
        test "ids outside the vocabulary are rejected, naming the id" {
            Expect.throwsC (fun () -> UnigramBaseline.fit 3 [ 0L; 5L ] |> ignore)
                (fun e -> Expect.stringContains e.Message "token id 5" "message")
        }
    ]
