/// Tucker by truncated HOSVD (MPOP Table 2's "Tucker (d > 1)") against independent references: exactness at full
/// ranks, a tensor of known multilinear rank, the projection identity ‖X − X̂‖² = ‖X‖² − ‖G‖², the HOSVD bound,
/// and Eckart–Young for 2-way tensors.
module Mpo.Core.Tests.TuckerDecompositionTests

open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Core.Tests.Support

/// G ×_1 U_1 ⋯ ×_N U_N by einsum (not the decomposition's mode products), for 3-way tensors.
let einsum3 (core: torch.Tensor) (u: torch.Tensor[]) = torch.einsum("abc,ia,jb,kc->ijk", core, u.[0], u.[1], u.[2])

[<Tests>]
let tests =
    testList "Decomposition.Tucker" [
        test "full ranks reproduce the tensor; factors are orthonormal" {
            use x = gaussian 1 [ 4L; 5L; 6L; 3L ] torch.float64
            use t = TuckerDecomposition.Decompose(x, [| 4; 5; 6; 3 |])
            Expect.isLessThan t.RelativeError 1e-12 "exact"
            Expect.isLessThan (relativeError (t.Reconstruct()) x) 1e-12 "Reconstruct"
            for u in t.Factors do
                use gram = u.t().mm(u)
                Expect.isLessThan ((gram - torch.eye(gram.shape.[0], dtype = torch.float64)).abs().max().item<float>()) 1e-12 "UᵀU = I" }

        test "a tensor of known multilinear rank is recovered exactly at those ranks" {
            use core = gaussian 2 [ 2L; 3L; 4L ] torch.float64
            let u = [| for k, (a, d) in List.indexed [ 6L, 2L; 7L, 3L; 8L, 4L ] -> let struct (q, _) = torch.linalg.qr(gaussian (10 + k) [ a; d ] torch.float64) in q |]
            use x = einsum3 core u
            use t = TuckerDecomposition.Decompose(x, [| 2; 3; 4 |])
            Expect.isLessThan t.RelativeError 1e-12 "error"
            Expect.isLessThan (relativeError (einsum3 t.Core t.Factors) x) 1e-12 "einsum of the returned core and factors"
            Expect.equal t.ParameterCount (2L * 3L * 4L + 6L * 2L + 7L * 3L + 8L * 4L) "Π d + Σ a·d" }

        test "truncated: error² = ‖X‖² − ‖G‖² (orthogonal projection) and error ≤ the HOSVD bound" {
            for seed, ranks in [ 3, [| 2; 2; 3 |]; 4, [| 1; 4; 2 |]; 5, [| 5; 1; 1 |] ] do
                use x = gaussian seed [ 5L; 6L; 4L ] torch.float64
                use t = TuckerDecomposition.Decompose(x, ranks)
                let x2 = x.square().sum().item<float>()
                let g2 = t.Core.square().sum().item<float>()
                expectClose 1e-10 t.RelativeError (sqrt ((x2 - g2) / x2)) $"seed {seed}: projection identity"
                expectClose 1e-10 t.RelativeError (relativeError (einsum3 t.Core t.Factors) x) $"seed {seed}: explicit"
                Expect.isLessThanOrEqual t.RelativeError (t.RelativeBound * (1.0 + 1e-12)) $"seed {seed}: bound"
                // the bound uses the mode unfoldings' own singular values
                let unfolding0 = x.reshape(5L, -1L)
                Expect.isLessThan (relativeError (torch.tensor(t.ModeSpectra.[0], dtype = torch.float64)) (torch.tensor(singularValues unfolding0, dtype = torch.float64))) 1e-12 "mode-1 spectrum" }

        test "a 2-way Tucker at rank r has the truncated SVD's error (Eckart–Young)" {
            use w = gaussian 6 [ 20L; 12L ] torch.float64
            let s = singularValues w
            for r in [ 1; 4; 9 ] do
                use t = TuckerDecomposition.Decompose(w, [| r; r |])
                let best = sqrt ((s |> Array.skip r |> Array.sumBy (fun x -> x * x)) / (s |> Array.sumBy (fun x -> x * x)))
                expectClose 1e-10 t.RelativeError best $"rank {r}" }

        test "bad ranks name the mode" {
            use x = gaussian 7 [ 3L; 4L ] torch.float64
            throwsWith<System.ArgumentOutOfRangeException> [ "mode 1"; "1..4" ] (fun () -> TuckerDecomposition.Decompose(x, [| 2; 5 |]) |> ignore) |> ignore
            throwsWith<System.ArgumentException> [ "one rank per mode" ] (fun () -> TuckerDecomposition.Decompose(x, [| 2 |]) |> ignore) |> ignore }
    ]
