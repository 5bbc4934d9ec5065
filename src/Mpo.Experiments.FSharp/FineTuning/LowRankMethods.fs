/// The baselines MPOP is compared against at matched trained parameters (issue 9 §5), as fine-tuning methods: each
/// changes the loaded model in place (what it trains, and for LoRA and SVD its target layers) before the trainer is
/// built, so a resumed run rebuilds the same structure and loads its checkpoint into it. LoRA's A is drawn from
/// torch's generator, which the run seeds before loading.
module Mpo.Experiments.FineTuning.LowRankMethods

open Mpo.Models
open Mpo.Tuning

/// LoRA (peft's semantics): base frozen, low-rank updates on the target families, the head trained.
let lora (config: LoraConfig) (model: PretrainedModel) = LoraTuner(config).Apply model |> ignore

/// Truncated-SVD layers: each target matrix as its rank-r row and column factors, both trained (the model keeps them).
let svd (config: SvdTunerConfig) (model: PretrainedModel) = SvdTuner(config).Apply model |> ignore

/// Only the last k layers (+ top, head, embeddings if asked) trained.
let lastLayers (config: LastLayersConfig) (model: PretrainedModel) = LastLayersTuner(config).Apply model |> ignore
