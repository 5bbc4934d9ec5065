/// The command line, declared (Argu). Each command's help ends with examples (see Program.examples).
module Mpo.Experiments.Cli.Arguments

open Argu

type DecomposeArgs =
    | [<Mandatory; AltCommandLine("-i")>] Input of path: string
    | [<Mandatory; AltCommandLine("-t")>] Tensor of name: string
    | Rows of factors: string
    | Cols of factors: string
    | Cores of n: int
    | Max_Bond of d: int
    | Tolerance of eps: float
    | Budget of parameters: int64
    | Dtype of dtype: string
    | [<Mandatory; AltCommandLine("-o")>] Out of path: string
    | Report of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "safetensors file holding the matrix."
            | Tensor _ -> "name of the 2-D tensor to decompose (as listed by `mpo inspect`)."
            | Rows _ -> "row factors i_1,…,i_n (their product must equal the rows); with --cols. Default: chosen (zero-padded where a size factors badly)."
            | Cols _ -> "column factors j_1,…,j_n (their product must equal the columns)."
            | Cores _ -> "number of cores n when factors are chosen automatically (default 5)."
            | Max_Bond _ -> "truncate: cap every bond at D (the papers' truncate_num)."
            | Tolerance _ -> "truncate: fewest parameters with error bound ≤ EPS·‖W‖_F (relative)."
            | Budget _ -> "truncate: smallest error bound within P MPO parameters."
            | Dtype _ -> "dtype of the written cores: f32 (default for f16/bf16 inputs), f64, f16, bf16; default: the input's."
            | Out _ -> "safetensors file for the cores (<tensor>.central, <tensor>.aux0, …; factors and bonds in its metadata)."
            | Report _ -> "JSON report: factors, bonds, parameters, ratio, per-bond singular values, ε_b, bound, actual error, entropy."

type InspectArgs =
    | [<MainCommand; Mandatory>] Path of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Path _ -> "a safetensors file, or a checkpoint folder (all *.safetensors in it, sharded index included)."

[<RequireQualifiedAccess>]
type DemoArgs =
    | [<MainCommand>] Model of name: string
    | Out of dir: string
    | Quick
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "the bundled pre-trained model to decompose: tiny-bert (default), tiny-gpt2 or tiny-t5."
            | Out _ -> "folder for report.json, table.md and the figures (default out/demo)."
            | Quick -> "one truncation and 4 held-out batches (CI)."

[<RequireQualifiedAccess>]
type ForwardArgs =
    | [<Mandatory; AltCommandLine("-m")>] Model of dir: string
    | [<Mandatory; AltCommandLine("-i")>] Input of path: string
    | [<Mandatory; AltCommandLine("-o")>] Out of path: string
    | Architecture of hf_class: string
    | Dtype of dtype: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "checkpoint folder in Hugging Face layout (config.json + model.safetensors or a sharded index)."
            | Input _ -> "safetensors file with int tensors [batch, seq]: input_ids, and optionally attention_mask, token_type_ids, decoder_input_ids, decoder_attention_mask."
            | Out _ -> "safetensors file for logits, last_hidden_state (and encoder_last_hidden_state for encoder-decoders)."
            | Architecture _ -> "HF class to build instead of the checkpoint's (e.g. BertModel); another head is initialized at random."
            | Dtype _ -> "compute dtype: f32 (default) or f64."

[<RequireQualifiedAccess>]
type PretrainArgs =
    | [<MainCommand>] Model of name: string
    | Steps of updates: int
    | Out of dir: string
    | Runs of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "tiny-bert, tiny-gpt2, tiny-t5 or all (default)."
            | Steps _ -> "optimizer updates instead of the model's budget (short smoke runs)."
            | Out _ -> "folder that receives models/<name> (default: the repository's models/)."
            | Runs _ -> "folder for checkpoints and metrics.jsonl (default out/pretrain); a run found there resumes."

[<RequireQualifiedAccess>]
type FinetuneArgs =
    | [<MainCommand>] Models of model: string list
    | Task of name: string
    | Data of dir: string
    | Epochs of n: int
    | Batch_Size of n: int
    | Learning_Rate of lr: float
    | Max_Length of tokens: int
    | Seed of seed: int
    | Steps of updates: int
    | Train_Examples of n: int
    | Out of dir: string
    | Runs of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Models _ -> "tiny-bert, tiny-gpt2, tiny-t5, a checkpoint folder in Hugging Face layout, or all (default: the three tiny models)."
            | Task _ -> "spam, sotu-party, all (default), or a GLUE task name (STS-B included) with --data."
            | Data _ -> "folder with the task's train.tsv, dev.tsv and test.tsv, all labelled (default: the bundled data/tasks/<task>)."
            | Epochs _ -> "passes over the training split (default 3)."
            | Batch_Size _ -> "examples per update (default 16)."
            | Learning_Rate _ -> "AdamW peak learning rate (default 2e-4)."
            | Max_Length _ -> "longest input row in tokens, special tokens included (default 128)."
            | Seed _ -> "seed of the head's initialization, shuffling and dropout (default 42)."
            | Steps _ -> "stop after this many updates (smoke runs)."
            | Train_Examples _ -> "train on the first N training examples only (smoke runs)."
            | Out _ -> "folder for results.json, README.md (the table) and the figure (default out/finetune)."
            | Runs _ -> "folder for each run's checkpoints and metrics.jsonl (default <out>/runs); a run found there resumes."

[<RequireQualifiedAccess>]
type CountArgs =
    | [<Mandatory>] Config of path: string
    | Mpo of preset: string
    | Architecture of hf_class: string
    | Labels of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Config _ -> "a model's config.json (or a checkpoint folder holding one); no weights are read."
            | Mpo _ -> "decompose MPOP's matrices: a preset (mpop, mpop-albert, mpop-albert-code, mpop-bert) or a tuner configuration JSON file."
            | Architecture _ -> "HF class to count (default: the family's sequence-classification head; T5ForConditionalGeneration for T5)."
            | Labels _ -> "number of labels of the classification head (default: the config's, else 2)."

type MpoArgs =
    | [<CliPrefix(CliPrefix.None)>] Decompose of ParseResults<DecomposeArgs>
    | [<CliPrefix(CliPrefix.None)>] Inspect of ParseResults<InspectArgs>
    | [<CliPrefix(CliPrefix.None)>] Demo of ParseResults<DemoArgs>
    | [<CliPrefix(CliPrefix.None)>] Forward of ParseResults<ForwardArgs>
    | [<CliPrefix(CliPrefix.None)>] Pretrain of ParseResults<PretrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Finetune of ParseResults<FinetuneArgs>
    | [<CliPrefix(CliPrefix.None)>] Count of ParseResults<CountArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Decompose _ -> "decompose one matrix of a safetensors file into an MPO, optionally truncated."
            | Inspect _ -> "list the tensors of a safetensors file or checkpoint folder."
            | Pretrain _ -> "pre-train the bundled tiny models from scratch on the bundled corpus (resumable)."
            | Finetune _ -> "fine-tune every parameter of pre-trained models on classification tasks: the baselines table (resumable)."
            | Forward _ -> "run a checkpoint on token ids and write its logits and final hidden states."
            | Count _ -> "count a model's parameters from its config.json alone, plain or MPO-decomposed (peft's trainable-parameter line)."
            | Demo _ -> "the main job: decompose every weight matrix of a bundled pre-trained model, truncate, measure perplexity vs SVD."
