/// MPO-ization of a whole BERT-base-sized model (issue 9 §1, §8): time to apply the tuner and the process's peak
/// memory while it runs, against what holding every matrix's float64 copy at once would add. The model is built with
/// random weights (none can be downloaded here); the decomposition's cost and memory depend on the shapes only.
module Mpo.Bench.TuneBench

open System.Diagnostics
open System.Text.Json.Nodes
open TorchSharp
open Mpo.Models
open Mpo.Tuning
open Mpo.Bench.Report

type Result =
    { Model: string
      Preset: string
      Matrices: int
      DenseParameters: int64
      Parameters: ParameterCount
      Seconds: float
      /// Resident set with the dense model built, MiB.
      BaselineMiB: float
      /// High-water mark while the tuner ran, MiB.
      PeakMiB: float
      /// Σ rows·cols·8 bytes over the decomposed matrices: the extra memory if every float64 copy lived at once.
      AllFloat64MiB: float }

let private config quick =
    let json =
        JsonNode.Parse(
            (if quick then """{"model_type": "bert", "vocab_size": 7680, "hidden_size": 768, "num_hidden_layers": 1, "num_attention_heads": 12, "intermediate_size": 3072}"""
             else """{"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}"""))
    ModelRegistry.ReadConfig(json.AsObject(), "BERT-base")

let run (opts: Options) =
    let preset = if opts.Quick then "mpop" else "mpop-bert"
    torch.manual_seed 1L |> ignore
    use model = ModelRegistry.Create(config opts.Quick, "BertForSequenceClassification")
    let tuner = MpoTuner(MpoPresets.Get preset)
    let selected = tuner.Select model
    let dense = selected |> Seq.sumBy (fun struct (t, _) -> let struct (r, c) = t.MatrixShape in int64 r * int64 c)
    let clock = Stopwatch()
    let (tuned: TunedModel), baseline, peak = Memory.peakDuring (fun () -> clock.Start(); let t = tuner.Apply model in clock.Stop(); t)
    [ { Model = (if opts.Quick then "BERT-base, 1 layer, 7,680-word vocabulary (quick)" else "BERT-base (12 layers)")
        Preset = preset
        Matrices = selected.Count
        DenseParameters = dense
        Parameters = tuned.Count()
        Seconds = clock.Elapsed.TotalSeconds
        BaselineMiB = baseline
        PeakMiB = peak
        AllFloat64MiB = float dense * 8.0 / 1048576.0 } ]

let markdown (_: bool) (results: Result list) =
    table
        [ "model", Left; "preset", Left; "matrices", Right; "dense params", Right; "after (trainable / all)", Right; "apply s", Right
          "RSS before MiB", Right; "peak MiB", Right; "peak − before MiB", Right; "all float64 copies MiB", Right ]
        [ for r in results ->
            [ r.Model; r.Preset; string r.Matrices; r.DenseParameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)
              (let n (x: int64) = x.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) in $"{n r.Parameters.Trainable} / {n r.Parameters.Total}")
              $"{r.Seconds:F1}"; mib r.BaselineMiB; mib r.PeakMiB; mib (r.PeakMiB - r.BaselineMiB); mib r.AllFloat64MiB ] ]
