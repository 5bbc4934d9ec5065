/// `mpo pretrain`: pre-trains the bundled tiny models (or one of them) from scratch and writes each, with its
/// tokenizer, model card and loss curve, to models/<name>. Interrupted runs resume from their last checkpoint.
module Mpo.Experiments.Cli.PretrainCommand

open System
open System.IO
open Argu
open TorchSharp
open Mpo.Models
open Mpo.Training
open Mpo.Experiments
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Pretraining
open Mpo.Experiments.Pretraining.TinyModels

/// Tokenizer files under the names Hugging Face's tokenizers look for.
let private copyTokenizer (source: string) (target: string) =
    let renames = dict [ "encoder.json", "vocab.json"; "vocab.bpe", "merges.txt" ]
    for file in Directory.GetFiles source do
        let name = Path.GetFileName file
        if name <> "README.md" then
            File.Copy(file, Path.Combine(target, (match renames.TryGetValue name with | true, n -> n | _ -> name)), true)

let pretrainOne (m: TinyModel) (modelsDir: string) (runsDir: string) (steps: int64 option) =
    let root = Data.Bundled.root ()
    let paths: Pretrain.Paths = { Run = Path.Combine(runsDir, m.Name); Model = Path.Combine(modelsDir, m.Name) }
    let total = float (defaultArg steps (int64 m.Steps))
    printfn "pre-training %s (%s) for %.0f updates; run folder %s" m.Name m.Architecture total paths.Run
    let outcome =
        Terminal.ProgressBar.track m.Name total (fun report ->
            let progress =
                { new IProgress<TrainingProgress> with
                    member _.Report p =
                        match p.Event with
                        | TrainingEvent.Step -> report (float p.Step) (sprintf "loss %.3f" p.Loss)
                        | TrainingEvent.Evaluation ->
                            let loss = p.Metrics.["loss"]
                            if not (Terminal.ProgressBar.interactive ()) then
                                printfn "  step %d/%d: dev loss %.4f (perplexity %.1f), %.0f s" p.Step p.TotalSteps loss (exp loss) p.Elapsed.TotalSeconds
                        | _ -> () }
            Pretrain.run root m paths steps progress)
    copyTokenizer (Path.Combine(root, "data", "tokenizers", m.Tokenizer)) paths.Model
    let spectra =
        use checkpoint = Mpo.Checkpoints.CheckpointFolder.Open paths.Model
        [ for name in checkpoint.TensorNames -> name, checkpoint.Load(name, dtype = torch.float32) ] |> SpectrumCheck.ofWeights
    let metrics = Path.Combine(paths.Run, MetricsLog.FileName)
    let figures = ModelCard.lossCurve m metrics outcome.UnigramCrossEntropy |> Plots.Export.save (Path.Combine(paths.Run, "loss.html")) 900 500
    let figure =
        figures |> List.tryFind (fun f -> f.EndsWith ".png")
        |> Option.map (fun png -> File.Copy(png, Path.Combine(paths.Model, "loss.png"), true); "loss.png")
    let card = ModelCard.markdown m outcome.Corpus outcome spectra figure (Reports.Machine.describe ())
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(paths.Model, "README.md"), card)
    Reports.Json.write (Path.Combine(paths.Model, "pretraining.json"))
        {| model = m.Name; architecture = m.Architecture; steps = outcome.Steps; train_seconds = outcome.TrainSeconds
           test_cross_entropy = outcome.TestCrossEntropy; test_perplexity = exp outcome.TestCrossEntropy
           unigram_cross_entropy = outcome.UnigramCrossEntropy; unigram_perplexity = exp outcome.UnigramCrossEntropy
           test_tokens = outcome.TestTokens; parameters = outcome.Parameters
           top10_energy = spectra |> List.averageBy (fun s -> s.TopEnergy)
           random_top10_energy = spectra |> List.averageBy (fun s -> s.RandomTopEnergy) |}
    printfn "%s: test perplexity %.1f (unigram %.1f) after %d updates in %.1f min -> %s"
        m.Name (exp outcome.TestCrossEntropy) (exp outcome.UnigramCrossEntropy) outcome.Steps (outcome.TrainSeconds / 60.0) paths.Model

let run (args: ParseResults<PretrainArgs>) =
    let models =
        match args.GetResult(PretrainArgs.Model, defaultValue = "all") with
        | "all" -> TinyModels.all
        | name -> [ TinyModels.find name ]
    let modelsDir = args.GetResult(PretrainArgs.Out, defaultValue = Data.Bundled.modelsFolder ())
    let runsDir = args.GetResult(PretrainArgs.Runs, defaultValue = Path.Combine(Data.Bundled.root (), "out", "pretrain"))
    let steps = args.TryGetResult PretrainArgs.Steps |> Option.map int64
    for m in models do pretrainOne m modelsDir runsDir steps
    0
