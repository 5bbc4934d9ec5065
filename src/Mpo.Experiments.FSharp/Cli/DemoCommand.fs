/// `mpo demo`, the main job: MPOP end to end on the real pre-trained all-minilm-l6-v2 (FineTuning.MpopDemo: full
/// fine-tuning, LFA, squeezing, MPOP_dir, and LoRA and truncated SVD at matched parameters, as a grid of trials in a
/// result store, and their comparison table).
/// `mpo demo --truncation`, the earlier study: decompose every weight matrix of a bundled pre-trained model (tiny-bert by default)
/// into an MPO, show MPOP's central/auxiliary split on real weights, then truncate all bonds at once at several
/// caps and measure what it costs the model (held-out perplexity, no fine-tuning; for a headless pre-trained encoder,
/// how close its sentence embeddings stay to the dense model's), against a truncated SVD with the same parameters
/// per matrix. Writes the table, a JSON report and figures.
module Mpo.Experiments.Cli.DemoCommand

open System
open System.Diagnostics
open System.IO
open Argu
open Plotly.NET
open TorchSharp
open Mpo.Checkpoints.Onnx
open Mpo.Decomposition
open Mpo.Models
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Data
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Plots
open Mpo.Experiments.Pretraining
open Mpo.Experiments.Reports
open Mpo.Experiments.Terminal

/// One row of the table: a truncation of every matrix, and what the model scores with MPO and with SVD weights.
type private Row =
    { Label: string
      Cap: int option
      Summary: ModelTruncation.Summary
      /// Per matrix: name, MPO parameters, MPO relative error, SVD rank, SVD relative error.
      Matrices: (string * int64 * float * int * float) list
      MpoScore: float
      SvdScore: float }

/// What a truncated model is scored by on held-out text: the tiny models' pre-training loss (shown as perplexity),
/// or for a headless encoder the mean cosine similarity of its sentence embeddings to the dense model's.
type private Measure =
    { Name: string
      /// The table column and figure axis.
      Column: string
      Show: float -> string
      /// What the figure plots (perplexity from cross-entropy; the cosine as it is).
      Plotted: float -> float
      LogAxis: bool
      Evaluate: unit -> float }

let private scoreFigure (name: string) (measure: Measure) (dense: float) (rows: Row list) =
    let rho (r: Row) = float r.Summary.MpoParameters / float r.Summary.DenseParameters
    let xs = rows |> List.map rho
    let y = measure.Plotted
    Figures.tradeOff (sprintf "%s: truncating every weight matrix, before any fine-tuning" name)
        ("ρ = parameters of the decomposed matrices / dense", true) ("held-out " + measure.Column, measure.LogAxis)
        [ Figures.series "MPO, all bonds capped" [ for r in rows -> rho r, y r.MpoScore ]
          { Figures.series "truncated SVD, same #params per matrix" [ for r in rows -> rho r, y r.SvdScore ] with Dash = Some StyleParam.DrawingStyle.Dot }
          { Figures.series "pre-trained (dense)" [ List.min xs, y dense; List.max xs, y dense ] with Dash = Some StyleParam.DrawingStyle.Dash } ]

