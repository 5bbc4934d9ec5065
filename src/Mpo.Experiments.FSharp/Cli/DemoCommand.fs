/// `mpo demo`, the main job until Mpo's own pre-trained models exist: decompose the bundled FFN matrix, print the
/// error/compression table (MPO at several bond caps and tolerances vs a truncated SVD of equal size), write the
/// report and figures.
module Mpo.Experiments.Cli.DemoCommand

open System
open System.Diagnostics
open System.IO
open Argu
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Data
open Mpo.Experiments.Decomposition
open Mpo.Experiments.Plots
open Mpo.Experiments.Reports
open Mpo.Experiments.Terminal

let run (args: ParseResults<DemoArgs>) =
    let outDir = args.GetResult(DemoArgs.Out, defaultValue = Path.Combine("out", "demo"))
    let quick = args.Contains Quick
    Directory.CreateDirectory outDir |> ignore
    let source = Bundled.ffnMatrixFile ()
    use file = SafeTensorsFile.Open source
    use w = file.Load(Bundled.ffnMatrixTensor, dtype = torch.float32)
    let rows, cols = int w.shape.[0], int w.shape.[1]
    let f = FactorizationChooser.Choose(rows, cols)
    printfn "matrix: %s '%s' [%d x %d] (%s)" (Path.GetFileName source) Bundled.ffnMatrixTensor rows cols
        (match file.Metadata.TryGetValue "description" with | true, d -> d | _ -> "bundled")
    printfn "factors (chosen): %s x %s, full bonds %s, central tensor = core %d" (Tables.factors f.RowFactors)
        (Tables.factors f.ColFactors) (Tables.factors (f.FullBonds())) f.CentralIndex
    let clock = Stopwatch.StartNew()
    use mpo = MpoDecomposer.Decompose(w, f, torch.float64)
    let seconds = clock.Elapsed.TotalSeconds
    printfn "decomposed in %.2f s; full-rank MPO: %s parameters (%s central, %s auxiliary) for %s dense\n" seconds
        (Tables.int64s mpo.ParameterCount) (Tables.int64s (f.CentralParameterCount mpo.Bonds))
        (Tables.int64s (mpo.ParameterCount - f.CentralParameterCount mpo.Bonds)) (Tables.int64s (int64 rows * int64 cols))
    let caps = TruncationSweep.defaultCaps mpo |> fun c -> if quick then List.truncate 3 c else c
    let specs =
        [ for cap in caps -> (if cap = Seq.max mpo.Bonds then "full" else $"max bond {cap}"), TruncationSpec.MaxBond cap :> TruncationSpec ]
        @ [ for tol in (if quick then [ 0.3 ] else [ 0.1; 0.3; 0.5 ]) -> $"tolerance {tol}", TruncationSpec.Tolerance tol :> TruncationSpec ]
    let points =
        let reference = TruncationSweep.reference w
        specs |> ProgressBar.map "truncating" fst (TruncationSweep.point reference mpo)
    let table =
        Tables.markdown
            [ "truncation"; "bonds"; "params"; "ρ"; "central share"; "bound (rel)"; "error (rel)"; "SVD rank"; "SVD error (rel)" ]
            [ for p in points ->
                let r = p.Report
                [ p.Label; Tables.factors r.Bonds; Tables.int64s r.Parameters; Tables.ratio r.CompressionRatio
                  Tables.percent (float r.CentralParameters / float r.Parameters); Tables.ratio r.RelativeBound
                  Tables.ratio (r.RelativeError.GetValueOrDefault()); string p.LowRankRank; Tables.ratio p.LowRankRelativeError ] ]
    printfn "%s\n" table
    let entropy = Truncation.Entropy mpo.Spectra
    printfn "entanglement entropy per bond (nats): %s"
        (String.Join(", ", entropy |> Array.mapi (fun i s -> $"S_{i + 1} = {s:F3} (max {log (float mpo.Bonds.[i + 1]):F3})")))
    let reportPath = Path.Combine(outDir, "report.json")
    Json.write reportPath
        {| source = {| file = source; tensor = Bundled.ffnMatrixTensor; rows = rows; cols = cols |}
           decompose_seconds = seconds
           entropy = entropy
           points = [ for p in points -> {| label = p.Label; svd_rank = p.LowRankRank; svd_relative_error = p.LowRankRelativeError; mpo = p.Report |} ] |}
    File.WriteAllText(Path.Combine(outDir, "table.md"), table + "\n")
    let figures =
        (DecompositionPlots.spectra "Schmidt values per bond of the bundled FFN matrix" mpo |> Export.save (Path.Combine(outDir, "spectra.html")) 1000 600)
        @ (DecompositionPlots.tradeOff "Error against compression: MPO truncation vs truncated SVD" points
           |> Export.save (Path.Combine(outDir, "error-vs-compression.html")) 1000 600)
    printfn "wrote %s" (String.Join(", ", reportPath :: Path.Combine(outDir, "table.md") :: figures))
    0
