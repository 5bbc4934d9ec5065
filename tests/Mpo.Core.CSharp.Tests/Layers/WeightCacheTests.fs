module Mpo.Core.Tests.WeightCacheTests

// The inference weight cache must never serve a stale weight: after every way a core can change (an optimizer step,
// copy_, load_state_dict, truncation, loading cores, a dtype move) the cached-path output is compared with the
// factorized contraction (core by core, no dense weight at all), an independent way to compute the same layer.

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Layers
open Mpo.Experts
open Mpo.Training
open Mpo.Core.Tests.Support

let private s (x: float) = Scalar.op_Implicit x

/// An in-place write made outside autograd, as an optimizer or a user editing weights makes it.
let private underNoGrad (write: unit -> torch.Tensor) =
    use _ = torch.no_grad()
    write () |> ignore

let private f = MpoFactorization([| 2; 3; 2 |], [| 2; 2; 3 |])

/// The layer's output on the cached path (Auto, inference) and on the factorized path, both without gradient.
let private bothPaths (layer: MpoLinear) (x: torch.Tensor) =
    use _ = torch.no_grad()
    layer.Path <- ContractionPath.Auto
    let cached = layer.forward x
    layer.Path <- ContractionPath.Factorized
    let factorized = layer.forward x
    layer.Path <- ContractionPath.Auto
    cached, factorized

let private expectFresh (layer: MpoLinear) (x: torch.Tensor) what =
    let cached, factorized = bothPaths layer x
    Expect.isLessThan (relativeError cached factorized) 1e-10 $"cached output = factorized contraction after {what}"

