/// `mpo demo`, the main job: decompose every weight matrix of a bundled pre-trained model (tiny-bert by default)
/// into an MPO, show MPOP's central/auxiliary split on real weights, then truncate all bonds at once at several
/// caps and measure what it costs the model (held-out perplexity, no fine-tuning), against a truncated SVD with the
/// same parameters per matrix. Writes the table, a JSON report and figures.
module Mpo.Experiments.Cli.DemoCommand

open System
open System.Diagnostics
open System.IO
open Argu
open Plotly.NET
open TorchSharp
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
      MpoCrossEntropy: float
      SvdCrossEntropy: float }

let private perplexityFigure (m: TinyModels.TinyModel) (dense: float) (rows: Row list) =
    let rho (r: Row) = float r.Summary.MpoParameters / float r.Summary.DenseParameters
    let sorted = rows |> List.sortBy rho
    let xs = sorted |> List.map rho
    [ Chart.Line(x = xs, y = (sorted |> List.map (fun r -> exp r.MpoCrossEntropy)), Name = "MPO, all bonds capped", ShowMarkers = true)
      Chart.Line(x = xs, y = (sorted |> List.map (fun r -> exp r.SvdCrossEntropy)), Name = "truncated SVD, same #params per matrix",
                 ShowMarkers = true, LineDash = StyleParam.DrawingStyle.Dot)
      Chart.Line(x = [ List.min xs; List.max xs ], y = [ exp dense; exp dense ], Name = "pre-trained (dense)", LineDash = StyleParam.DrawingStyle.Dash) ]
    |> Chart.combine
    |> Chart.withXAxisStyle ("ρ = parameters of the decomposed matrices / dense", AxisType = StyleParam.AxisType.Log)
    |> Chart.withYAxisStyle ("held-out perplexity", AxisType = StyleParam.AxisType.Log)
    |> Chart.withTitle (sprintf "%s: truncating every weight matrix, before any fine-tuning" m.Name)

let run (args: ParseResults<DemoArgs>) =
    let outDir = args.GetResult(DemoArgs.Out, defaultValue = Path.Combine("out", "demo"))
    let quick = args.Contains DemoArgs.Quick
    let m = TinyModels.find (args.GetResult(DemoArgs.Model, defaultValue = "tiny-bert"))
    Directory.CreateDirectory outDir |> ignore
    let root = Bundled.root ()
    let folder = Path.Combine(Bundled.modelsFolder (), m.Name)
    let struct (model, _) = PretrainedModel.Load folder
    use model = model
    let total = (Mpo.Tuning.ParameterCounting.Count model).Total
    printfn "model: %s (%s, %s parameters, pre-trained by `mpo pretrain`; see its model card)" folder model.Architecture (Tables.int64s total)

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

    let collator, blocks = Pretrain.heldOut root m "test"
    let batches = Pretrain.heldOutBatches m collator blocks |> fun b -> if quick then List.truncate 4 b else b
    let scored = batches |> List.sumBy (Pretrain.predictedTokens m.Objective >> Seq.length)
    let evaluate () = Pretrain.crossEntropy m model batches
    let denseCe = evaluate ()
    printfn "held-out: %s on %s predicted tokens of the lm test split%s; pre-trained perplexity %.1f\n"
        (match m.Objective with
         | TinyModels.MaskedLm -> "masked-LM cross-entropy"
         | TinyModels.CausalLm -> "next-token cross-entropy"
         | TinyModels.SpanCorruption -> "span-corruption cross-entropy")
        (Tables.int64s (int64 scored)) (if quick then " (first 4 batches, --quick)" else "") (exp denseCe)

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
              MpoCrossEntropy = score (fun c -> c.MpoWeight); SvdCrossEntropy = score (fun c -> c.SvdWeight) })
    let table =
        Tables.markdown
            [ "truncation"; "MPO params"; "ρ"; "central share"; "error (rel, mean)"; "perplexity"; "SVD error (rel, mean)"; "SVD perplexity" ]
            ([ "pre-trained (dense)"; Tables.int64s dense; Tables.ratio 1.0; "–"; Tables.ratio 0.0; sprintf "%.1f" (exp denseCe); Tables.ratio 0.0; sprintf "%.1f" (exp denseCe) ]
             :: [ for r in rows ->
                    let s = r.Summary
                    [ r.Label; Tables.int64s s.MpoParameters; Tables.ratio (float s.MpoParameters / float s.DenseParameters)
                      Tables.percent (float s.CentralParameters / float s.MpoParameters); Tables.ratio s.MeanRelativeError
                      sprintf "%.1f" (exp r.MpoCrossEntropy); Tables.ratio s.SvdMeanRelativeError; sprintf "%.1f" (exp r.SvdCrossEntropy) ] ])
    printfn "%s\n" table
    let reportPath = Path.Combine(outDir, "report.json")
    Json.write reportPath
        {| model = m.Name; architecture = model.Architecture; parameters = total; decomposed_parameters = dense
           decompose_seconds = seconds; matrices = [ for x in matrices -> {| name = x.Name; rows = x.Rows; cols = x.Cols; factors = string x.Mpo.Factorization; full_bonds = x.Mpo.Bonds |} ]
           full_mpo_parameters = full; central_parameters = central; predicted_tokens = scored; quick = quick
           dense_cross_entropy = denseCe
           truncations = [ for r in rows ->
                             {| label = r.Label; max_bond = Option.toNullable r.Cap; mpo_parameters = r.Summary.MpoParameters
                                central_parameters = r.Summary.CentralParameters; mean_relative_error = r.Summary.MeanRelativeError
                                svd_mean_relative_error = r.Summary.SvdMeanRelativeError
                                mpo_cross_entropy = r.MpoCrossEntropy; svd_cross_entropy = r.SvdCrossEntropy
                                matrices = [ for (name, p, e, rank, se) in r.Matrices ->
                                               {| name = name; mpo_parameters = p; relative_error = e; svd_rank = rank; svd_relative_error = se |} ] |} ] |}
    Mpo.Checkpoints.AtomicFile.WriteAllText(Path.Combine(outDir, "table.md"), table + "\n")
    // the spectra of the first FFN input matrix: how fast a real weight's Schmidt values fall at each bond
    let ffn = matrices |> List.tryFind (fun x -> x.Rows > x.Cols && not (x.Name.Contains "embed")) |> Option.defaultValue matrices.Head
    let figures =
        (DecompositionPlots.spectra $"Schmidt values per bond of {ffn.Name}" ffn.Mpo |> Export.save (Path.Combine(outDir, "spectra.html")) 1000 600)
        @ (perplexityFigure m denseCe rows |> Export.save (Path.Combine(outDir, "perplexity-vs-compression.html")) 1000 600)
    printfn "wrote %s" (String.Join(", ", reportPath :: Path.Combine(outDir, "table.md") :: figures))
    0
