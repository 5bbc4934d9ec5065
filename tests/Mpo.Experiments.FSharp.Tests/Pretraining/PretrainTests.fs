/// The bundled tiny models (models/) and `mpo pretrain` itself: the committed weights must be really trained, load as
/// the architecture they claim, and fit the size budget; a killed pre-training run must resume to the same result.
module Mpo.Experiments.Tests.Pretraining.PretrainTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Models
open Mpo.Experiments.Pretraining
open Mpo.Experiments.Tests.Support

let private modelFolder (m: TinyModels.TinyModel) = repoFile $"models/{m.Name}"

let private committed (m: TinyModels.TinyModel) =
    test $"{m.Name}: trained weights, loadable, better than the unigram baseline" {
        let folder = modelFolder m
        use checkpoint = CheckpointFolder.Open folder
        Expect.equal (ModelRegistry.StoredArchitecture checkpoint) m.Architecture "config.json names the class"
        for file in [ "README.md"; "pretraining.json" ] do
            Expect.isTrue (File.Exists(Path.Combine(folder, file))) $"{file} present"
        // Really trained: the weight spectra decay faster than those of Gaussian matrices of the same shapes.
        let spectra = SpectrumCheck.ofWeights [ for n in checkpoint.TensorNames -> n, checkpoint.Load(n, dtype = torch.float32) ]
        let trained = spectra |> List.averageBy (fun s -> s.TopEnergy)
        let random = spectra |> List.averageBy (fun s -> s.RandomTopEnergy)
        // A Gaussian matrix's top-10% energy varies by ~0.3 points between seeds at these shapes (less for the mean over
        // a model's matrices): 5 points above it is far outside chance.
        Expect.isGreaterThan trained (random + 0.05) "top-10% energy at least 5 points above a Gaussian matrix's"
        // The card's numbers: held-out cross-entropy below the unigram baseline's.
        use summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "pretraining.json")))
        let value (key: string) = summary.RootElement.GetProperty(key).GetDouble()
        Expect.isLessThan (value "test_cross_entropy") (value "unigram_cross_entropy") "beats the unigram baseline"
        // Loads as its class and runs.
        let struct (model, report) = PretrainedModel.Load folder
        use model = model
        Expect.isEmpty report.NewlyInitialized "nothing initialized at random"
        use ids = torch.tensor([| 5L; 6L; 7L; 8L |]).reshape(1L, 4L)
        let inputs = if m.Objective = TinyModels.SpanCorruption then ModelInputs(ids, DecoderInputIds = ids) else ModelInputs ids
        use logits = (model.forward inputs).Logits
        Expect.isTrue (logits.isfinite().all().item<bool>()) "finite logits"
    }

/// Files of a folder with their bytes, for exact comparisons.
let private contents (folder: string) =
    Directory.GetFiles(folder) |> Array.sort |> Array.map (fun f -> Path.GetFileName f, File.ReadAllBytes f) |> Map.ofArray

/// Starts `mpo pretrain` without waiting.
let private start (dir: string) (args: string list) =
    let psi = ProcessStartInfo("dotnet", mpoDll :: args, WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true)
    psi.Environment.["CI"] <- "true"
    let p = Process.Start psi
    p.StandardOutput.ReadToEndAsync() |> ignore
    p.StandardError.ReadToEndAsync() |> ignore
    p

[<Tests>]
let tests =
    testSequenced <| testList "Pretraining" [
        yield! TinyModels.all |> List.map committed
        test "all bundled weights together fit in 60 MB" {
            let bytes = TinyModels.all |> List.sumBy (fun m -> FileInfo(Path.Combine(modelFolder m, "model.safetensors")).Length)
            Expect.isLessThanOrEqual bytes (60L * 1024L * 1024L) "issue 3 budget"
        }
        test "a killed pre-training run resumes to exactly the model an uninterrupted run writes" {
            inTempDir (fun dir ->
                let args name = [ "pretrain"; "tiny-t5"; "--steps"; "8"; "--out"; Path.Combine(dir, name); "--runs"; Path.Combine(dir, name + "-runs") ]
                let whole = mpo dir (args "whole")
                Expect.equal whole.Code 0 $"uninterrupted run; stderr: {whole.Err}"
                // Kill the second run once it has written a checkpoint, then start it again.
                let manifest = Path.Combine(dir, "killed-runs", "tiny-t5", "checkpoints.json")
                let p = start dir (args "killed")
                let clock = Stopwatch.StartNew()
                while not (File.Exists manifest) && not p.HasExited && clock.Elapsed < TimeSpan.FromMinutes 5.0 do
                    Threading.Thread.Sleep 200
                Expect.isFalse p.HasExited "killed before finishing (a checkpoint comes after 2 of 8 updates)"
                p.Kill true
                p.WaitForExit()
                let resumed = mpo dir (args "killed")
                Expect.equal resumed.Code 0 $"resumed run; stderr: {resumed.Err}"
                let a = contents (Path.Combine(dir, "whole", "tiny-t5"))
                let b = contents (Path.Combine(dir, "killed", "tiny-t5"))
                Expect.sequenceEqual (b.["model.safetensors"]) (a.["model.safetensors"]) "identical weights, byte for byte"
                let losses folder =
                    File.ReadAllLines(Path.Combine(dir, folder, "tiny-t5", "metrics.jsonl"))
                    |> Array.map (fun l -> use d = JsonDocument.Parse l in d.RootElement.TryGetProperty("loss") |> function | true, v -> Some (v.GetDouble()) | _ -> None)
                    |> Array.choose id
                Expect.sequenceEqual (losses "killed-runs") (losses "whole-runs") "the same losses, step by step")
        }
    ]
