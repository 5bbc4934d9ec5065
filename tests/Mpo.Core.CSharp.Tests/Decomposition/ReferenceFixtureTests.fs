/// The decomposition against an independent implementation: tools/reference/mpo_reference.py (numpy, float64) follows
/// the papers' algorithm literally — TT-SVD, then explicit gauge matrices P_b, Q_b from λ^{-1/2} (spec §3.3) — where
/// Mpo uses a QR sweep and an SVD sweep. Its outputs are committed in tests/fixtures/mpo_reference.safetensors.
module Mpo.Core.Tests.ReferenceFixtureTests

open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Core.Tests.Support

let cases =
    use file = SafeTensorsFile.Open(repoFile "tests/fixtures/mpo_reference.safetensors")
    let doc = JsonDocument.Parse(file.Metadata.["cases"])
    [ for case in doc.RootElement.EnumerateObject() ->
        let ints (name: string) = [| for v in case.Value.GetProperty(name).EnumerateArray() -> v.GetInt32() |]
        case.Name, MpoFactorization(ints "row_factors", ints "col_factors"), case.Value.GetProperty("cap").GetInt32() ]

let load (name: string) =
    use file = SafeTensorsFile.Open(repoFile "tests/fixtures/mpo_reference.safetensors")
    file.Load(name)

[<Tests>]
let tests =
    testList "Decomposition.ReferenceFixture" [
        for name, f, cap in cases ->
            test $"{name}: {f}" {
                let n = f.CoreCount
                use w = load $"{name}.W"
                use mpo = MpoDecomposer.Decompose(w, f)
                // Schmidt values and entropy
                for b in 1 .. n - 1 do
                    use expected = load $"{name}.lambda{b}"
                    Expect.isLessThan (relativeError (torch.tensor(mpo.Spectra.[b - 1], dtype = torch.float64)) expected) 1e-11 $"λ at bond {b}"
                use entropy = load $"{name}.entropy"
                Expect.isLessThan (relativeError (torch.tensor(Truncation.Entropy(mpo.Spectra), dtype = torch.float64)) entropy) 1e-11 "entropy"
                // the cores themselves, element by element: the decomposition fixes the ±1 per bond index by the
                // reference's rule (tools/reference/README.md), so they are the same tensors, not only the same operator
                for k in 0 .. n - 1 do
                    use theirs = load $"{name}.core{k}"
                    Expect.isLessThan (relativeError mpo.Cores.[k] theirs) 1e-9 $"core {k}"
                // one bond cut in half: the reference slices the gauged cores, Mpo re-truncates; both must be the best
                // rank-d/2 approximation of that unfolding
                for b in 1 .. n - 1 do
                    let bonds = Array.ofSeq mpo.Bonds
                    bonds.[b] <- bonds.[b] / 2
                    use cut = mpo.Truncate(bonds)
                    use expected = load $"{name}.cut{b}.W"
                    use expectedError = load $"{name}.cut{b}.error"
                    Expect.isLessThan (relativeError (cut.Reconstruct()) expected) 1e-9 $"cut bond {b}"
                    expectClose 1e-9 (frobenius (cut.Reconstruct()) w) (expectedError.item<float>()) $"cut bond {b} error"
                    expectClose 1e-9 (TruncationReport.Create(mpo, bonds).ErrorBound) (expectedError.item<float>()) $"cut bond {b}: bound = error"
                // uniform cap: same bound; the sequential re-truncation stays within it
                use bound = load $"{name}.cap.bound"
                let capped = Truncation.Plan(f, mpo.Spectra, TruncationSpec.MaxBond cap)
                expectClose 1e-9 (Truncation.ErrorBound(mpo.Spectra, capped)) (bound.item<float>()) "cap bound"
                use cut = mpo.Truncate(capped)
                Expect.isLessThanOrEqual (frobenius (cut.Reconstruct()) w) (bound.item<float>() * (1.0 + 1e-9)) "cap error ≤ bound" }
    ]
