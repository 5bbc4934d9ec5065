module Mpo.Experiments.Tests.EmbeddingStudyTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Tests.Support

type Tensor = torch.Tensor

/// A matrix whose tensorization (the chooser's n = 3 factors) has CP rank 2, hence MPO bonds ≤ 2 and multilinear
/// ranks ≤ 2: CP, Tucker and the MPO can each hold it exactly in few parameters; a truncated SVD of W cannot.
let rows, cols = 60, 24
let f3 = FactorizationChooser.Choose(rows, cols, 3)
let lowCpRank () =
    use g = new torch.Generator(11UL)
    let factors = [| for k in 0 .. 2 -> torch.randn([| int64 (f3.Physical k); 2L |], dtype = torch.float64, generator = g) |]
    Tensorization.ToMatrix(CpDecomposition.Reconstruct(factors, torch.ones(2L, dtype = torch.float64)), f3)

let sumA = Tensorization.Modes f3 |> Array.sum |> float
let dense = float (rows * cols)

let settings =
    { EmbeddingStudy.quickSettings with
        MpoCores = [ 3 ]
        CpCores = [ 3 ]
        TuckerCores = [ 3 ]
        // CP rank ⌊2.5⌋ = 2 at the first budget; the MPO's bonds of 2 (≤ 4·Σa parameters) fit the second
        Ratios = [ 4.5 * sumA / dense; 2.5 * sumA / dense ]
        Cp = CpOptions(MaxIterations = 2000, Tolerance = 1e-15) }

let messageOf (f: unit -> unit) =
    try
        f ()
        failtest "expected an error"
    with
    | :? AssertException -> reraise ()
    | e -> e.Message

let inCheckpoint (name: string) (w: Tensor) (action: string -> unit) =
    inTempDir (fun dir ->
        let folder = Path.Combine(dir, "my-model")
        CheckpointFolder.Save(folder, [ KeyValuePair(name, w); KeyValuePair("lm_head.bias", torch.zeros(int64 rows)) ])
        action folder)

let study = lazy (
    use w = lowCpRank ()
    let mutable points = []
    inCheckpoint "transformer.wte.weight" w (fun folder ->
        let e = EmbeddingStudy.load folder
        points <- EmbeddingStudy.run settings e)
    points)

[<Tests>]
let tests =
    testList "Decomposition.EmbeddingStudy" [
        test "the word embedding is found by its family's name; a folder without one is named in the error" {
            use w = lowCpRank ()
            inCheckpoint "bert.embeddings.word_embeddings.weight" w (fun folder ->
                let e = EmbeddingStudy.load folder
                Expect.equal (e.Model, e.Tensor, e.Rows, e.Cols) ("my-model", "bert.embeddings.word_embeddings.weight", rows, cols) "found"
                Expect.equal e.Weight.dtype torch.float64 "float64")
            inCheckpoint "encoder.layer.0.weight" w (fun folder ->
                let message = messageOf (fun () -> EmbeddingStudy.load folder |> ignore)
                Expect.stringContains message folder "names the folder"
                Expect.stringContains message "word embedding" "says what is missing") }

        test "every point fits its budget; ρ, errors and bounds are what they say" {
            let points = study.Force()
            use w = lowCpRank ()
            let norm = w.norm().item<float>()
            let singular = (use s = torch.linalg.svdvals(w) in s.data<float>().ToArray())
            for p in points do
                Expect.floatClose Accuracy.veryHigh p.CompressionRatio (float p.Parameters / dense) $"{EmbeddingStudy.series p}: ρ"
                Expect.floatClose Accuracy.veryHigh p.RelativeError (p.Error / norm) $"{EmbeddingStudy.series p}: relative error"
                match p.TargetRatio with
                | Some target -> Expect.isLessThanOrEqual (float p.Parameters) (target * dense) $"{EmbeddingStudy.series p}: within the budget"
                | None -> Expect.isLessThan p.RelativeError 1e-12 "the full-bond MPO is exact"
                match p.Method, p.RelativeBound with
                | ("mpo" | "tucker"), Some bound -> Expect.isLessThanOrEqual p.RelativeError (bound * (1.0 + 1e-9) + 1e-12) $"{EmbeddingStudy.series p}: error ≤ bound"
                | "svd", _ ->
                    // Eckart–Young from W's own singular values
                    let tail = singular |> Array.skip p.Rank |> Array.sumBy (fun s -> s * s)
                    Expect.floatClose Accuracy.high p.RelativeError (sqrt tail / norm) "SVD error"
                    Expect.equal p.Parameters (int64 p.Rank * int64 (rows + cols)) "r·(rows + cols)"
                | _ -> ()
            let methods = points |> List.map EmbeddingStudy.series |> List.distinct
            Expect.equal methods [ "SVD"; "MPO n = 3"; "CP n = 3"; "Tucker n = 3" ] "every method ran" }

        test "a matrix of CP rank 2 after tensorization is recovered by CP, Tucker and the MPO at their budgets, not by the SVD" {
            let points = study.Force()
            let at (series: string) ratio = points |> List.find (fun p -> EmbeddingStudy.series p = series && p.TargetRatio = Some ratio)
            let small, large = settings.Ratios.[1], settings.Ratios.[0]
            let cp = at "CP n = 3" small
            Expect.equal cp.Rank 2 "CP rank ⌊budget / Σa⌋"
            Expect.isLessThan cp.RelativeError 1e-8 $"CP recovers it ({cp.Iterations} sweeps)"
            Expect.isLessThan (at "Tucker n = 3" small).RelativeError 1e-10 "Tucker (ranks 2) recovers it"
            Expect.isLessThan (at "MPO n = 3" large).RelativeError 1e-10 "the MPO (bonds 2) recovers it"
            Expect.isGreaterThan (at "SVD" small).RelativeError 1e-3 "the SVD of the same size does not" }

        test "JSON lines round-trip; a malformed line names the file and line" {
            let points = study.Force()
            inTempDir (fun dir ->
                let path = Path.Combine(dir, "points.jsonl")
                EmbeddingStudy.write path points
                Expect.equal (File.ReadAllLines path).Length points.Length "one line per point"
                Expect.equal (EmbeddingStudy.read path) points "read = written"
                Expect.stringContains (File.ReadAllLines path).[0] "\"compression_ratio\":" "snake_case keys"
                File.AppendAllText(path, "{\"model\": oops\n")
                let message = messageOf (fun () -> EmbeddingStudy.read path |> ignore)
                Expect.stringContains message $"points.jsonl:{points.Length + 1}" "names the file and line") }

        test "the table has one row per budget and '–' where a method has no point" {
            let points = study.Force() |> List.filter (fun p -> not (p.Method = "cp" && p.TargetRatio = Some settings.Ratios.[0]))
            let table = EmbeddingStudy.table points
            let lines = table.Split('\n')
            Expect.equal lines.Length 4 "header, rule, two budgets"
            Expect.stringContains lines.[0] "CP n = 3" "a column per method"
            Expect.stringContains lines.[2] "–" "the CP point left out" }
    ]
