module Mpo.Core.Tests.ContractionTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Core.Tests.Support

[<Tests>]
let tests =
    testList "Contraction" [
        test "factorized and reconstruct paths agree with a dense matmul, for random shapes, n and truncations" {
            for seed in 1 .. 12 do
                let rng = Random(seed)
                let f = randomFactorization rng
                use w = gaussian seed [ int64 f.Rows; int64 f.Cols ] torch.float64
                use full = MpoDecomposer.Decompose(w, f)
                use mpo = full.Truncate(TruncationSpec.MaxBond(rng.Next(1, 5)))
                use x = gaussian (seed + 100) [ 3L; 5L; int64 f.Cols ] torch.float64
                use bias = gaussian (seed + 200) [ int64 f.Rows ] torch.float64
                use dense = torch.nn.functional.linear(x, mpo.Reconstruct(), bias)
                use viaRebuild = MpoContraction.LinearReconstructed(x, mpo.Cores, f, bias)
                Expect.isLessThan (relativeError viaRebuild dense) 1e-12 $"seed {seed}: reconstruct path"
                for reverse in [ false; true ] do
                    use viaCores = MpoContraction.LinearFactorized(x, mpo.Cores, f, bias, reverse)
                    Expect.equal (viaCores.shape |> List.ofArray) [ 3L; 5L; int64 f.Rows ] "leading dims kept"
                    Expect.isLessThan (relativeError viaCores dense) 1e-12 $"seed {seed}: factorized path {f}, reverse {reverse}" }

        test "both paths agree on padded factorizations" {
            let f = MpoFactorization([|2;4;4|], [|3;2;4|], rows = 30, cols = 20)
            use w = gaussian 5 [ 30L; 20L ] torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            use x = gaussian 6 [ 7L; 20L ] torch.float64
            use expected = x.matmul(w.t())
            for reverse in [ false; true ] do
                Expect.isLessThan (relativeError (MpoContraction.LinearFactorized(x, mpo.Cores, f, reverse = reverse)) expected) 1e-12 $"factorized, reverse {reverse}"
            Expect.isLessThan (relativeError (MpoContraction.LinearReconstructed(x, mpo.Cores, f)) expected) 1e-12 "reconstruct" }

        test "row lookup without forming W equals gathering rows of W (padded vocabulary)" {
            let f = MpoFactorization([|2;4;4|], [|3;2;4|], rows = 30, cols = 20)
            use w = gaussian 8 [ 30L; 20L ] torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            use ids = torch.tensor([| 0L; 29L; 7L; 7L; 15L; 16L |]).reshape(2L, 3L)
            use rows = MpoContraction.RowsFactorized(ids, mpo.Cores, f)
            use expected = w.index_select(0L, ids.reshape(-1L)).reshape(2L, 3L, 20L)
            Expect.isLessThan (relativeError rows expected) 1e-12 "rows" }

        test "row lookup's core gradients equal those of gathering rows of the rebuilt W (repeated ids, shared prefixes)" {
            // The lookup contracts each distinct row once over a trie of shared digit prefixes; every repeat of an id
            // must still send its own gradient, and rows sharing prefixes must sum theirs into the shared states.
            let f = MpoFactorization([|3;2;4;2|], [|2;2;3;1|], rows = 45, cols = 10)
            use w = gaussian 11 [ 45L; 10L ] torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            use ids = torch.tensor([| 0L; 44L; 7L; 7L; 15L; 16L; 17L; 7L; 40L; 41L; 0L; 23L |]).reshape(3L, 4L)
            use g = gaussian 12 [ 3L; 4L; 10L ] torch.float64
            let grads (rowsOf: torch.Tensor[] -> torch.Tensor) =
                let cores = mpo.Cores |> Seq.map (fun c -> c.detach().clone().requires_grad_(true)) |> Array.ofSeq
                let rows = rowsOf cores
                (rows * g).sum().backward()
                rows.detach(), cores |> Array.map (fun c -> c.grad)
            let rowsA, a = grads (fun cores -> MpoContraction.RowsFactorized(ids, cores, f))
            let rowsB, b = grads (fun cores -> MpoContraction.Reconstruct(cores, f).index_select(0L, ids.reshape(-1L)).reshape(3L, 4L, 10L))
            Expect.isLessThan (relativeError rowsA rowsB) 1e-12 "rows"
            Array.iteri2 (fun k (ga: torch.Tensor) gb -> Expect.isLessThan (relativeError ga gb) 1e-12 $"gradient of core {k}") a b }

        test "gradients of both paths agree" {
            let f = MpoFactorization([|2;3;2|], [|3;2;2|])
            use w = gaussian 9 [ 12L; 12L ] torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            use x = gaussian 10 [ 4L; 12L ] torch.float64
            let grads path =
                let cores = mpo.Cores |> Seq.map (fun c -> c.detach().clone().requires_grad_(true)) |> Array.ofSeq
                let y : torch.Tensor = path x cores
                y.pow(torch.tensor(2.0)).sum().backward()
                cores |> Array.map (fun c -> c.grad)
            let b = grads (fun x cores -> MpoContraction.LinearReconstructed(x, cores, f))
            for reverse in [ false; true ] do
                let a = grads (fun x cores -> MpoContraction.LinearFactorized(x, cores, f, reverse = reverse))
                Array.iter2 (fun (ga: torch.Tensor) gb -> Expect.isLessThan (relativeError ga gb) 1e-10 $"core gradient, reverse {reverse}") a b }
    ]
