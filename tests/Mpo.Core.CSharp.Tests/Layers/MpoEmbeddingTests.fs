module Mpo.Core.Tests.MpoEmbeddingTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Layers
open Mpo.Core.Tests.Support

[<Tests>]
let tests =
    testList "Layers.MpoEmbedding" [
        test "a padded vocabulary (61 rows as 64) looks up the same rows as the dense table on both paths" {
            use table = gaussian 1 [ 61L; 24L ] torch.float64
            let f = FactorizationChooser.Choose(61, 24, 3)
            Expect.isTrue f.IsPadded "61 is prime: padded"
            use layer = MpoEmbedding.FromWeight(table, f)
            use ids = torch.tensor([| 0L; 60L; 3L; 3L; 42L |])
            use expected = table.index_select(0L, ids)
            for path in [ ContractionPath.Reconstruct; ContractionPath.Factorized; ContractionPath.Auto ] do
                layer.Path <- path
                Expect.isLessThan (relativeError (layer.forward ids) expected) 1e-10 $"{path}"
            use merged = layer.Merge()
            Expect.equal (merged.weight.shape |> List.ofArray) [ 61L; 24L ] "merge drops the padding rows"
            Expect.isLessThan (relativeError merged.weight table) 1e-10 "merge = table" }

        test "ids outside the vocabulary (including padding rows) are refused" {
            use layer = MpoEmbedding.FromWeight(gaussian 2 [ 61L; 24L ] torch.float64, FactorizationChooser.Choose(61, 24, 3))
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> layer.forward(torch.tensor([| 61L |])) |> ignore) "id 61 (a padding row)"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> layer.forward(torch.tensor([| -1L |])) |> ignore) "id -1" }

        test "truncating a trained padded table: padding rows zeroed first, so it equals truncating its real rows; norm and error over real rows" {
            let f = MpoFactorization([|2;4;4|], [|3;2;4|], rows = 30, cols = 24)
            use table = compressible (MpoFactorization([|2;4;4|], [|3;2;4|])) 0.6 31 torch.float64 |> fun t -> t.narrow(0L, 0L, 30L).contiguous()
            use layer = MpoEmbedding.FromWeight(table, f)
            // "training" moves every core, so the rows past 30 no longer reconstruct to zero
            use _ = torch.no_grad()
            for (c: Modules.Parameter) in layer.Cores do c.add_(gaussian 32 (List.ofArray c.shape) torch.float64 * 0.3) |> ignore
            let whole = Mpo.Contraction.MpoContraction.Reconstruct([| for c in layer.Cores -> c :> torch.Tensor |], MpoFactorization([|2;4;4|], [|3;2;4|]))
            Expect.isGreaterThan (whole.narrow(0L, 30L, 2L).norm().item<float>()) 0.1 "the padding rows drifted"
            use real = layer.Weight()
            let report = layer.Truncate(TruncationSpec.MaxBond 5)
            use after = layer.Weight()
            expectClose 1e-10 report.FrobeniusNorm (real.norm().item<float>()) "‖W‖ over the real rows"
            expectClose 1e-9 report.ActualError.Value (frobenius after real) "error over the real rows"
            Expect.isLessThanOrEqual report.ActualError.Value (report.ErrorBound * (1.0 + 1e-9)) "within the bound"
            use reference = MpoEmbedding.FromWeight(real, f, TruncationSpec.MaxBond 5)
            Expect.isLessThan (relativeError after (reference.Weight())) 1e-9 "= truncating the decomposition of the real rows" }

        test "Squeeze of a trained padded table (cut during the re-gauging sweep) equals Truncate (re-gauged from its real rows, then cut): same bonds, matrix and spectra" {
            let f = MpoFactorization([|2;4;4|], [|3;2;4|], rows = 30, cols = 24)
            use table = compressible (MpoFactorization([|2;4;4|], [|3;2;4|])) 0.6 33 torch.float64 |> fun t -> t.narrow(0L, 0L, 30L).contiguous()
            let trained () =
                let layer = MpoEmbedding.FromWeight(table, f)
                use _ = torch.no_grad()
                for (c: Modules.Parameter) in layer.Cores do c.add_(gaussian 34 (List.ofArray c.shape) torch.float64 * 0.3) |> ignore
                layer
            use squeezed = trained ()
            use truncated = trained ()
            let bonds = squeezed.Bonds
            // one unit off the central bond, and a deeper cut of the first, as dimension squeezing and MPOP_dir ask
            let wanted = [| for b in 1 .. bonds.Length - 2 -> if b = 1 then bonds.[b] - 2 else bonds.[b] - 1 |]
            squeezed.Squeeze(TruncationSpec.PerBond wanted)
            truncated.Truncate(TruncationSpec.PerBond wanted) |> ignore
            Expect.sequenceEqual squeezed.Bonds truncated.Bonds "same bonds"
            use a = squeezed.Weight()
            use b = truncated.Weight()
            Expect.isLessThan (relativeError a b) 1e-10 "same matrix"
            for s, t in Seq.zip squeezed.Spectra truncated.Spectra do
                Expect.isLessThan (Array.map2 (fun x y -> abs (x - y)) s t |> Array.max) 1e-10 "same stored Schmidt values" }

        test "padding_idx: its positions send no gradient into the cores, and the merged table keeps it" {
            use table = gaussian 4 [ 61L; 24L ] torch.float64
            let f = FactorizationChooser.Choose(61, 24, 3)
            use layer = MpoEmbedding.FromWeight(table, f, paddingIdx = 2L)
            Expect.equal layer.PaddingIdx (Nullable 2L) "kept"
            let gradients (ids: int64[]) =
                layer.zero_grad()
                use out = layer.forward(torch.tensor(ids))
                out.square().sum().backward()
                [ for c in layer.Cores -> c.grad.clone() ]
            for path in [ ContractionPath.Reconstruct; ContractionPath.Factorized ] do
                layer.Path <- path
                use values = layer.forward(torch.tensor([| 2L; 5L |]))
                Expect.isLessThan (relativeError (values.select(0L, 0L)) (table.select(0L, 2L))) 1e-10 $"{path}: the padding row still looks up its value"
                let withPad = gradients [| 2L; 5L; 2L |]
                let without = gradients [| 5L |]
                for g, h in List.zip withPad without do
                    Expect.isLessThan (frobenius g h) 1e-12 $"{path}: padding positions add no gradient"
            use merged = layer.Merge()
            merged.forward(torch.tensor([| 2L; 7L |])).sum().backward()
            Expect.equal (merged.weight.grad.select(0L, 2L).abs().sum().item<float>()) 0.0 "merged: padding row gets no gradient"
            Expect.isGreaterThan (merged.weight.grad.select(0L, 7L).abs().sum().item<float>()) 0.0 "other rows do" }

        test "gradients from a lookup reach only auxiliary tensors when the central one is frozen" {
            use layer = MpoEmbedding.FromWeight(gaussian 3 [ 64L; 24L ] torch.float64)
            layer.FreezeCentral()
            layer.Path <- ContractionPath.Factorized
            layer.forward(torch.tensor([| 1L; 2L |])).sum().backward()
            Expect.isNull (box layer.Central.grad) "central"
            Expect.isTrue (layer.Auxiliary |> Seq.forall (fun a -> not (isNull (box a.grad)))) "auxiliary" }
    ]
