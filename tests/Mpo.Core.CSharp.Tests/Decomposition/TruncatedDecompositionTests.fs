module Mpo.Core.Tests.TruncatedDecompositionTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Core.Tests.Support

/// Physical dimensions 4, 9, 16, 9, 4: full bonds [1,4,36,36,4,1], so a cap of 6 cuts the two bonds around the
/// central tensor, the unfoldings split there are 576×36 and 36×54, and d' + p = 16 < 36 leaves the sketch room.
let f = MpoFactorization([| 2; 3; 4; 3; 2 |], [| 2; 3; 4; 3; 2 |])
let cap = TruncationSpec.MaxBond 6
let randomized = SvdMethod(SvdSolver.Randomized)
let gram = SvdMethod(SvdSolver.Gram)
let seeds = [ 1 .. 4 ]

/// ‖W − W̃‖_F in float64.
let trueError (w: torch.Tensor) (cut: TruncatedDecomposition) =
    use back = cut.Mpo.Reconstruct()
    frobenius back w

let sameCores (a: MatrixProductOperator) (b: MatrixProductOperator) message =
    Expect.equal (List.ofSeq a.Bonds) (List.ofSeq b.Bonds) $"{message}: bonds"
    for k in 0 .. a.Cores.Count - 1 do
        Expect.isTrue (a.Cores.[k].eq(b.Cores.[k]).all().item<bool>()) $"{message}: core {k} bit for bit"

