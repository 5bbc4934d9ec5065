module Mpo.Core.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    testList "Mpo.Core" [
        testCase "torch loads" (fun () ->
            let s = TorchSharp.torch.linalg.svd(TorchSharp.torch.eye(3L), fullMatrices = false)
            let struct (_, sv, _) = s
            Expect.floatClose Accuracy.high (sv.sum().item<float32>() |> float) 3.0 "svd of identity")
    ]
    |> Mpo.Tests.Runner.run argv
