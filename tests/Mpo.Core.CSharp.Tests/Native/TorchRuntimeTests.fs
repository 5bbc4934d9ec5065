module Mpo.Core.Tests.TorchRuntimeTests

open Expecto
open TorchSharp

[<Tests>]
let tests =
    testList "Native" [
        testCase "libtorch loads and computes an SVD" (fun () ->
            let struct (_, s, _) = torch.linalg.svd(torch.eye(3L, dtype = torch.float64), fullMatrices = false)
            Expect.floatClose Accuracy.high (s.sum().item<double>()) 3.0 "singular values of I3 sum to 3")
    ]