[<Tests>]
let tests =
    testList "Layers.WeightCache" [
        test "libtorch's version counter is readable here and counts every in-place write" {
            // If this fails, inference silently falls back to contracting on every call: slow, not wrong.
            Expect.isTrue WeightCache.Supported "at::_ops::_version::call resolved"
            use p = new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32)
            let v0 = TensorVersion.Of p
            use _ = torch.no_grad()
            p.add_(s 1.0) |> ignore
            let v1 = TensorVersion.Of p
            p.copy_(torch.ones(3L, 4L)) |> ignore
            let v2 = TensorVersion.Of p
            p.detach().mul_(s 2.0) |> ignore   // through an alias: the counter is shared
            let v3 = TensorVersion.Of p
            Expect.isTrue (v0 < v1 && v1 < v2 && v2 < v3) $"versions {v0} < {v1} < {v2} < {v3}"
            use q = torch.ones(3L, 4L)
            let before = TensorVersion.Of q
            use _ = q + q
            Expect.equal (TensorVersion.Of q) before "an out-of-place op leaves the counter" }

        test "a cache builds once while its tensors are unchanged and again after any write" {
            use a = gaussian 2 [ 4L; 4L ] torch.float64
            use b = gaussian 3 [ 4L; 4L ] torch.float64
            use cache = new WeightCache()
            let mutable builds = 0
            let build () = builds <- builds + 1; a.matmul b
            let w1 = cache.Get([| a; b |], build)
            let w2 = cache.Get([| a; b |], build)
            Expect.equal builds 1 "second call served from the cache"
            Expect.isTrue (Object.ReferenceEquals(w1, w2)) "same tensor"
            underNoGrad (fun () -> b.mul_(s 2.0))
            let w3 = cache.Get([| a; b |], build)
            Expect.equal builds 2 "rebuilt after b.mul_"
            Expect.isLessThan (relativeError w3 (a.matmul b)) 1e-15 "the new product"
            use b2 = b.clone()
            cache.Get([| a; b2 |], build) |> ignore
            Expect.equal builds 3 "another tensor object (equal values) is another source"
            Expect.isFalse (cache.Get([| a; b2 |], build).requires_grad) "built without gradient" }

        test "MpoLinear: inference reuses the weight, and every way the cores change invalidates it" {
            use dense = gaussian 4 [ 12L; 12L ] torch.float64
            use bias = gaussian 5 [ 12L ] torch.float64
            use layer = MpoLinear.FromWeight(dense, bias, f)
            use x = gaussian 6 [ 5L; 12L ] torch.float64
            expectFresh layer x "construction"
            // training forward + project AdamW step (grad mode on: contracts with gradient, drops the cache)
            layer.train()
            use opt = new AdamW([ ParameterGroup("g", 0.05, 0.0, [| for i, c in Seq.indexed layer.Cores -> $"c{i}", c |]) ])
            let loss = (layer.forward x).square().sum()
            loss.backward()
            Expect.isNotNull layer.Central.grad "the training call reached the cores"
            opt.Step()
            layer.eval()
            expectFresh layer x "an AdamW step"
            // load_state_dict of another layer's values, in eval mode
            use other = MpoLinear.FromWeight(gaussian 7 [ 12L; 12L ] torch.float64, bias, f)
            layer.load_state_dict(other.state_dict()) |> ignore
            expectFresh layer x "load_state_dict"
            let cached, _ = bothPaths layer x
            use reference = x.matmul((other.Weight()).t()) + bias
            Expect.isLessThan (relativeError cached reference) 1e-10 "the loaded weights, not the old ones"
            // in-place writes under no_grad, truncation, loading cores
            underNoGrad (fun () -> layer.Central.mul_(s 0.5))
            expectFresh layer x "central.mul_"
            layer.Truncate(TruncationSpec.MaxBond 2) |> ignore
            expectFresh layer x "Truncate"
            layer.LoadCores([| for c in other.Cores -> c :> torch.Tensor |])
            expectFresh layer x "LoadCores"
            // a dtype move makes new parameter objects
            layer.``to``(torch.float32) |> ignore
            use x32 = x.``to``(torch.float32)
            let cached, factorized = bothPaths layer x32
            Expect.equal cached.dtype torch.float32 "cached weight moved with the layer"
            Expect.isLessThan (relativeError cached factorized) 1e-5 "after .to(float32)" }

        test "frozen cores with grad mode on: the cached weight still passes the gradient to the input and the bias" {
            use dense = gaussian 8 [ 12L; 12L ] torch.float64
            use layer = MpoLinear.FromWeight(dense, gaussian 9 [ 12L ] torch.float64, f)
            for c in layer.Cores do c.requires_grad <- false
            use x = (gaussian 10 [ 3L; 12L ] torch.float64).requires_grad_(true)
            (layer.forward x).sum().backward()
            use w = layer.Weight()
            use expected = torch.ones(3L, 12L, dtype = torch.float64).matmul(w)
            Expect.isLessThan (relativeError x.grad expected) 1e-10 "dL/dx = 1·W"
            Expect.isLessThan (relativeError layer.Bias.grad (torch.full([| 12L |], s 3.0, dtype = torch.float64))) 1e-12 "dL/db = 3" }

        test "MpoEmbedding: cached lookups equal per-row contraction after a write to the cores" {
            use table = gaussian 11 [ 61L; 24L ] torch.float64
            use layer = MpoEmbedding.FromWeight(table, FactorizationChooser.Choose(61, 24, 3))
            use ids = torch.tensor([| 0L; 60L; 3L; 3L; 42L |])
            let check what =
                use _ = torch.no_grad()
                layer.Path <- ContractionPath.Auto
                use cached = layer.forward ids
                layer.Path <- ContractionPath.Factorized
                use rows = layer.forward ids
                layer.Path <- ContractionPath.Auto
                Expect.isLessThan (relativeError cached rows) 1e-10 what
            check "construction"
            check "second call (cached)"
            underNoGrad (fun () -> (Seq.head layer.Auxiliary).add_(s 0.1))
            check "after aux0.add_" }

        test "MPO experts: each expert's cached weight follows a write to the shared central tensor" {
            use dense = gaussian 12 [ 12L; 12L ] torch.float64
            use source = MpoLinear.FromWeight(dense, null, f)
            use experts = MpoExpertMatrices.Upcycle(source.Cores |> Seq.map (fun c -> c :> torch.Tensor) |> Array.ofSeq, f, null, 3)
            use _ = torch.no_grad()
            use x = gaussian 13 [ 4L; 12L ] torch.float64
            // cached outputs of every expert first, then the factorized ones (a non-cached call drops the caches)
            let check what =
                experts.Path <- ContractionPath.Auto
                let cached = [ for e in 0 .. 2 -> experts.Forward(e, x) ]
                experts.Path <- ContractionPath.Factorized
                let factorized = [ for e in 0 .. 2 -> experts.Forward(e, x) ]
                experts.Path <- ContractionPath.Auto
                for e in 0 .. 2 do
                    Expect.isLessThan (relativeError cached.[e] factorized.[e]) 1e-10 $"expert {e}: {what}"
            let populate () = for e in 0 .. 2 do experts.Forward(e, x).Dispose()
            check "upcycled"
            populate ()
            experts.Central.mul_(s 1.5) |> ignore
            check "after central.mul_ (shared by all)"
            populate ()
            experts.Cores(1).[0].add_(s 0.2) |> ignore
            check "after expert 1's aux0.add_ (its own)" }
    ]
