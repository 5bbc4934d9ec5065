module Mpo.Core.Tests.GradientClippingTests

open Expecto
open TorchSharp
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TrainingProblems

let globalNorm (gs: torch.Tensor list) =
    gs |> List.sumBy (fun g -> g.``to``(torch.float64).square().sum().ToDouble()) |> sqrt

[<Tests>]
let tests =
    testList "Training.GradientClipping" [
        test "above the bound: returns the norm before clipping, scales all gradients alike to the bound" {
            let grads = [ gaussian 1 [ 3L; 4L ] torch.float32 * torch.tensor(10.0f); gaussian 2 [ 5L ] torch.float32 ]
            let originals = grads |> List.map (fun g -> g.clone())
            let before = globalNorm grads
            let reported = GradientClipping.ClipByGlobalNorm(grads |> ResizeArray, 1.0)
            expectClose 1e-6 reported before "reported norm is the pre-clip global norm"
            let after = globalNorm grads
            Expect.isLessThanOrEqual after 1.0 "global norm within the bound"
            expectClose 1e-5 after (1.0 * before / (before + 1e-6)) "scaled to max_norm / (norm + 1e-6)"
            for g, o in List.zip grads originals do
                expectClose 1e-6 (g.``to``(torch.float64).div(o.``to``(torch.float64)).mean().ToDouble()) (after / before) "same factor for every gradient"
        }

        test "below the bound, or with clipping off, gradients are unchanged bit for bit" {
            let grads = [ gaussian 3 [ 4L ] torch.float32 * torch.tensor(0.01f) ]
            let original = grads.[0].clone()
            let reported = GradientClipping.ClipByGlobalNorm(ResizeArray grads, 1.0)
            expectClose 1e-6 reported (globalNorm [ original ]) "norm reported"
            Expect.isTrue (bitwise grads.[0] original) "untouched below the bound"
            let big = [ gaussian 4 [ 4L ] torch.float32 * torch.tensor(100.0f) ]
            let bigOriginal = big.[0].clone()
            GradientClipping.ClipByGlobalNorm(ResizeArray big, 0.0) |> ignore
            Expect.isTrue (bitwise big.[0] bigOriginal) "maxNorm 0 only measures"
        }
    ]
