/// Truncating every weight matrix of a model (the main job): which tensors are decomposed, that an untruncated MPO
/// gives the model back, that the SVD baseline gets the same budget and the Eckart–Young error, and that scoring
/// with substituted weights leaves the model as it was.
module Mpo.Experiments.Tests.ModelTruncationTests

open System.IO
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Models
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Tests.Support

/// The BERT reference fixture (hidden 32, 2 layers, vocabulary 99): small enough to decompose in a test.
let private fixture () =
    let struct (model, _) = PretrainedModel.Load(Path.GetDirectoryName(repoFile "tests/fixtures/models/BertForMaskedLM/config.json"))
    model

let private relative (a: torch.Tensor) (b: torch.Tensor) = (a - b).norm().item<float>() / b.norm().item<float>()

[<Tests>]
let tests =
    testSequenced <| testList "Decomposition.ModelTruncation" [
        test "selects MPOP's matrices: the word embedding, attention and FFN weights; not positions, segments, norms, biases or the head" {
            use model = fixture ()
            let names = ModelTruncation.selectWeights model |> List.map fst
            let perLayer = [ "attention.self.query"; "attention.self.key"; "attention.self.value"; "attention.output.dense"; "intermediate.dense"; "output.dense" ]
            let expected =
                [ "bert.embeddings.word_embeddings.weight" ]
                @ [ for l in 0 .. 1 do for p in perLayer -> $"bert.encoder.layer.{l}.{p}.weight" ]
            Expect.equal (Set.ofList names) (Set.ofList expected) "MPOP's matrices"
            Expect.equal names.Length expected.Length "each once (the tied decoder is the embedding)" }

        test "untruncated: every MPO reconstructs its matrix; the SVD baseline at that budget is exact where it fits" {
            use model = fixture ()
            let matrices = ModelTruncation.selectWeights model |> ModelTruncation.decompose
            for m in matrices do
                use scope = torch.NewDisposeScope()
                let c = ModelTruncation.cut (TruncationSpec.MaxBond System.Int32.MaxValue) m
                Expect.isLessThan (relative c.MpoWeight m.Weight) 1e-12 $"{m.Name}: full-rank MPO is exact"
                Expect.isLessThan (c.Report.RelativeError.Value) 1e-12 $"{m.Name}: report agrees"
                if int64 (min m.Rows m.Cols) * int64 (m.Rows + m.Cols) <= c.Report.Parameters then
                    Expect.isLessThan c.SvdRelativeError 1e-12 $"{m.Name}: full-rank SVD fits the budget and is exact" }

        test "capped: SVD rank r is the largest whose r·(rows+cols) fits the MPO's parameters; its error is Eckart–Young's" {
            use model = fixture ()
            let matrices = ModelTruncation.selectWeights model |> ModelTruncation.decompose
            for m in matrices do
                use scope = torch.NewDisposeScope()
                let c = ModelTruncation.cut (TruncationSpec.MaxBond 4) m
                let width = int64 (m.Rows + m.Cols)
                Expect.isLessThanOrEqual (int64 c.SvdRank * width) c.Report.Parameters $"{m.Name}: SVD within the budget"
                Expect.isTrue (c.SvdRank = min m.Rows m.Cols || int64 (c.SvdRank + 1) * width > c.Report.Parameters) $"{m.Name}: and no smaller than it must be"
                // Eckart–Young: the best rank-r error is the norm of the discarded singular values (svdvals, independently)
                let s = torch.linalg.svdvals(m.Weight).data<float>().ToArray()
                let tail = s |> Array.skip c.SvdRank |> Array.sumBy (fun x -> x * x)
                Expect.floatClose Accuracy.high c.SvdRelativeError (sqrt (tail / (s |> Array.sumBy (fun x -> x * x)))) $"{m.Name}: tail of the spectrum"
                Expect.floatClose Accuracy.high (relative c.MpoWeight m.Weight) c.Report.RelativeError.Value $"{m.Name}: MPO error as reported"
                Expect.isLessThanOrEqual c.Report.RelativeError.Value (c.Report.RelativeBound * (1.0 + 1e-9)) $"{m.Name}: within MPOP's bound" }

        test "scoring with substituted weights sees them, then leaves every parameter bit-identical" {
            use model = fixture ()
            let matrices = ModelTruncation.selectWeights model |> ModelTruncation.decompose
            let before = [ for struct (n, p) in model.named_parameters () -> n, p.clone() ]
            let zeros = [ for m in matrices -> m.Name, torch.zeros_like(m.Weight) ]
            let seen = ModelTruncation.evaluateWith model matrices zeros (fun () ->
                [ for struct (n, p) in model.named_parameters () do if zeros |> List.exists (fst >> (=) n) then yield p.abs().sum().item<float32>() ])
            Expect.isTrue (seen |> List.forall ((=) 0.0f)) "the evaluation ran on the substituted (zero) weights"
            for (n, b), struct (_, p) in List.zip before (List.ofSeq (model.named_parameters ())) do
                Expect.isTrue (p.eq(b).all().item<bool>()) $"{n} restored exactly" }
    ]
