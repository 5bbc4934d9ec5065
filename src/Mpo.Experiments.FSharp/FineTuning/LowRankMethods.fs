/// The baselines MPOP is compared against at matched trained parameters (issue 9 §5), as fine-tuning methods in the
/// shape of Methods (what each does to the loaded model, what the trainer gets, what the run keeps): each changes the
/// model in place (what it trains, and for LoRA and SVD its target layers) before the trainer is built, so a resumed
/// run rebuilds the same structure and loads its checkpoint into it. LoRA's A is drawn from torch's generator, which
/// the run seeds before loading.
module Mpo.Experiments.FineTuning.LowRankMethods

open System.IO
open Mpo.Tuning
open Mpo.Experiments.FineTuning.Methods

/// LoRA (peft's semantics): base frozen, low-rank updates on the target families, the head trained; the adapter in
/// peft's layout at the end.
let lora (config: LoraConfig) (ctx: Context) =
    let lora = LoraTuner(config).Apply ctx.Model
    eprintfn "%s: LoRA r = %d on %d modules; %O" (Path.GetFileName ctx.ModelFolder) config.R lora.Targets.Count (ParameterCounting.Count ctx.Model)
    { full () with Finish = fun () -> LoraAdapter.Save(lora, adapterFolder ctx.RunFolder, ctx.ModelFolder); Map.empty, Map.empty }

/// Truncated-SVD layers: each target matrix as its rank-r row and column factors (a two-core MPO), both trained; the
/// adapter (both factors) at the end.
let svd (config: SvdTunerConfig) (ctx: Context) =
    let tuned = SvdTuner(config).Apply ctx.Model
    eprintfn "%s: truncated SVD on %d modules; %O" (Path.GetFileName ctx.ModelFolder) tuned.Targets.Count (tuned.Count())
    { full () with Finish = fun () -> MpoAdapter.Save(tuned, adapterFolder ctx.RunFolder, ctx.ModelFolder); Map.empty, Map.empty }

/// Only the last k layers (+ top, head, embeddings if asked) trained; the model stays dense (its checkpoints are the
/// run's result).
let lastLayers (config: LastLayersConfig) (ctx: Context) =
    let count = LastLayersTuner(config).Apply ctx.Model
    eprintfn "%s: last %d layers trained; %O" (Path.GetFileName ctx.ModelFolder) config.Layers count
    full ()
