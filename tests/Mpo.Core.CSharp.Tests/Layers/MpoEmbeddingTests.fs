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

        test "gradients from a lookup reach only auxiliary tensors when the central one is frozen" {
            use layer = MpoEmbedding.FromWeight(gaussian 3 [ 64L; 24L ] torch.float64)
            layer.FreezeCentral()
            layer.Path <- ContractionPath.Factorized
            layer.forward(torch.tensor([| 1L; 2L |])).sum().backward()
            Expect.isNull (box layer.Central.grad) "central"
            Expect.isTrue (layer.Auxiliary |> Seq.forall (fun a -> not (isNull (box a.grad)))) "auxiliary" }
    ]
