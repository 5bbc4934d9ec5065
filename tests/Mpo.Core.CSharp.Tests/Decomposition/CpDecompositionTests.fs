/// CP-ALS (MPOP's "CPD" baseline) against independent references: tensors of known CP rank, an explicit sum of
/// outer products, Eckart–Young for 2-way tensors, and the fit trajectories of a plain numpy CP-ALS
/// (tools/reference/cp_reference.py → tests/fixtures/cp_reference.safetensors).
module Mpo.Core.Tests.CpDecompositionTests

open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

/// Σ_r λ_r a_r^(1) ∘ ⋯ ∘ a_r^(N) term by term (outer products by broadcasting): shares nothing with the
/// Khatri–Rao reconstruction of CpDecomposition.
let outerSum (factors: Tensor[]) (weights: Tensor) =
    use scope = torch.NewDisposeScope()
    let n = factors.Length
    let shape = factors |> Array.map (fun a -> a.shape.[0])
    let mutable total = torch.zeros(shape, dtype = torch.float64)
    for r in 0 .. int weights.shape.[0] - 1 do
        let mutable term = weights.[int64 r].``to``(torch.float64)
        for k in 0 .. n - 1 do
            let view = Array.init n (fun m -> if m = k then shape.[k] else 1L)
            term <- term * factors.[k].[torch.TensorIndex.Colon, torch.TensorIndex.Single(int64 r)].``to``(torch.float64).reshape(view)
        total <- total + term
    total.MoveToOuterDisposeScope()

let gaussianFactors seed (shape: int64[]) rank =
    shape |> Array.mapi (fun k a -> gaussian (seed * 10 + k) [ a; int64 rank ] torch.float64)

let fixture = lazy (SafeTensorsFile.Open(repoFile "tests/fixtures/cp_reference.safetensors"))

let fixtureCases () =
    let doc = JsonDocument.Parse(fixture.Force().Metadata.["cases"])
    [ for c in doc.RootElement.EnumerateObject() -> c.Name, c.Value.Clone() ]

