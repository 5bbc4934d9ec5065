module Mpo.Experiments.Tests.CliTests

open System.Collections.Generic
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experiments.Tests.Support

/// A small decaying-spectrum matrix [48, 36] saved as F32 (and a 3-D tensor, for the error path).
let writeInput (dir: string) =
    let path = Path.Combine(dir, "w.safetensors")
    use g = new torch.Generator(7UL)
    let u = torch.randn([| 48L; 36L |], dtype = torch.float64, generator = g)
    let s = torch.arange(36L, dtype = torch.float64).mul(torch.tensor(-0.15, dtype = torch.float64)).exp()
    let w = (u * s.unsqueeze(0L)).``to``(torch.float32)
    SafeTensors.Save(path, [ KeyValuePair("layer.weight", w); KeyValuePair("cube", torch.zeros(2L, 2L, 2L)) ])
    path, w

let expectBadInput (run: Run) (fragment: string) =
    Expect.equal run.Code 2 $"exit code 2 for bad input; stderr: {run.Err}"
    Expect.stringContains run.Err fragment "the error names the problem"

[<Tests>]
let tests =
    testSequenced <| testList "Cli" [
        test "decompose writes cores that reconstruct the matrix within the reported error, and a full report" {
            inTempDir (fun dir ->
                let input, w = writeInput dir
                let run = mpo dir [ "decompose"; "--input"; input; "--tensor"; "layer.weight"; "--rows"; "2,4,3,2"; "--cols"; "3,2,3,2"
                                    "--max-bond"; "5"; "--out"; "cores.safetensors"; "--report"; "report.json" ]
                Expect.equal run.Code 0 $"success; stderr: {run.Err}"
                use cores = SafeTensorsFile.Open(Path.Combine(dir, "cores.safetensors"))
                Expect.equal cores.Metadata.["row_factors"] "2,4,3,2" "factors in metadata"
                let names = cores.Tensors |> Seq.map (fun t -> t.Name) |> Set.ofSeq
                Expect.equal names (set [ "layer.weight.central"; "layer.weight.aux0"; "layer.weight.aux1"; "layer.weight.aux2" ]) "role names"
                let f = MpoFactorization([| 2; 4; 3; 2 |], [| 3; 2; 3; 2 |])
                let ordered = [ for k in 0 .. 3 -> cores.Load(if k = f.CentralIndex then "layer.weight.central" else $"layer.weight.aux{if k < f.CentralIndex then k else k - 1}") ]
                let back = Mpo.Contraction.MpoContraction.Reconstruct(ordered, f)
                let error = (back - w).norm().item<float32>() |> float
                let report = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json"))).RootElement.GetProperty("mpo")
                let reported = report.GetProperty("actual_error").GetDouble()
                Expect.floatClose Accuracy.medium error reported "cores reproduce the reported error"
                Expect.isLessThanOrEqual reported (report.GetProperty("error_bound").GetDouble() * (1.0 + 1e-6)) "error ≤ bound"
                for key in [ "row_factors"; "col_factors"; "bonds"; "parameters"; "compression_ratio"; "spectra"; "discarded_weight"; "entropy" ] do
                    Expect.isTrue (report.TryGetProperty(key) |> fst) $"report has {key}"
                Expect.isTrue (report.GetProperty("bonds").EnumerateArray() |> Seq.forall (fun b -> b.GetInt32() <= 5)) "capped at 5") }

        test "without factors the chooser decides; inspect lists the written tensors" {
            inTempDir (fun dir ->
                let input, _ = writeInput dir
                let run = mpo dir [ "decompose"; "-i"; input; "-t"; "layer.weight"; "--tolerance"; "0.2"; "-o"; "c.safetensors" ]
                Expect.equal run.Code 0 run.Err
                let inspect = mpo dir [ "inspect"; "c.safetensors" ]
                Expect.equal inspect.Code 0 inspect.Err
                Expect.stringContains inspect.Out "layer.weight.central" "lists the central tensor"
                Expect.stringContains inspect.Out "metadata row_factors" "shows metadata") }

        test "--help on every command shows examples" {
            for cmd in [ []; [ "decompose" ]; [ "inspect" ]; [ "demo" ]; [ "run" ]; [ "report" ]; [ "notebook" ] ] do
                let run = mpo "." (cmd @ [ "--help" ])
                Expect.equal run.Code 0 $"help exits 0 for {cmd}"
                Expect.stringContains run.Out "Examples:" $"examples for {cmd}" }

        testList "bad input: exit code 2 and a message naming the file, tensor or argument" [
            let case name (args: string -> string -> string list) fragment =
                test name {
                    inTempDir (fun dir ->
                        let input, _ = writeInput dir
                        let run = mpo dir (args dir input)
                        expectBadInput run (fragment dir input)
                        Expect.isFalse (File.Exists(Path.Combine(dir, "out.safetensors"))) "nothing written") }
            case "missing tensor name" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.wieght"; "-o"; "out.safetensors" ]) (fun _ _ -> "layer.weight")
            case "missing file" (fun _ _ -> [ "decompose"; "-i"; "nope.safetensors"; "-t"; "x"; "-o"; "out.safetensors" ]) (fun _ _ -> "nope.safetensors")
            case "factors whose product differs" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--rows"; "2,4,3,3"; "--cols"; "3,2,3,2"; "-o"; "out.safetensors" ]) (fun _ _ -> "multiply to 72, not to the 48 rows")
            case "only one of rows/cols" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--rows"; "2,4,3,2"; "-o"; "out.safetensors" ]) (fun _ _ -> "--rows and --cols")
            case "a single core" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--rows"; "48"; "--cols"; "36"; "-o"; "out.safetensors" ]) (fun _ _ -> "at least 2 cores")
            case "malformed factor list" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--rows"; "2,x"; "--cols"; "3,12"; "-o"; "out.safetensors" ]) (fun _ _ -> "--rows expects positive integers")
            case "non-2-D tensor" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "cube"; "-o"; "out.safetensors" ]) (fun _ _ -> "2-D matrix")
            case "impossible bond request" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--max-bond"; "0"; "-o"; "out.safetensors" ]) (fun _ _ -> "at least 1")
            case "impossible budget" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--budget"; "3"; "-o"; "out.safetensors" ]) (fun _ _ -> "impossible budget")
            case "two truncations at once" (fun _ i -> [ "decompose"; "-i"; i; "-t"; "layer.weight"; "--budget"; "300"; "--max-bond"; "3"; "-o"; "out.safetensors" ]) (fun _ _ -> "at most one")
            case "malformed safetensors (header length past the end)" (fun d _ ->
                let bad = Path.Combine(d, "bad.safetensors")
                File.WriteAllBytes(bad, Array.append (System.BitConverter.GetBytes(1000UL)) "{}"B)
                [ "decompose"; "-i"; bad; "-t"; "x"; "-o"; "out.safetensors" ]) (fun d _ -> "bad.safetensors")
            case "unknown option" (fun _ i -> [ "decompose"; "-i"; i; "--frobnicate" ]) (fun _ _ -> "frobnicate")
        ]
    ]
