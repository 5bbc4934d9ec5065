/// The rebuild-again-in-backward linear map against autograd through the plain rebuild: same outputs, same gradients
/// (x, bias, every core; none for a frozen one), no tensors left behind, none kept in the caller's scope by backward.
module Mpo.Core.Tests.RecomputedContractionTests

open Expecto
open TorchSharp
open Mpo.Contraction
open Mpo.Decomposition
open Mpo.Core.Tests.Support

let private leaf (t: Tensor) (grad: bool) = t.detach().clone().requires_grad_(grad)

/// Cores of a random MPO of `f` (float64) and a random input, bias and output weighting.
let private problem (f: MpoFactorization) (seed: int) (tokens: int64) =
    let bonds = f.FullBonds()
    let cores = [ for k in 0 .. f.CoreCount - 1 -> gaussian (seed + k) (List.ofArray (f.CoreShape(k, bonds))) torch.float64 ]
    let x = gaussian (seed + 50) [ 3L; tokens; int64 f.Cols ] torch.float64
    let b = gaussian (seed + 60) [ int64 f.Rows ] torch.float64
    let r = gaussian (seed + 70) [ 3L; tokens; int64 f.Rows ] torch.float64
    cores, x, b, r

[<Tests>]
let tests =
    testList "Contraction.Recomputed" [
        test "outputs bit for bit and gradients to round-off equal autograd through the rebuild (padding, biases, a frozen core)" {
            for f in [ MpoFactorization([| 2; 3; 2 |], [| 2; 2; 3 |]); MpoFactorization([| 2; 3; 2 |], [| 3; 2; 2 |], rows = 10, cols = 11); MpoFactorization([| 2; 2 |], [| 3; 2 |]) ] do
                for frozen in [ -1; f.CentralIndex ] do
                    for withBias in [ true; false ] do
                        use scope = torch.NewDisposeScope()
                        let cores, x, b, r = problem f 3 5L
                        let run (linear: Tensor -> Tensor list -> Tensor -> Tensor) =
                            let xs = leaf x true
                            let cs = cores |> List.mapi (fun k c -> leaf c (k <> frozen))
                            let bs = leaf b true
                            let y = linear xs cs (if withBias then bs else null)
                            (y * r).sum().backward()
                            y, xs.grad, (if withBias then bs.grad else null), cs |> List.map (fun c -> c.grad)
                        let y1, gx1, gb1, gc1 = run (fun x cs b -> MpoContraction.LinearReconstructed(x, Array.ofList cs, f, b))
                        let y2, gx2, gb2, gc2 = run (fun x cs b -> RecomputedContraction.LinearReconstructed(x, Array.ofList cs, f, b))
                        Expect.isTrue (y1.eq(y2).all().item<bool>()) $"{f}: same output"
                        Expect.isLessThan (relativeError gx2 gx1) 1e-12 "input gradient"
                        if withBias then Expect.isLessThan (relativeError gb2 gb1) 1e-12 "bias gradient"
                        List.iteri2 (fun k (a: Tensor) (e: Tensor) ->
                            if k = frozen then Expect.isNull a "a frozen core gets no gradient"
                            else Expect.isLessThan (relativeError a e) 1e-12 $"core {k} gradient") gc2 gc1
        }

        test "repeated steps leave no tensor behind" {
            let f = MpoFactorization([| 2; 3; 2 |], [| 2; 2; 3 |])
            let cores, x, b, r = problem f 9 4L
            let cs = cores |> List.map (fun c -> leaf c true)
            let step () =
                use scope = torch.NewDisposeScope()
                (RecomputedContraction.LinearReconstructed(x, Array.ofList cs, f, b) * r).sum().backward()
                for c in cs do c.grad <- null
            for _ in 1 .. 3 do step ()
            let before = DisposeScopeManager.Statistics.ThreadTotalLiveCount
            for _ in 1 .. 20 do step ()
            Expect.equal DisposeScopeManager.Statistics.ThreadTotalLiveCount before "live tensors flat"
        }
    
        test "backward through many calls keeps no call's tensors in the caller's scope (dW, the cores' gradients, the incoming gradient)" {
            // Each call's dW and central-sized core gradients, left to the scope around backward(), would stay allocated
            // until the whole backward pass ends: with n experts × 2 matrices per MoE layer, n full matrices' worth.
            let f = MpoFactorization([| 2; 3; 2 |], [| 2; 2; 3 |])
            let cores, x, b, r = problem f 11 4L
            let cs = cores |> List.map (fun c -> leaf c true)
            let growth calls =
                use scope = torch.NewDisposeScope()
                let loss = [ for _ in 1 .. calls -> (RecomputedContraction.LinearReconstructed(x, Array.ofList cs, f, b) * r).sum() ] |> List.reduce (+)
                let before = DisposeScopeManager.Statistics.ThreadTotalLiveCount
                loss.backward()
                let after = DisposeScopeManager.Statistics.ThreadTotalLiveCount
                for c in cs do c.grad <- null
                after - before
            growth 1 |> ignore   // the first backward releases what an earlier test's last call handed over
            Expect.equal (growth 1) 0L "one call: nothing left in the caller's scope"
            Expect.equal (growth 12) 0L "12 calls: nothing either (it did not grow with the calls)"
        }
    ]
