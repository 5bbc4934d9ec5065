module Mpo.Core.Tests.TruncationTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Core.Tests.Support

/// A decomposed compressible matrix for truncation tests.
let sample seed =
    let f = MpoFactorization([|2;3;4;2;2|], [|2;2;4;3;2|])
    let w = compressible f 0.75 seed torch.float64
    f, w, MpoDecomposer.Decompose(w, f)

let innerBonds (bonds: int seq) = bonds |> Seq.toArray |> fun b -> b.[1 .. b.Length - 2]

[<Tests>]
let tests =
    testList "Decomposition.Truncation" [
        test "cutting exactly one bond: error equals the bound ε_b (the tight case of MPOP Theorem 1), also where it forces its neighbours down" {
            let f, w, mpo = sample 1
            use w = w
            use mpo = mpo
            let full = mpo.Bonds |> Array.ofSeq
            let mutable forcing = 0
            for b in 1 .. f.CoreCount - 1 do
                for keep in [ full.[b] / 2; 1 ] do
                    let bonds = Array.copy full
                    bonds.[b] <- max 1 keep
                    if f.Consistent bonds <> bonds then forcing <- forcing + 1
                    use cut = mpo.Truncate(bonds)
                    use back = cut.Reconstruct()
                    let report = TruncationReport.Create(mpo, bonds)
                    let discarded = mpo.Spectra.[b - 1] |> Array.skip bonds.[b] |> Array.sumBy (fun l -> l * l) |> sqrt
                    expectClose 1e-9 report.ErrorBound discarded "bound = √Σ discarded λ² of the one bond asked for"
                    expectClose 1e-8 (frobenius back w) report.ErrorBound $"bond {b} → {bonds.[b]}: error = bound"
                    // the bonds it forces down cost nothing: the cut operator has those ranks already
                    Expect.equal (List.ofSeq cut.Bonds) (List.ofArray (f.Consistent bonds)) "the cores carry the consistent bonds"
                    Expect.equal (List.ofArray report.Bonds) (List.ofArray (f.Consistent bonds)) "and the report counts them"
                    Expect.equal report.Parameters (f.ParameterCount(f.Consistent bonds)) "parameters of the bonds carried"
            Expect.isGreaterThan forcing 0 "some of these cuts force a neighbouring bond down" }

        test "error ≤ bound for random multi-bond truncations (sequential re-truncation keeps the guarantee)" {
            for seed in 1 .. 20 do
                let rng = Random(seed)
                let f, w, mpo = sample (seed % 4 + 1)
                use w = w
                use mpo = mpo
                let bonds : int[] = mpo.Bonds |> Array.ofSeq |> Array.mapi (fun k d -> if k = 0 || k = f.CoreCount then 1 else rng.Next(1, d + 1))
                use cut = mpo.Truncate(bonds)
                use back = cut.Reconstruct()
                let bound = Truncation.ErrorBound(mpo.Spectra, bonds)
                let err = frobenius back w
                Expect.isLessThanOrEqual err (bound * (1.0 + 1e-9) + 1e-12) $"seed {seed} bonds %A{bonds}: error {err} > bound {bound}"
                Expect.equal (List.ofSeq cut.Bonds) (List.ofArray (f.Consistent bonds)) "bonds as asked, made consistent" }

        test "consistent bonds: a bond never exceeds what flows in from either side" {
            let f = MpoFactorization([|2;3;4;2;2|], [|2;2;4;3;2|])
            Expect.equal (f.Consistent [|1; 2; 17; 21; 1; 1|] |> List.ofArray) [1; 2; 12; 6; 1; 1] "2·6 = 12 and 6·1 = 6"
            Expect.equal (f.Consistent (f.FullBonds()) |> List.ofArray) (f.FullBonds() |> List.ofArray) "full bonds are consistent" }

        test "a truncated MPO is canonical again: its spectra are its own unfoldings' singular values" {
            let f, w, mpo = sample 2
            use w = w
            use mpo = mpo
            use cut = mpo.Truncate(TruncationSpec.MaxBond 5)
            use back = cut.Reconstruct()
            for b in 1 .. f.CoreCount - 1 do
                let expected = singularValues (unfolding back f b)
                cut.Spectra.[b - 1] |> Array.iteri (fun i l -> expectClose 1e-9 l expected.[i] $"bond {b} value {i}")
                // and the rest of the unfolding's spectrum is zero: rank = bond
                expected |> Array.skip cut.Spectra.[b - 1].Length |> Array.iter (fun l -> Expect.isLessThan l 1e-9 "rank ≤ bond") }

        test "max bond caps every bond (the papers' truncate_num) and ignores caps above full" {
            let f = MpoFactorization([|4;4;8;6;4|], [|3;4;4;4;4|])
            let spectra = f.FullBonds() |> innerBonds |> Array.map (fun d -> Array.init d (fun i -> 1.0 / float (i + 1)))
            Expect.equal (Truncation.Plan(f, spectra, TruncationSpec.MaxBond 256) |> List.ofArray) [1;12;192;256;16;1] "cap 256 (spec §3.4)"
            Expect.equal (Truncation.Plan(f, spectra, TruncationSpec.MaxBond 30000) |> List.ofArray) [1;12;192;384;16;1] "cap 30000 = full" }

        test "tolerance: the bound meets the tolerance, and one more removal would not" {
            let f, w, mpo = sample 3
            use w = w
            use mpo = mpo
            for tol in [ 0.0; 0.01; 0.05; 0.2; 0.5 ] do
                let bonds = Truncation.Plan(f, mpo.Spectra, TruncationSpec.Tolerance tol)
                let bound = Truncation.ErrorBound(mpo.Spectra, bonds)
                Expect.isLessThanOrEqual bound (tol * mpo.FrobeniusNorm * (1.0 + 1e-9)) $"tolerance {tol}"
                use cut = mpo.Truncate(bonds)
                use back = cut.Reconstruct()
                Expect.isLessThanOrEqual (relativeError back w) (tol + 1e-9) $"actual error within tolerance {tol}"
                // maximality: every single further cut breaks the tolerance
                for b in 1 .. f.CoreCount - 1 do
                    if bonds.[b] > 1 then
                        let smaller = Array.copy bonds
                        smaller.[b] <- bonds.[b] - 1
                        Expect.isGreaterThan (Truncation.ErrorBound(mpo.Spectra, smaller)) (tol * mpo.FrobeniusNorm) $"tol {tol}: bond {b} could shrink"
            Expect.equal (Truncation.Plan(f, mpo.Spectra, TruncationSpec.Tolerance 0.0) |> List.ofArray) (List.ofSeq mpo.Bonds) "zero tolerance keeps everything (full-rank random cores)" }

        test "budget: at most the budget, and fewer parameters need more error" {
            let f, w, mpo = sample 4
            use w = w
            use mpo = mpo
            let full = f.ParameterCount(mpo.Bonds)
            let mutable lastBound = -1.0
            for fraction in [ 1.0; 0.6; 0.3; 0.1 ] do
                let budget = int64 (float full * fraction)
                let bonds = Truncation.Plan(f, mpo.Spectra, TruncationSpec.Budget budget)
                Expect.isLessThanOrEqual (f.ParameterCount bonds) budget $"budget {budget}"
                let bound = Truncation.ErrorBound(mpo.Spectra, bonds)
                Expect.isGreaterThanOrEqual bound lastBound "smaller budget, larger bound"
                lastBound <- bound }

        test "entropy per bond: 0 for rank one, ln d for a flat spectrum, in between otherwise" {
            let s = Truncation.Entropy([| [| 3.0 |]; [| 1.0; 1.0; 1.0; 1.0 |]; [| 2.0; 1.0 |] |])
            expectClose 1e-12 s.[0] 0.0 "rank one"
            expectClose 1e-12 s.[1] (log 4.0) "flat"
            let p = [ 0.8; 0.2 ]
            expectClose 1e-12 s.[2] (-(p |> List.sumBy (fun x -> x * log x))) "p = λ²/Σλ²" }

        testList "impossible requests fail with the argument named" [
            let f = MpoFactorization([|2;3;2|], [|2;2;3|])
            let spectra = f.FullBonds() |> innerBonds |> Array.map (fun d -> Array.init d (fun i -> 1.0 / float (i + 1)))
            let fails name spec (fragment: string) =
                test name {
                    try Truncation.Plan(f, spectra, spec) |> ignore; failtest "expected an ArgumentException"
                    with :? ArgumentException as e -> Expect.stringContains e.Message fragment "message" }
            fails "bond larger than full" (TruncationSpec.PerBond [| 4; 99 |]) "bond 2 asks for dimension 99, which is impossible"
            fails "wrong number of bonds" (TruncationSpec.PerBond [| 4 |]) "needs 2 inner bonds"
            fails "zero cap" (TruncationSpec.MaxBond 0) "at least 1"
            fails "negative tolerance" (TruncationSpec.Tolerance -0.1) "tolerance"
            fails "NaN tolerance" (TruncationSpec.Tolerance Double.NaN) "tolerance"
            fails "budget below the all-ones floor" (TruncationSpec.Budget 3L) "impossible budget"
        ]
    ]
