/// The model card and loss-curve figure written next to a pre-trained tiny model (Hugging Face's README.md
/// convention: YAML front matter, then what the model is, how it was trained, how well it does).
module Mpo.Experiments.Pretraining.ModelCard

open System
open System.IO
open System.Text.Json.Nodes
open Plotly.NET
open Mpo.Experiments.Reports
open Mpo.Experiments.Pretraining.TinyModels
open Mpo.Experiments.Pretraining.Pretrain

/// (step, value) series of one key from metrics.jsonl.
let series (metricsPath: string) (key: string) =
    [ for line in File.ReadLines metricsPath do
        if not (String.IsNullOrWhiteSpace line) then
            let o = JsonNode.Parse(line).AsObject()
            match o[key] with
            | null -> ()
            | v -> yield o["step"].GetValue<int64>(), v.GetValue<float>() ]

/// Training loss (mean per logging interval) and held-out loss against the update step; the unigram baseline as a line.
let lossCurve (m: TinyModel) (metricsPath: string) (unigram: float) =
    let train = series metricsPath "loss"
    let dev = series metricsPath "eval_loss"
    let steps = train |> List.map fst
    [ Chart.Line(x = steps, y = (train |> List.map snd), Name = "training loss")
      Chart.Line(x = (dev |> List.map fst), y = (dev |> List.map snd), Name = "dev loss", ShowMarkers = true)
      Chart.Line(x = [ List.min steps; List.max steps ], y = [ unigram; unigram ], Name = "unigram baseline (test)",
                 LineDash = StyleParam.DrawingStyle.Dash) ]
    |> Chart.combine
    |> Chart.withXAxisStyle "update step"
    |> Chart.withYAxisStyle "cross-entropy (nats per predicted token)"
    |> Chart.withTitle (sprintf "%s: pre-training loss" m.Name)

let private objectiveText = function
    | MaskedLm -> "masked language modelling (15% of tokens; 80% [MASK], 10% random, 10% kept)"
    | CausalLm -> "causal language modelling (next token)"
    | SpanCorruption -> "span corruption (noise density 0.15, mean span 3, sentinels <extra_id_N>)"

/// The card's Markdown. <c>figure</c>: the loss-curve PNG's file name when one was rendered.
let markdown (m: TinyModel) (corpus: Corpus) (o: Outcome) (spectra: SpectrumCheck.MatrixSpectrum list) (figure: string option) (machine: string) =
    let config = m.Config.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = false))
    let meanTop = spectra |> List.averageBy (fun s -> s.TopEnergy)
    let meanRandom = spectra |> List.averageBy (fun s -> s.RandomTopEnergy)
    let rows =
        [ [ "this model"; sprintf "%.3f" o.TestCrossEntropy; sprintf "%.1f" (exp o.TestCrossEntropy) ]
          [ "unigram baseline (train-split frequencies, add-one)"; sprintf "%.3f" o.UnigramCrossEntropy; sprintf "%.1f" (exp o.UnigramCrossEntropy) ] ]
    String.concat "\n" [
        "---"
        "language: en"
        "license: cc0-1.0"
        "library_name: mpo"
        sprintf "tags: [mpo, tiny, %s]" (m.Config["model_type"].GetValue<string>())
        "datasets: [state-of-the-union (public domain), moby-dick (public domain)]"
        "---"
        ""
        sprintf "# %s" m.Name
        ""
        sprintf "A tiny %s (`%s`, %s parameters) pre-trained from scratch by `mpo pretrain %s`, so that Mpo's examples, tests"
            (m.Config["model_type"].GetValue<string>()) m.Architecture (Tables.int64s o.Parameters) m.Name
        "and MPO experiments run offline on a real pre-trained model. It is far too small to be useful for anything"
        "else. Weights are stored in float16 in Hugging Face layout; `transformers` loads the folder as it is."
        ""
        "## Training"
        ""
        sprintf "- Objective: %s." (objectiveText m.Objective)
        sprintf "- Corpus: the bundled `lm` task's training split (`data/tasks/lm`, State of the Union addresses and Moby-Dick), %s tokens, cut into %s blocks of %d tokens."
            (Tables.int64s corpus.TrainTokens) (Tables.int64s (int64 corpus.Train.Count)) m.SequenceLength
        sprintf "- Tokenizer: `%s` (files in this folder)." m.Tokenizer
        sprintf "- %s updates of %d blocks, AdamW (lr %g, weight decay %g, β 0.9/0.999), %d warmup steps then linear decay, gradient clipping at 1.0, dropout as configured, seed 42."
            (Tables.int64s o.Steps) m.BatchSize m.LearningRate m.WeightDecay m.WarmupSteps
        sprintf "- Wall time: %.1f min on %s." (o.TrainSeconds / 60.0) machine
        sprintf "- Configuration: `%s`" config
        ""
        "## Held-out results"
        ""
        sprintf "Cross-entropy on the `lm` test split (documents never seen in training), over the same %s predicted tokens for both rows:" (Tables.int64s o.TestTokens)
        ""
        Tables.markdown [ "model"; "nats/token"; "perplexity" ] rows
        ""
        (match figure with
         | Some png -> sprintf "![loss curve](%s)" png
         | None -> "(No loss-curve PNG: headless Chromium was not available; the HTML figure is in the run folder.)")
        ""
        "## Weight spectra"
        ""
        sprintf "Trained weights concentrate their energy in few directions, unlike the Gaussian matrices they started from: on average the top 10%% of singular values carry %.1f%% of ‖W‖²_F across the %d weight matrices (embeddings excepted), against %.1f%% for Gaussian matrices of the same shapes. That decay is what MPO truncation exploits."
            (100.0 * meanTop) spectra.Length (100.0 * meanRandom)
        "" ]
