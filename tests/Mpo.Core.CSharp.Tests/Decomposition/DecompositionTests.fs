module Mpo.Core.Tests.DecompositionTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Core.Tests.Support

let seeds = [ 1 .. 12 ]

[<Tests>]
let tests =
    testList "Decomposition.Decompose" [
        test "full-rank reconstruction: float64 ≤ 1e-10 and float32 ≤ 1e-5 relative, over random shapes and n" {
            for seed in seeds do
                let rng = Random(seed)
                let f = randomFactorization rng
                for dtype, tolerance in [ torch.float64, 1e-10; torch.float32, 1e-5 ] do
                    use w = gaussian seed [ int64 f.Rows; int64 f.Cols ] dtype
                    use mpo = MpoDecomposer.Decompose(w, f)
                    use back = mpo.Reconstruct()
                    Expect.equal back.dtype dtype "cores come back in the caller's dtype"
                    let err = relativeError back w
                    Expect.isLessThanOrEqual err tolerance $"seed {seed} {f} {dtype}: relative error {err}" }

        test "bond dimensions are min(prod left, prod right) of the physical dims" {
            for seed in seeds do
                let f = randomFactorization (Random(seed))
                use w = gaussian seed [ int64 f.Rows; int64 f.Cols ] torch.float64
                use mpo = MpoDecomposer.Decompose(w, f)
                let physical = [ for k in 0 .. f.CoreCount - 1 -> int64 (f.Physical k) ]
                let expected =
                    [ for b in 0 .. f.CoreCount ->
                        if b = 0 || b = f.CoreCount then 1
                        else int (min (List.take b physical |> List.fold (*) 1L) (List.skip b physical |> List.fold (*) 1L)) ]
                Expect.equal (List.ofSeq mpo.Bonds) expected $"seed {seed} {f}"
                for k in 0 .. f.CoreCount - 1 do
                    Expect.equal (mpo.Cores.[k].shape |> List.ofArray) (f.CoreShape(k, mpo.Bonds) |> List.ofArray) $"core {k} shape" }

        test "bond Schmidt values equal the singular values of the matrix unfoldings" {
            for seed in seeds do
                let f = randomFactorization (Random(seed))
                use w = gaussian seed [ int64 f.Rows; int64 f.Cols ] torch.float64
                use mpo = MpoDecomposer.Decompose(w, f)
                for b in 1 .. f.CoreCount - 1 do
                    let expected = singularValues (unfolding w f b)
                    let actual = mpo.Spectra.[b - 1]
                    Expect.equal actual.Length expected.Length $"bond {b} length"
                    for i in 0 .. actual.Length - 1 do
                        expectClose 1e-10 actual.[i] expected.[i] $"seed {seed} bond {b} value {i}" }

        test "canonical gauge: left and right blocks at every bond have Gram matrix diag(λ)" {
            // The defining property of the symmetric gauge (spec §3.3): each side of a bond carries √λ.
            let f = MpoFactorization([|2;3;2;2|], [|2;2;3;2|])
            use w = compressible f 0.7 5 torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            for b in 1 .. f.CoreCount - 1 do
                use scope = torch.NewDisposeScope()
                let mutable left = mpo.Cores.[0].reshape(-1L, mpo.Cores.[0].shape.[3])
                for k in 1 .. b - 1 do left <- left.matmul(mpo.Cores.[k].reshape(mpo.Cores.[k].shape.[0], -1L)).reshape(-1L, mpo.Cores.[k].shape.[3])
                let mutable right = mpo.Cores.[f.CoreCount - 1].reshape(mpo.Cores.[f.CoreCount - 1].shape.[0], -1L)
                for k in f.CoreCount - 2 .. -1 .. b do right <- mpo.Cores.[k].reshape(-1L, mpo.Cores.[k].shape.[3]).matmul(right).reshape(mpo.Cores.[k].shape.[0], -1L)
                let lambda = torch.tensor(mpo.Spectra.[b - 1], dtype = torch.float64)
                Expect.isLessThan (frobenius (left.t().matmul(left)) (torch.diag(lambda))) 1e-10 $"left Gram at bond {b}"
                Expect.isLessThan (frobenius (right.matmul(right.t())) (torch.diag(lambda))) 1e-10 $"right Gram at bond {b}" }

        test "a reproducible gauge: the signs follow one rule, so any cores of the same matrix canonicalize to the same tensors" {
            // The rule, independently: for bond b = 1..n-1 and each index m, the largest-|x| entry of core b-1's slice
            // [..., m] is positive (the first one in row-major order on a tie).
            for seed in seeds do
                let f = randomFactorization (Random(seed))
                use scope = torch.NewDisposeScope()
                let w = compressible f 0.7 seed torch.float64
                use mpo = MpoDecomposer.Decompose(w, f)
                for b in 1 .. f.CoreCount - 1 do
                    let left = mpo.Cores.[b - 1].reshape(-1L, int64 mpo.Bonds.[b]).data<float>().ToArray()
                    let width = mpo.Bonds.[b]
                    for m in 0 .. width - 1 do
                        let column = [| for r in 0 .. left.Length / width - 1 -> left.[r * width + m] |]
                        let largest = column |> Array.maxBy abs
                        let first = column |> Array.find (fun x -> abs x = abs largest)
                        Expect.isGreaterThanOrEqual first 0.0 $"seed {seed} bond {b} index {m}: largest entry positive"
                // another set of cores for the same matrix: every bond gauged by a random invertible matrix
                let moved = Array.ofSeq mpo.Cores |> Array.map (fun c -> c.clone())
                for b in 1 .. f.CoreCount - 1 do
                    let d = int64 mpo.Bonds.[b]
                    let g = torch.eye(d, dtype = torch.float64) + 0.3 * gaussian (seed * 10 + b) [ d; d ] torch.float64
                    let s0 = moved.[b - 1].shape
                    moved.[b - 1] <- moved.[b - 1].reshape(-1L, d).matmul(g).reshape(s0)
                    let s1 = moved.[b].shape
                    moved.[b] <- torch.linalg.inv(g).matmul(moved.[b].reshape(d, -1L)).reshape(s1)
                use again = MpoDecomposer.Canonicalize(moved, f)
                for k in 0 .. f.CoreCount - 1 do
                    Expect.isLessThan (relativeError again.Cores.[k] mpo.Cores.[k]) 1e-8 $"seed {seed} {f}: core {k} identical after re-gauging" }

        test "the paper's FFN size 768x3072 decomposes exactly with central 2,359,296 and auxiliary 184,720" {
            let f = MpoFactorization.Exact(768, 3072, [|3;4;4;4;4|], [|4;4;8;6;4|])
            use w = gaussian 7 [ 768L; 3072L ] torch.float32
            use mpo = MpoDecomposer.Decompose(w, f)
            Expect.equal (mpo.Central.numel()) 2_359_296L "central tensor"
            Expect.equal (mpo.Auxiliary |> Seq.sumBy (fun t -> t.numel())) 184_720L "auxiliary tensors"
            use back = mpo.Reconstruct()
            Expect.isLessThan (relativeError back w) 1e-5 "float32 reconstruction" }

        test "zero padding round-trips: a 30x20 matrix as [2,4,4]x[3,2,4] (32x24)" {
            let f = MpoFactorization([|2;4;4|], [|3;2;4|], rows = 30, cols = 20)
            use w = gaussian 11 [ 30L; 20L ] torch.float64
            use mpo = MpoDecomposer.Decompose(w, f)
            use back = mpo.Reconstruct()
            Expect.equal (back.shape |> List.ofArray) [ 30L; 20L ] "padding sliced off"
            Expect.isLessThan (relativeError back w) 1e-12 "exact"
            // padded rows are rank-deficient directions: cores must stay finite and small, not 1/√λ blow-ups
            for c in mpo.Cores do
                Expect.isLessThan (c.abs().max().item<float>()) 1e3 "no blow-up from zero Schmidt values" }

        test "rank-deficient matrices (rank 2) decompose exactly with finite cores" {
            let f = MpoFactorization([|2;2;2;2|], [|2;2;2;2|])
            use a = gaussian 3 [ 16L; 2L ] torch.float64
            use b = gaussian 4 [ 2L; 16L ] torch.float64
            use w = a.matmul(b)
            use mpo = MpoDecomposer.Decompose(w, f)
            use back = mpo.Reconstruct()
            Expect.isLessThan (relativeError back w) 1e-10 "exact"
            for c in mpo.Cores do Expect.isTrue (torch.isfinite(c).all().item<bool>()) "finite" }

        test "the result lives on the input's device and in the requested dtype" {
            let f = MpoFactorization([|2;3|], [|3;2|])
            use w = gaussian 1 [ 6L; 6L ] torch.float32
            use mpo = MpoDecomposer.Decompose(w, f, torch.float64)
            for c in mpo.Cores do
                Expect.equal c.dtype torch.float64 "dtype"
                Expect.equal c.device_type w.device_type "device" }

        testList "bad input" [
            let f = MpoFactorization([|2;3|], [|3;2|])
            let fails name (action: unit -> unit) (fragment: string) =
                test name {
                    try action (); failtest "expected ArgumentException"
                    with :? ArgumentException as e -> Expect.stringContains e.Message fragment "message names the problem" }
            fails "non-2-D input" (fun () -> MpoDecomposer.Decompose(torch.zeros(6L, 6L, 1L), f) |> ignore) "2-D matrix"
            fails "shape not matching the factors" (fun () -> MpoDecomposer.Decompose(torch.zeros(6L, 5L), f) |> ignore) "does not match factorization"
            fails "NaN entries" (fun () -> MpoDecomposer.Decompose(torch.full(6L, 6L, Double.NaN), f) |> ignore) "NaN or Inf"
            fails "Inf entries" (fun () -> MpoDecomposer.Decompose(torch.full(6L, 6L, Double.PositiveInfinity), f) |> ignore) "NaN or Inf"
            fails "integer matrix" (fun () -> MpoDecomposer.Decompose(torch.zeros(6L, 6L, dtype = torch.int64), f) |> ignore) "floating point"
        ]
    ]