/// `mpo demo --truncation`: every bond capped at once, before any fine-tuning, against a truncated SVD.
let truncationStudy (args: ParseResults<DemoArgs>) =
    let outDir = args.GetResult(DemoArgs.Out, defaultValue = Path.Combine("out", "demo-truncation"))
    let quick = args.Contains DemoArgs.Quick
    let name = args.GetResult(DemoArgs.Model, defaultValue = "tiny-bert")
    let encoder = PackagedEncoders.Find name |> Option.ofObj
    let tiny = if encoder.IsSome then None else Some(TinyModels.find name)
    Directory.CreateDirectory outDir |> ignore
    let root = Bundled.root ()
    let folder =
        match encoder with
        | Some e -> Mpo.Experiments.Models.ModelFolders.ensureEncoder e
        | None -> Path.Combine(Bundled.modelsFolder (), tiny.Value.Name)
    let struct (model, _) = PretrainedModel.Load folder
    use model = model
    let total = (Mpo.Tuning.ParameterCounting.Count model).Total
    printfn "model: %s (%s, %s parameters, %s; see its model card)" folder model.Architecture (Tables.int64s total)
        (match encoder with Some e -> $"{e.Source}, converted from {e.Package}" | None -> "pre-trained by `mpo pretrain`")

    let clock = Stopwatch.StartNew()
    let matrices = ModelTruncation.selectWeights model |> ModelTruncation.decompose
    let seconds = clock.Elapsed.TotalSeconds
    let dense = matrices |> List.sumBy (fun x -> x.Dense)
    let full = matrices |> List.sumBy (fun x -> x.Mpo.ParameterCount)
    let central = matrices |> List.sumBy (fun x -> x.Mpo.Factorization.CentralParameterCount x.Mpo.Bonds)
    printfn "decomposed %d weight matrices (%s parameters, %s of the model) into %d-core MPOs in %.1f s"
        matrices.Length (Tables.int64s dense) (Tables.percent (float dense / float total)) FactorizationChooser.DefaultCores seconds
    printfn "full-rank MPOs: %s parameters = %s in central tensors (%s) + %s in auxiliary tensors (what lightweight fine-tuning trains)"
        (Tables.int64s full) (Tables.int64s central) (Tables.percent (float central / float full)) (Tables.int64s (full - central))

    let measure, scored =
        match tiny with
        | Some m ->
            let collator, blocks = Pretrain.heldOut root m "test"
            let batches = Pretrain.heldOutBatches m.BatchSize collator blocks |> fun b -> if quick then List.truncate 4 b else b
            let objective =
                match m.Objective with
                | TinyModels.MaskedLm -> "masked-LM cross-entropy"
                | TinyModels.CausalLm -> "next-token cross-entropy"
                | TinyModels.SpanCorruption -> "span-corruption cross-entropy"
            { Name = objective; Column = "perplexity"; Show = (fun ce -> sprintf "%.1f" (exp ce)); Plotted = exp; LogAxis = true
              Evaluate = fun () -> Pretrain.crossEntropy m.Objective model batches },
            sprintf "%s predicted tokens" (Tables.int64s (int64 (batches |> List.sumBy (Pretrain.predictedTokens m.Objective >> Seq.length))))
        | None ->
            let texts = Mpo.Experiments.Models.SentenceAgreement.heldOutTexts root (if quick then 8 else 128)
            let agreement = Mpo.Experiments.Models.SentenceAgreement.against model folder texts
            { Name = "mean cosine similarity of sentence embeddings to the dense model's"; Column = "cosine to dense"
              Show = sprintf "%.4f"; Plotted = id; LogAxis = false; Evaluate = agreement },
            sprintf "%d paragraphs (cut at %d tokens)" texts.Length Mpo.Experiments.Models.SentenceAgreement.maxTokens
    let evaluate = measure.Evaluate
    let denseCe = evaluate ()
    printfn "held-out: %s on %s of the lm test split%s; pre-trained %s %s\n"
        measure.Name scored (if quick then " (--quick)" else "") measure.Column (measure.Show denseCe)

    let settings = ("full", None) :: [ for cap in (if quick then [ 16 ] else [ 64; 32; 16; 8 ]) -> $"max bond {cap}", Some cap ]
    let rows =
        settings
        |> ProgressBar.map "truncating and scoring" fst (fun (label, cap) ->
            use scope = torch.NewDisposeScope()
            let spec = TruncationSpec.MaxBond(defaultArg cap Int32.MaxValue)
            let cuts = matrices |> List.map (ModelTruncation.cut spec)
            let score (weight: ModelTruncation.Cut -> torch.Tensor) =
                ModelTruncation.evaluateWith model matrices [ for c in cuts -> c.Name, weight c ] evaluate
            { Label = label; Cap = cap; Summary = ModelTruncation.summarize matrices cuts
              Matrices = [ for c in cuts -> c.Name, c.Report.Parameters, c.Report.RelativeError.GetValueOrDefault(), c.SvdRank, c.SvdRelativeError ]
              MpoScore = score (fun c -> c.MpoWeight); SvdScore = score (fun c -> c.SvdWeight) })
    let table =
        Tables.markdown
            [ "truncation"; "MPO params"; "ρ"; "central share"; "error (rel, mean)"; measure.Column; "SVD error (rel, mean)"; "SVD " + measure.Column ]
            ([ "pre-trained (dense)"; Tables.int64s dense; Tables.ratio 1.0; "–"; Tables.ratio 0.0; measure.Show denseCe; Tables.ratio 0.0; measure.Show denseCe ]
             :: [ for r in rows ->
                    let s = r.Summary
                    [ r.Label; Tables.int64s s.MpoParameters; Tables.ratio (float s.MpoParameters / float s.DenseParameters)
                      Tables.percent (float s.CentralParameters / float s.MpoParameters); Tables.ratio s.MeanRelativeError
                      measure.Show r.MpoScore; Tables.ratio s.SvdMeanRelativeError; measure.Show r.SvdScore ] ])
    printfn "%s\n" table
    let reportPath = Path.Combine(outDir, "report.json")
    Json.write reportPath
        {| model = Mpo.Experiments.FineTuning.FineTune.modelName folder; architecture = model.Architecture; parameters = total; decomposed_parameters = dense
           decompose_seconds = seconds; matrices = [ for x in matrices -> {| name = x.Name; rows = x.Rows; cols = x.Cols; factors = string x.Mpo.Factorization; full_bonds = x.Mpo.Bonds |} ]
           full_mpo_parameters = full; central_parameters = central; held_out = scored; quick = quick
           measure = measure.Name; dense_score = denseCe
           truncations = [ for r in rows ->
                             {| label = r.Label; max_bond = Option.toNullable r.Cap; mpo_parameters = r.Summary.MpoParameters
                                central_parameters = r.Summary.CentralParameters; mean_relative_error = r.Summary.MeanRelativeError
                                svd_mean_relative_error = r.Summary.SvdMeanRelativeError
                                mpo_score = r.MpoScore; svd_score = r.SvdScore
                                matrices = [ for (name, p, e, rank, se) in r.Matrices ->
                                               {| name = name; mpo_parameters = p; relative_error = e; svd_rank = rank; svd_relative_error = se |} ] |} ] |}
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(outDir, "table.md"), table + "\n")
    // the spectra of the first FFN input matrix: how fast a real weight's Schmidt values fall at each bond
    let ffn = matrices |> List.tryFind (fun x -> x.Rows > x.Cols && not (x.Name.Contains "embed")) |> Option.defaultValue matrices.Head
    let figures =
        (DecompositionPlots.spectra $"Schmidt values per bond of {ffn.Name}" ffn.Mpo |> Export.save (Path.Combine(outDir, "spectra.html")) 1000 600)
        @ (scoreFigure (Mpo.Experiments.FineTuning.FineTune.modelName folder) measure denseCe rows
           |> Export.save (Path.Combine(outDir, (if tiny.IsSome then "perplexity" else "cosine") + "-vs-compression.html")) 1000 600)
    printfn "wrote %s" (String.Join(", ", reportPath :: Path.Combine(outDir, "table.md") :: figures))
    0