[<Tests>]
let tests =
    testList "Decomposition.Decompose truncated (partial SVD)" [
        test "the partial solvers are the ones used on the cut bonds, and their error is within 1.0001x of the exact cut" {
            // Decay 0.7 per bond index: the spectrum falls by 0.7^10 ≈ 0.03 across the oversampling, so after q = 2
            // power passes the sketch misses the kept subspace by ~(σ_{k+p}/σ_k)^(2q+1) ≈ 3e-8 (HMT §10.4); Gram's
            // eigenvectors are exact up to round-off. 1e-4 is far above either and below a subspace that is merely
            // close: the sketch's first 6 directions without the final rotation to the best 6 of its 16 cost 0.8%.
            for seed in seeds do
                use w = compressible f 0.7 seed torch.float64
                use exact = MpoDecomposer.Decompose(w, f, cap, SvdMethod.Exact)
                let exactError = trueError w exact
                Expect.isGreaterThan exactError 1e-3 "the cap really discards weight"
                for method, solver in [ randomized, SvdSolver.Randomized; gram, SvdSolver.Gram ] do
                    use cut = MpoDecomposer.Decompose(w, f, cap, method)
                    Expect.equal (List.ofArray cut.Solvers) [ SvdSolver.Exact; solver; solver; SvdSolver.Exact ]
                        $"seed {seed}: {solver} splits the cut bonds, exact the bonds kept whole"
                    Expect.equal (List.ofSeq cut.Mpo.Bonds) [ 1; 4; 6; 6; 4; 1 ] "bonds"
                    let error = trueError w cut
                    Expect.isLessThanOrEqual error (1.0001 * exactError) $"seed {seed} {solver}: error {error} vs exact {exactError}" }

        test "the bound is the true error: Σ ε_b² = ‖W − W̃‖² = ‖W‖² − ‖W̃‖² for every solver" {
            // Each split keeps M·V·Vᵀ, an orthogonal projection on the side already split off, so the splits' errors
            // are orthogonal (Pythagoras): the bound holds with equality, to float64 rounding. An ε_b estimated from
            // an approximate spectrum instead of measured from ‖M_b‖² would break it.
            for seed in seeds do
                use w = compressible f 0.7 seed torch.float64
                let norm2 = Math.Pow(w.norm().item<float>(), 2.0)
                for method in [ SvdMethod.Exact; randomized; gram; SvdMethod() ] do
                    use cut = MpoDecomposer.Decompose(w, f, cap, method)
                    let error = trueError w cut
                    expectClose 1e-12 cut.FrobeniusNorm (Math.Sqrt norm2) "‖W‖ measured from the matrix"
                    Expect.isGreaterThanOrEqual (cut.ErrorBound * (1.0 + 1e-9)) error $"seed {seed} {method}: bound ≥ error"
                    expectClose 1e-9 (cut.ErrorBound * cut.ErrorBound / norm2) (error * error / norm2) $"seed {seed} {method}: bound² = error²"
                    let kept2 = cut.Mpo.Spectra.[0] |> Array.sumBy (fun l -> l * l)
                    expectClose 1e-12 (cut.ErrorBound * cut.ErrorBound / norm2) ((norm2 - kept2) / norm2) $"seed {seed} {method}: ‖W‖² − ‖W̃‖²" }

        test "one cut bond: its ε_b² is exactly ‖W‖² minus the kept Schmidt weight, the other bonds report 0" {
            for seed in seeds do
                use w = compressible f 0.7 seed torch.float64
                let norm2 = Math.Pow(w.norm().item<float>(), 2.0)
                for method in [ randomized; gram; SvdMethod.Exact ] do
                    use cut = MpoDecomposer.Decompose(w, f, TruncationSpec.PerBond [| 4; 5; 36; 4 |], method)
                    Expect.equal cut.DiscardedWeight.[0] 0.0 "bond 1 uncut"
                    Expect.equal cut.DiscardedWeight.[2] 0.0 "bond 3 uncut"
                    Expect.equal cut.DiscardedWeight.[3] 0.0 "bond 4 uncut"
                    let kept2 = cut.Mpo.Spectra.[1] |> Array.sumBy (fun l -> l * l)
                    expectClose 1e-12 (cut.DiscardedWeight.[1] ** 2.0 / norm2) ((norm2 - kept2) / norm2) $"seed {seed} {method}: ε_2²"
                    // and no better than Eckart–Young on the raw unfolding (the first split sees it whole)
                    let tail = singularValues (unfolding w f 2) |> Array.skip 5 |> Array.sumBy (fun l -> l * l)
                    Expect.isGreaterThanOrEqual (cut.DiscardedWeight.[1] ** 2.0 * (1.0 + 1e-9)) tail $"seed {seed} {method}: ≥ optimal tail" }

        test "the exact solver cuts during the sweep as Truncate cuts after it: the same cores" {
            for seed in seeds do
                use w = compressible f 0.7 seed torch.float64
                use full = MpoDecomposer.Decompose(w, f)
                use after = full.Truncate(cap)
                use during = MpoDecomposer.Decompose(w, f, cap, SvdMethod.Exact)
                for k in 0 .. f.CoreCount - 1 do
                    Expect.isLessThan (relativeError during.Mpo.Cores.[k] after.Cores.[k]) 1e-9 $"seed {seed} core {k}" }

        test "every solver's result is in the sign-fixed canonical gauge: canonicalizing it again changes nothing" {
            for method in [ randomized; gram ] do
                use w = compressible f 0.7 3 torch.float64
                use cut = MpoDecomposer.Decompose(w, f, cap, method)
                use again = MpoDecomposer.Canonicalize(cut.Mpo.Cores, f)
                for k in 0 .. f.CoreCount - 1 do
                    Expect.isLessThan (relativeError again.Cores.[k] cut.Mpo.Cores.[k]) 1e-10 $"{method}: core {k}" }

        test "nothing cut: every solver falls back to the exact decomposition, core for core" {
            use w = compressible f 0.7 5 torch.float64
            use reference = MpoDecomposer.Decompose(w, f)
            for method in [ randomized; gram; SvdMethod() ] do
                for spec in [ TruncationSpec.MaxBond 1000 :> TruncationSpec; TruncationSpec.PerBond [| 4; 36; 36; 4 |] ] do
                    use cut = MpoDecomposer.Decompose(w, f, spec, method)
                    sameCores cut.Mpo reference $"{method} {spec}"
                    Expect.isTrue (cut.Solvers |> Array.forall ((=) SvdSolver.Exact)) "exact everywhere"
                    Expect.equal cut.ErrorBound 0.0 "nothing discarded" }

        test "the same seed gives the same cores; another seed another sketch" {
            use w = compressible f 0.7 2 torch.float64
            use a = MpoDecomposer.Decompose(w, f, cap, SvdMethod(SvdSolver.Randomized, Seed = 11UL))
            use b = MpoDecomposer.Decompose(w, f, cap, SvdMethod(SvdSolver.Randomized, Seed = 11UL))
            use c = MpoDecomposer.Decompose(w, f, cap, SvdMethod(SvdSolver.Randomized, Seed = 12UL))
            sameCores a.Mpo b.Mpo "seed 11 twice"
            Expect.equal a.DiscardedWeight b.DiscardedWeight "same ε_b"
            Expect.isFalse (Seq.forall2 (fun (x: torch.Tensor) (y: torch.Tensor) -> x.eq(y).all().item<bool>()) a.Mpo.Cores c.Mpo.Cores) "seed 12 differs" }

        test "tolerance and budget keep the exact path: Auto gives Decompose + Truncate and its full-spectrum ε_b" {
            use w = compressible f 0.7 4 torch.float64
            use full = MpoDecomposer.Decompose(w, f)
            for spec in [ TruncationSpec.Tolerance 0.05 :> TruncationSpec; TruncationSpec.Budget 2000L ] do
                let bonds = Truncation.Plan(f, full.Spectra, spec)
                use after = full.Truncate(bonds)
                use cut = MpoDecomposer.Decompose(w, f, spec)
                Expect.equal (List.ofArray cut.RequestedBonds) (List.ofArray bonds) $"{spec}: planned bonds"
                Expect.equal (List.ofArray cut.DiscardedWeight) (List.ofArray (Truncation.DiscardedWeight(full.Spectra, bonds))) $"{spec}: ε_b"
                for k in 0 .. f.CoreCount - 1 do
                    Expect.isLessThan (relativeError cut.Mpo.Cores.[k] after.Cores.[k]) 1e-9 $"{spec}: core {k}" }

        test "Auto's cost rule: exact when nothing or nearly nothing is cut, Gram when a side is small, randomized when both are large" {
            let auto = SvdMethod()
            Expect.equal (auto.SolverFor(576L, 36L, 36L)) SvdSolver.Exact "keeps all"
            Expect.equal (auto.SolverFor(576L, 36L, 18L)) SvdSolver.Exact "keeps half"
            // Gram: 36 + 12 = 48 < (6 + 10)·6 = 96
            Expect.equal (auto.SolverFor(576L, 36L, 6L)) SvdSolver.Gram "a 36-wide side"
            // the padded BERT embedding's central split: Gram 1024 + 150 > randomized (75 + 10)·6 = 510
            Expect.equal (auto.SolverFor(23040L, 1024L, 75L)) SvdSolver.Randomized "both sides large"
            Expect.equal (randomized.SolverFor(576L, 36L, 30L)) SvdSolver.Exact "no room for the sketch: exact"
            Expect.equal (randomized.SolverFor(576L, 36L, 36L)) SvdSolver.Exact "forced solvers too keep a whole bond exact"
            Expect.equal (gram.SolverFor(576L, 36L, 30L)) SvdSolver.Gram "forced Gram" }

        testList "bad options" [
            let w () = compressible f 0.7 1 torch.float64
            test "negative oversampling" {
                use w = w ()
                throwsWith<ArgumentOutOfRangeException> [ "oversample"; "≥ 0" ] (fun () ->
                    MpoDecomposer.Decompose(w, f, cap, SvdMethod(SvdSolver.Randomized, Oversample = -1)) |> ignore) |> ignore }
            test "negative power iterations" {
                use w = w ()
                throwsWith<ArgumentOutOfRangeException> [ "power-iterations" ] (fun () ->
                    MpoDecomposer.Decompose(w, f, cap, SvdMethod(PowerIterations = -2)) |> ignore) |> ignore }
            test "a kept rank larger than the bond can hold" {
                use w = w ()
                throwsWith<ArgumentOutOfRangeException> [ "bond 2"; "impossible"; "1..36" ] (fun () ->
                    MpoDecomposer.Decompose(w, f, TruncationSpec.PerBond [| 4; 40; 6; 4 |], randomized) |> ignore) |> ignore }
            test "a partial solver with a tolerance or budget" {
                use w = w ()
                for spec in [ TruncationSpec.Tolerance 0.1 :> TruncationSpec; TruncationSpec.Budget 2000L ] do
                    for method in [ randomized; gram ] do
                        throwsWith<ArgumentException> [ "full spectrum"; "max_bond or bonds" ] (fun () ->
                            MpoDecomposer.Decompose(w, f, spec, method) |> ignore) |> ignore }
        ]
    ]
