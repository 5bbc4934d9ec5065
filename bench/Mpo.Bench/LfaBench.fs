/// Lightweight fine-tuning's training step against full fine-tuning of the same model, with LoRA beside them (issue 9
/// §8: target LFA ≤ 1.0× full per step; optimizer memory proportional to the trained parameters). One model built
/// from a configuration with random weights (step cost depends on shapes only), each method applied to a fresh copy
/// from the same seed, then forward + backward + the project's AdamW over the method's parameter groups on the same
/// random batch. AdamW keeps two moments per trained parameter and none for frozen ones (MPOP's central tensors,
/// LoRA's base weights).
module Mpo.Bench.LfaBench

open System
open System.Diagnostics
open System.Text.Json.Nodes
open TorchSharp
open Mpo.Models
open Mpo.Training
open Mpo.Tuning
open Mpo.Bench.Report

type Result =
    { Model: string
      Method: string
      Batch: string
      Trainable: int64
      Total: int64
      /// Median of the timed steps, ms.
      StepMs: float
      /// Parameters AdamW holds state for, after the first step, and the moments' size (2 × 4 bytes each).
      OptimizerParameters: int64
      OptimizerMiB: float
      BaselineMiB: float
      PeakMiB: float }

/// One bench case: a model built from its configuration, the batch it is stepped on, and the tuner preset.
type private Case =
    { Name: string
      Config: string
      Batch: int
      Sequence: int
      Preset: string
      Warmup: int
      Timed: int }

/// Quick (CI): a 2-layer BERT. Full: MiniLM's shape at the demo's batch (6 layers × 384, BERT's 30522-row vocabulary,
/// 16 × 32 tokens: what `mpo demo` steps), and BERT-base at 8 × 128. The MPO's rebuild is paid once per step whatever
/// the token count, so the ratio to full fine-tuning falls as the batch grows.
let private cases quick =
    if quick then
        [ { Name = "BERT, 2 layers × 128 (quick)"; Batch = 4; Sequence = 32; Preset = "mpop"; Warmup = 1; Timed = 3
            Config = """{"model_type": "bert", "vocab_size": 1000, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512}""" } ]
    else
        [ { Name = "MiniLM-shaped (6 × 384)"; Batch = 16; Sequence = 32; Preset = "mpop"; Warmup = 2; Timed = 5
            Config = """{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}""" }
          { Name = "BERT-base"; Batch = 8; Sequence = 128; Preset = "mpop-bert"; Warmup = 2; Timed = 5
            Config = """{"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}""" } ]

/// The methods: name, and what each does to a fresh model before its optimizer is built (returning its group rules).
let private methods (case: Case) : (string * (PretrainedModel -> ParameterGroupRule list)) list =
    [ "full", fun _ -> []
      "MPOP_full+LFA", fun m ->
          MpoTuner(MpoPresets.Get case.Preset).Apply m |> ignore
          List.ofSeq (MpoTuner.ParameterGroupRules(Nullable 1e-4))
      "LoRA r=8 (query, value)", fun m ->
          LoraTuner(LoraConfig(R = 8, LoraAlpha = 16.0)).Apply m |> ignore
          [] ]

/// One training step as every training bench times it: forward on the batch, backward, the project's AdamW.
let trainingStep (model: PretrainedModel) (optimizer: AdamW) (ids: torch.Tensor) (labels: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    optimizer.ZeroGrad()
    let out = model.forward (ModelInputs(ids, Labels = labels))
    out.Loss.backward ()
    optimizer.Step()

let run (opts: Options) =
    [ for case in cases opts.Quick do
          let cfg = ModelRegistry.ReadConfig(JsonNode.Parse(case.Config).AsObject(), "bench")
          let batch, sequence, warmup, timed, modelName = case.Batch, case.Sequence, case.Warmup, case.Timed, case.Name
          use g = new torch.Generator(7UL)
          use ids = torch.randint(0L, int64 cfg.VocabSize, [| int64 batch; int64 sequence |], generator = g)
          use labels = torch.randint(0L, 2L, [| int64 batch |], generator = g)
          for name, apply in methods case do
              torch.manual_seed 1L |> ignore
              use model = ModelRegistry.Create(cfg, "BertForSequenceClassification")
              let rules = apply model
              model.train ()
              let count = ParameterCounting.Count model
              let optimizer = AdamW(ParameterGroups.Build(model, 1e-4, 0.01, rules))
              let step () = trainingStep model optimizer ids labels
              let times, baseline, peak =
                  Memory.peakDuring (fun () ->
                      [| for i in 1 .. warmup + timed ->
                          let sw = Stopwatch.StartNew()
                          step ()
                          i, sw.Elapsed.TotalMilliseconds |]
                      |> Array.filter (fun (i, _) -> i > warmup) |> Array.map snd)
              // what AdamW actually allocated: its two moments per parameter it has stepped
              let held = optimizer.State.Values |> Seq.sumBy (fun s -> s.ExpAvg.numel ())
              optimizer.Dispose()
              yield { Model = modelName; Method = name; Batch = $"{batch}×{sequence}"; Trainable = count.Trainable; Total = count.Total
                      StepMs = Timing.median times; OptimizerParameters = held; OptimizerMiB = float held * 8.0 / 1048576.0
                      BaselineMiB = baseline; PeakMiB = peak } ]

let markdown (_: bool) (results: Result list) =
    let n (x: int64) = x.ToString("N0", Globalization.CultureInfo.InvariantCulture)
    let full (r: Result) = results |> List.tryFind (fun f -> f.Method = "full" && f.Model = r.Model)
    table
        [ "model", Left; "method", Left; "batch", Left; "trainable / all", Right; "step ms", Right; "step / full", Right
          "AdamW state params", Right; "AdamW state MiB", Right; "RSS before MiB", Right; "peak MiB", Right; "peak − before MiB", Right ]
        [ for r in results ->
            [ r.Model; r.Method; r.Batch; $"{n r.Trainable} / {n r.Total}"; ms r.StepMs
              (match full r with Some f -> $"{r.StepMs / f.StepMs:F2}×" | None -> "–")
              n r.OptimizerParameters; $"{r.OptimizerMiB:F1}"; mib r.BaselineMiB; mib r.PeakMiB; mib (r.PeakMiB - r.BaselineMiB) ] ]