[<Tests>]
let tests =
    testList "Decomposition.Cp" [
        test "a tensor of known CP rank is recovered: error ≈ 0, components equal up to permutation and scaling" {
            for seed, shape, rank in [ 1, [| 6L; 7L; 8L |], 4; 2, [| 5L; 4L; 6L; 3L |], 3 ] do
                let truth = gaussianFactors seed shape rank
                use ones = torch.ones(int64 rank, dtype = torch.float64)
                use x = outerSum truth ones
                use cp = CpDecomposition.Decompose(x, rank, CpOptions(MaxIterations = 1000, Tolerance = 1e-15))
                Expect.isLessThan cp.RelativeError 1e-10 $"seed {seed}: relative error {cp.RelativeError:E2} after {cp.Iterations} sweeps"
                Expect.isTrue cp.Converged "converged"
                // every true component has a recovered one with |cos| = 1 in every mode and the same weight
                for r in 0 .. rank - 1 do
                    let columns = truth |> Array.map (fun a -> a.[torch.TensorIndex.Colon, torch.TensorIndex.Single(int64 r)])
                    let weight = columns |> Array.fold (fun w c -> w * c.norm().item<float>()) 1.0
                    let congruence s =
                        Array.zip columns cp.Factors
                        |> Array.fold (fun acc (c, a) -> acc * (c / c.norm()).dot(a.[torch.TensorIndex.Colon, torch.TensorIndex.Single(int64 s)]).item<float>()) 1.0
                    let best = [ 0 .. rank - 1 ] |> List.maxBy (fun s -> abs (congruence s))
                    expectClose 1e-8 (abs (congruence best)) 1.0 $"seed {seed}, component {r}: congruence"
                    expectClose 1e-8 (cp.Weights.[int64 best].item<float>() * float (sign (congruence best))) weight $"seed {seed}, component {r}: weight" }

        test "the reported error is ‖X − X̂‖ of an independent outer-product reconstruction; weights descend, columns unit" {
            let shape = [| 5L; 6L; 4L; 3L |]
            use x = outerSum (gaussianFactors 3 shape 6) (torch.ones(6L, dtype = torch.float64))
            use noisy = x + 0.3 * gaussian 4 (List.ofArray shape) torch.float64
            use cp = CpDecomposition.Decompose(noisy, 4, CpOptions(MaxIterations = 30, Initialization = CpInitialization.Random 7))
            use independent = outerSum cp.Factors cp.Weights
            expectClose 1e-10 cp.RelativeError (relativeError independent noisy) "relative error"
            expectClose 1e-12 cp.FrobeniusNorm (noisy.norm().item<float>()) "‖X‖"
            expectClose 1e-12 (cp.Fit + cp.RelativeError) 1.0 "fit = 1 − ε"
            Expect.isLessThan (relativeError (cp.Reconstruct()) independent) 1e-12 "Reconstruct = Σ outer products"
            let w = cp.Weights.data<float>().ToArray()
            Expect.isTrue (Array.pairwise w |> Array.forall (fun (a, b) -> a >= b)) $"weights descend: %A{w}"
            for a in cp.Factors do
                use norms = torch.linalg.vector_norm(a, dims = [| 0L |])
                Expect.isLessThan ((norms - 1.0).abs().max().item<float>()) 1e-12 "unit columns"
            Expect.equal cp.ParameterCount (4L * Array.sum shape) "R·Σ a_k parameters" }

        test "ALS never increases the error (each update is an exact least-squares step)" {
            for seed in 1 .. 4 do
                let shape = [| 6L; 5L; 7L |]
                use x = outerSum (gaussianFactors (20 + seed) shape 8) (torch.ones(8L, dtype = torch.float64))
                use noisy = x + 0.5 * gaussian (30 + seed) (List.ofArray shape) torch.float64
                use cp = CpDecomposition.Decompose(noisy, 3, CpOptions(MaxIterations = 60, Tolerance = 0.0, Initialization = CpInitialization.Random seed))
                let h = cp.ErrorHistory
                Expect.equal h.Length 60 "tolerance 0 runs every sweep"
                for i in 1 .. h.Length - 1 do
                    Expect.isLessThanOrEqual h.[i] (h.[i - 1] * (1.0 + 1e-10)) $"seed {seed}, sweep {i + 1}: {h.[i]} after {h.[i - 1]}" }

        test "a 2-way CP is a low-rank matrix: ALS reaches the truncated SVD's error (Eckart–Young)" {
            use u = gaussian 5 [ 40L; 40L ] torch.float64
            use v = gaussian 6 [ 30L; 30L ] torch.float64
            let struct (qu, _) = torch.linalg.qr(u)
            let struct (qv, _) = torch.linalg.qr(v)
            use s = torch.pow(torch.tensor(0.8, dtype = torch.float64), torch.arange(30L, dtype = torch.float64))
            use w = (qu.narrow(1, 0L, 30L) * s.unsqueeze(0)).mm(qv.t())
            let singular = singularValues w
            for rank in [ 1; 5; 12 ] do
                use cp = CpDecomposition.Decompose(w, rank, CpOptions(MaxIterations = 200, Tolerance = 1e-14))
                let tail = singular |> Array.skip rank |> Array.sumBy (fun x -> x * x)
                let best = sqrt (tail / (singular |> Array.sumBy (fun x -> x * x)))
                expectClose 1e-8 cp.RelativeError best $"rank {rank}" }

        test "fit trajectories equal the numpy CP-ALS's, sweep by sweep (fixture)" {
            let file = fixture.Force()
            for name, case in fixtureCases () do
                let rank = case.GetProperty("rank").GetInt32()
                let sweeps = case.GetProperty("sweeps").GetInt32()
                use x = file.Load($"{name}.X")
                let x =
                    if case.TryGetProperty("row_factors") |> fst then
                        // the matrix case also checks the tensorization against the reference's reshape
                        let ints (p: string) = [| for v in case.GetProperty(p).EnumerateArray() -> v.GetInt32() |]
                        let f = MpoFactorization(ints "row_factors", ints "col_factors")
                        use w = file.Load($"{name}.W")
                        let t = Tensorization.ToTensor(w, f)
                        Expect.equal (relativeError t x) 0.0 "Tensorization.ToTensor = the reference's to_tensor"
                        Expect.equal (relativeError (Tensorization.ToMatrix(t, f)) w) 0.0 "ToMatrix inverts ToTensor"
                        t
                    else x
                let init =
                    match case.GetProperty("init").GetString() with
                    | "given" -> CpInitialization.Given [| for k in 0 .. int (x.dim ()) - 1 -> file.Load($"{name}.init{k}") |] :> CpInitialization
                    | _ -> CpInitialization.Svd()
                use cp = CpDecomposition.Decompose(x, rank, CpOptions(MaxIterations = sweeps, Tolerance = 0.0, Initialization = init))
                use expected = file.Load($"{name}.history")
                let expected = expected.data<float>().ToArray()
                Expect.equal cp.ErrorHistory.Length expected.Length $"{name}: sweeps"
                for i in 0 .. expected.Length - 1 do
                    expectClose 1e-9 cp.ErrorHistory.[i] expected.[i] $"{name}, sweep {i + 1}" }

        test "float32 in, float32 out; the zero tensor is fitted exactly by zero weights" {
            use x = outerSum (gaussianFactors 8 [| 4L; 5L; 6L |] 2) (torch.ones(2L, dtype = torch.float64))
            use cp = CpDecomposition.Decompose(x.``to``(torch.float32), 2)
            Expect.equal cp.Factors.[0].dtype torch.float32 "factors in the input's dtype"
            Expect.isLessThan cp.RelativeError 1e-6 "the float32 input's rank-2 tensor"
            use zero = torch.zeros(3L, 4L, 5L, dtype = torch.float64)
            use z = CpDecomposition.Decompose(zero, 2)
            Expect.equal z.RelativeError 0.0 "error"
            Expect.equal (z.Weights.abs().sum().item<float>()) 0.0 "weights" }

        test "memory stays flat: every sweep's tensors are disposed, the result owns exactly what it returns" {
            use x = outerSum (gaussianFactors 9 [| 8L; 9L; 10L; 7L |] 5) (torch.ones(5L, dtype = torch.float64))
            let live () = DisposeScopeManager.Statistics.ThreadTotalLiveCount
            let after sweeps =
                let before = live ()
                let cp = CpDecomposition.Decompose(x, 4, CpOptions(MaxIterations = sweeps, Tolerance = 0.0))
                let held = live () - before
                cp.Dispose()
                held, live () - before
            let held5, left5 = after 5
            let held50, left50 = after 50
            Expect.equal held5 (4L + 1L) "4 factors + weights held by the result"
            Expect.equal held50 held5 "50 sweeps hold what 5 do"
            Expect.equal (left5, left50) (0L, 0L) "nothing left after Dispose" }

        test "bad input names the problem" {
            use x = torch.ones(3L, 4L, 5L, dtype = torch.float64)
            throwsWith<System.ArgumentOutOfRangeException> [ "rank"; "at least 1" ] (fun () -> CpDecomposition.Decompose(x, 0) |> ignore) |> ignore
            throwsWith<System.ArgumentException> [ "at least 2 modes" ] (fun () -> CpDecomposition.Decompose(torch.ones(5L), 2) |> ignore) |> ignore
            use bad = x.clone()
            bad.[0L, 0L, 0L] <- torch.tensor(nan)
            throwsWith<System.ArgumentException> [ "NaN" ] (fun () -> CpDecomposition.Decompose(bad, 2) |> ignore) |> ignore
            let wrong = CpInitialization.Given [| torch.ones(3L, 2L); torch.ones(4L, 2L); torch.ones(6L, 2L) |]
            throwsWith<System.ArgumentException> [ "initial factor 2"; "[6,2]"; "[5,2]" ] (fun () ->
                CpDecomposition.Decompose(x, 2, CpOptions(Initialization = wrong)) |> ignore) |> ignore
            throwsWith<System.ArgumentOutOfRangeException> [ "max-iterations" ] (fun () ->
                CpDecomposition.Decompose(x, 2, CpOptions(MaxIterations = 0)) |> ignore) |> ignore }
    ]
