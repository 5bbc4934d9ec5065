/// The baselines MPOP is compared against at matched trained parameters (issue 9 §5), as fine-tuning methods in the
/// shape of Methods (what each does to the loaded model, what the trainer gets, what the run keeps): each changes the
/// model in place (what it trains, and for LoRA and SVD its target layers) before the trainer is built, so a resumed
/// run rebuilds the same structure and loads its checkpoint into it. LoRA's A is drawn from torch's generator, which
/// the run seeds before loading. The ranks that match them to an MPO method's parameters are counted from the model's
/// configuration (loraMatching, svdMatching).
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

// ---- the baselines at matched parameters ------------------------------------------------------------------------

/// The rank r ≥ 1 whose count comes nearest <c>target</c> (the smaller rank on a tie), for a count that does not
/// decrease with the rank: the rank doubles until the count reaches the target or stops growing (an SVD's rank is
/// capped at each matrix's smaller side, so its count levels off), then bisection finds the first rank that reaches
/// it, and the rank below is the other candidate. Each rank is counted once.
let nearestRank (count: int -> int64) (target: int64) =
    let counted = System.Collections.Generic.Dictionary<int, int64>()
    let count r =
        match counted.TryGetValue r with
        | true, c -> c
        | _ ->
            let c = count r
            counted.[r] <- c
            c
    let mutable hi = 1
    while count hi < target && count (2 * hi) > count hi do
        hi <- 2 * hi
    // the first rank whose count reaches the target (or, where the count levels off below it, the level)
    let goal = min target (count hi)
    let mutable lo = 1
    while lo < hi do
        let mid = lo + (hi - lo) / 2
        if count mid >= goal then hi <- mid else lo <- mid + 1
    if hi > 1 && abs (count (hi - 1) - target) <= abs (count hi - target) then hi - 1 else hi

/// LoRA's usual targets in a comparison at matched trained parameters: every linear map of the attention and the FFN
/// that the model type has (MPOP's families without the word embedding and the pooler), as LoRA is commonly applied
/// to all of a transformer block's linears.
let blockLinears (modelType: string) =
    let families = TargetPatterns.For modelType
    [ for group in [ "attention"; "ffn" ] do
        for f in MpoFamilies.Groups.[group] do
            if families.ContainsKey f then f ]

/// The LoRA configuration <c>make r</c> at the rank whose trained parameters (#Pr, peft's trainable count) come nearest
/// <c>trained</c>, as <c>count</c> counts the model with the tuner applied (from its configuration:
/// ParameterCounting.FromConfig, no weights).
let loraMatching (count: IStructuralTuner list -> ParameterCount) (make: int -> LoraConfig) (trained: int64) =
    make (nearestRank (fun r -> (count [ LoraTuner(make r) ]).Trainable) trained)

/// The truncated-SVD baseline of a compressed MPO model: the matrices the MPO tuner decomposes (its target families;
/// none named: every family the model has, the same rule for both tuners) as rank-r factors, at the one rank whose
/// model's total parameters (#To) come nearest <c>total</c>, e.g. MPOP's squeezed size. MPOP compares compressed
/// models at equal total size (Table 3's #To of MPOP and MPOP_dir) and names truncated SVD the two-core MPO (Table 2),
/// so that is the size SVD is matched to; its factors and every other parameter train, as in MPOP_full.
let svdMatching (count: IStructuralTuner list -> ParameterCount) (tuning: Mpo.Experiments.Specs.Trial.MpoTuning) (total: int64) =
    let targets = (tunerConfig tuning).TargetModules
    let make (r: int) = SvdTunerConfig(TargetModules = targets, Rank = r)
    make (nearestRank (fun r -> (count [ SvdTuner(make r) ]).Total) total)