/// `mpo demo [MODEL]`: MPOP on a pre-trained encoder (all-minilm-l6-v2 by default), shortened to minutes on two cores.
let mpop (args: ParseResults<DemoArgs>) =
    let outDir = args.GetResult(DemoArgs.Out, defaultValue = Path.Combine("out", "demo"))
    let quick = args.Contains DemoArgs.Quick
    let plan = Mpo.Experiments.FineTuning.MpopDemo.plan (args.GetResult(DemoArgs.Model, defaultValue = "all-minilm-l6-v2")) quick
    let plan = match args.TryGetResult DemoArgs.Seed with Some seed -> { plan with Seed = seed } | None -> plan
    let folder = Mpo.Experiments.Models.ModelFolders.resolve plan.Model
    let clock = Stopwatch.StartNew()
    printfn "model: %s (pre-trained; the MPO methods decompose it with the tuner preset mpop: every MPOP matrix, 5 cores, full bonds)" folder
    printfn "task: %s (bundled), shortened to run in minutes on 2 cores: %d training examples drawn with seed %d, %d dev examples, sequences cut at %d tokens, %d updates of batch %d (MPOP: then up to %d cuts, %d updates after each, Δ = %g)%s"
        plan.Task plan.TrainExamples plan.Seed plan.DevExamples plan.MaxLength plan.Steps plan.BatchSize plan.MaxCuts plan.RecoverySteps plan.LossGap
        (if quick then " (--quick)" else "")
    let store = Mpo.Experiments.Store.ResultStore.Store(Path.Combine(outDir, "store"))
    let records = Mpo.Experiments.FineTuning.MpopDemo.run store plan
    let table = Mpo.Experiments.FineTuning.MpopDemo.table records
    printfn "\n%s\n" table
    printfn "Matched baselines (counted from the configuration): LoRA on every attention and FFN linear (α = 2r) at the rank whose trained parameters (#Pr) come nearest LFA's; truncated SVD of MPOP's matrices at the rank whose total (#To) comes nearest MPOP's squeezed size, which MPOP_dir is truncated to."
    let trajectory = records |> List.tryPick Mpo.Experiments.FineTuning.MpopDemo.trajectory
    match trajectory with
    | Some t -> printfn "\nMPOP's squeezing trajectory (dev split):\n\n%s" t
    | None -> ()
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(outDir, "table.md"), table + "\n" + (defaultArg trajectory "") + "\n")
    let figures =
        match RecordPlots.squeezing "dev.accuracy" records with
        | Some chart -> chart |> Export.save (Path.Combine(outDir, "squeezing.html")) 1000 600
        | None -> []
    printfn "\nstore %s (mpo report reads it); wrote %s; %.0f s in all on %s"
        store.Folder (String.Join(", ", Path.Combine(outDir, "table.md") :: figures)) clock.Elapsed.TotalSeconds (Machine.describe ())
    0

let run (args: ParseResults<DemoArgs>) =
    if args.Contains DemoArgs.Truncation then truncationStudy args else mpop args
