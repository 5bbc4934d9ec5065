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

/// The bonds cores can carry below the requested ones, by its definition rather than Consistent's two sweeps: the
/// largest c ≤ r with c_{k+1} ≤ c_k·a_k and c_k ≤ a_k·c_{k+1}, i.e. c_b = min over k of r_k times the physical
/// dimensions between bond k and bond b.
let carried (f: MpoFactorization) (requested: int[]) =
    let n = f.CoreCount
    let prefix = Array.scan (fun acc m -> acc * int64 (f.Physical m)) 1L [| 0 .. n - 1 |]   // a_0 ⋯ a_{k-1}
    Array.init (n + 1) (fun b ->
        let mutable c = Int64.MaxValue
        for k in 0 .. n do c <- min c (int64 requested.[k] * prefix.[max k b] / prefix.[min k b])
        int c)

/// Every requested bond vector 1 ≤ r_b ≤ d_b, with the parameters of the cores it leaves and its bound squared.
let exhaustive (f: MpoFactorization) (spectra: float[][]) =
    let n = f.CoreCount
    let rec all b : int list list =
        if b = n then [ [ 1 ] ]
        else [ for d in 1 .. spectra.[b - 1].Length do for rest in all (b + 1) -> d :: rest ]
    [ for inner in all 1 ->
        let r = Array.ofList (1 :: inner)
        let e2 = [ for b in 1 .. n - 1 -> spectra.[b - 1] |> Array.skip r.[b] |> Array.sumBy (fun l -> l * l) ] |> List.sum
        r, f.ParameterCount(carried f r), e2 ]

/// Random spectra for a factorization: per bond its full length, decaying at a random rate, each bond carrying the
/// same total weight (as the bonds of one matrix do).
let randomSpectra (rng: Random) (f: MpoFactorization) =
    [| for d in innerBonds (f.FullBonds()) ->
        let rate = 0.3 + 0.65 * rng.NextDouble()
        let raw = Array.init d (fun i -> rate ** float i * (0.5 + rng.NextDouble())) |> Array.sortDescending
        let norm = raw |> Array.sumBy (fun l -> l * l) |> sqrt
        raw |> Array.map (fun l -> l / norm) |]

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

        testPropertyWithConfig (properties 200) "tolerance gives the fewest parameters whose bound meets it, budget the smallest bound within it (exhaustive search)" <|
            fun (seed: int) ->
                let rng = Random(seed)
                let n = rng.Next(3, 6)
                let f = MpoFactorization(Array.init n (fun _ -> rng.Next(1, 3)), Array.init n (fun _ -> rng.Next(1, 4)))
                let spectra = randomSpectra rng f
                let space = exhaustive f spectra
                if space.Length <= 5000 then
                    let tolerance = rng.NextDouble() * 0.6
                    let allowed = tolerance * tolerance
                    let feasible = space |> List.filter (fun (_, _, e2) -> e2 <= allowed * (1.0 + 1e-12))
                    let fewest = feasible |> List.map (fun (_, p, _) -> p) |> List.min
                    let bonds = Truncation.Plan(f, spectra, TruncationSpec.Tolerance tolerance)
                    let bound = Truncation.ErrorBound(spectra, bonds)
                    Expect.isLessThanOrEqual (bound * bound) (allowed * (1.0 + 1e-9)) $"{f} tolerance {tolerance}: bound met"
                    Expect.equal (f.ParameterCount(f.Consistent bonds)) fewest $"{f} tolerance {tolerance} %A{bonds}: fewest parameters"
                    let floor = f.ParameterCount(Array.create (n + 1) 1)
                    let budget = floor + int64 (rng.NextDouble() * float (f.ParameterCount(f.FullBonds()) - floor))
                    let best = space |> List.filter (fun (_, p, _) -> p <= budget) |> List.map (fun (_, _, e2) -> e2) |> List.min
                    let bonds = Truncation.Plan(f, spectra, TruncationSpec.Budget budget)
                    Expect.isLessThanOrEqual (f.ParameterCount(f.Consistent bonds)) budget $"{f} budget {budget}: within it"
                    let bound = Truncation.ErrorBound(spectra, bonds)
                    Expect.isLessThanOrEqual (bound * bound) (best * (1.0 + 1e-9) + 1e-15) $"{f} budget {budget} %A{bonds}: smallest bound"

        test "tolerance and budget on a real matrix: the measured error stays within the bound they chose" {
            let f, w, mpo = sample 3
            use w = w
            use mpo = mpo
            for tol in [ 0.0; 0.01; 0.05; 0.2; 0.5 ] do
                let bonds = Truncation.Plan(f, mpo.Spectra, TruncationSpec.Tolerance tol)
                Expect.isLessThanOrEqual (Truncation.ErrorBound(mpo.Spectra, bonds)) (tol * mpo.FrobeniusNorm * (1.0 + 1e-9)) $"tolerance {tol}"
                use cut = mpo.Truncate(bonds)
                use back = cut.Reconstruct()
                Expect.isLessThanOrEqual (relativeError back w) (tol + 1e-9) $"actual error within tolerance {tol}"
            Expect.equal (Truncation.Plan(f, mpo.Spectra, TruncationSpec.Tolerance 0.0) |> List.ofArray) (List.ofSeq mpo.Bonds) "zero tolerance keeps everything (full-rank random cores)"
            let full = f.ParameterCount(mpo.Bonds)
            let mutable lastBound = -1.0
            for fraction in [ 1.0; 0.6; 0.3; 0.1 ] do
                let budget = int64 (float full * fraction)
                let bonds = Truncation.Plan(f, mpo.Spectra, TruncationSpec.Budget budget)
                use cut = mpo.Truncate(bonds)
                Expect.isLessThanOrEqual cut.ParameterCount budget $"budget {budget}: the cut cores fit it"
                let bound = Truncation.ErrorBound(mpo.Spectra, bonds)
                use back = cut.Reconstruct()
                Expect.isLessThanOrEqual (frobenius back w) (bound * (1.0 + 1e-9) + 1e-12) $"budget {budget}: error ≤ bound"
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
