/// `mpo decompose`: one matrix of a safetensors file → MPO cores (+ JSON report).
module Mpo.Experiments.Cli.DecomposeCommand

open System
open System.Collections.Generic
open System.Diagnostics
open Argu
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experiments.Cli.Arguments
open Mpo.Experiments.Reports

/// "3,4,4,4,4" → [3;4;4;4;4], naming the option on bad input.
let parseFactors (option: string) (text: string) =
    let parts = text.Split(',', StringSplitOptions.TrimEntries ||| StringSplitOptions.RemoveEmptyEntries)
    let parsed = parts |> Array.map (fun p -> match Int32.TryParse p with | true, v when v > 0 -> Some v | _ -> None)
    if parts.Length = 0 || parsed |> Array.exists Option.isNone then
        invalidArg option $"{option} expects positive integers separated by commas, e.g. 3,4,4,4,4; got '{text}'"
    parsed |> Array.map Option.get

let parseDtype (text: string) =
    match text.ToLowerInvariant() with
    | "f32" | "float32" -> torch.float32
    | "f64" | "float64" -> torch.float64
    | "f16" | "float16" -> torch.float16
    | "bf16" | "bfloat16" -> torch.bfloat16
    | other -> invalidArg "--dtype" $"--dtype must be one of f32, f64, f16, bf16; got '{other}'"

/// The truncation the options ask for (at most one).
let truncation (args: ParseResults<DecomposeArgs>) =
    match args.TryGetResult Max_Bond, args.TryGetResult Tolerance, args.TryGetResult Budget with
    | None, None, None -> None
    | Some d, None, None -> Some(TruncationSpec.MaxBond d :> TruncationSpec)
    | None, Some eps, None -> Some(TruncationSpec.Tolerance eps :> TruncationSpec)
    | None, None, Some p -> Some(TruncationSpec.Budget p :> TruncationSpec)
    | _ -> invalidArg "--max-bond" "give at most one of --max-bond, --tolerance, --budget"

let factorization (args: ParseResults<DecomposeArgs>) (rows: int) (cols: int) =
    match args.TryGetResult Rows, args.TryGetResult Cols with
    | Some r, Some c -> MpoFactorization.Exact(rows, cols, parseFactors "--rows" r, parseFactors "--cols" c)
    | None, None -> FactorizationChooser.Choose(rows, cols, args.GetResult(Cores, defaultValue = FactorizationChooser.DefaultCores))
    | _ -> invalidArg "--rows" "give both --rows and --cols, or neither (then factors are chosen)"

/// Metadata that makes a cores file self-describing (read back by MpoCheckpoint readers later).
let metadata (tensor: string) (mpo: MatrixProductOperator) =
    let f = mpo.Factorization
    let list (xs: int seq) = String.Join(",", xs)
    Dictionary<string, string>(
        dict [ "format", "mpo"
               "tensor", tensor
               "row_factors", list f.RowFactors
               "col_factors", list f.ColFactors
               "rows", string f.Rows
               "cols", string f.Cols
               "bonds", list mpo.Bonds
               "central_index", string mpo.CentralIndex ])

let run (args: ParseResults<DecomposeArgs>) =
    let input = args.GetResult Input
    let name = args.GetResult Tensor
    let spec = truncation args
    let outDtype = args.TryGetResult Dtype |> Option.map parseDtype
    use file = SafeTensorsFile.Open input
    let info = file.Info name
    if info.Shape.Length <> 2 then
        invalidArg "--tensor" $"{input}: tensor '{name}' has shape [{String.Join(',', info.Shape)}]; an MPO decomposes a 2-D matrix"
    let f = factorization args (int info.Shape.[0]) (int info.Shape.[1])
    use scope = torch.NewDisposeScope()
    let w = file.Load name
    let coreDtype =
        outDtype |> Option.defaultValue (if w.dtype = torch.float16 || w.dtype = torch.bfloat16 then torch.float32 else w.dtype)
    let clock = Stopwatch.StartNew()
    use full = MpoDecomposer.Decompose(w, f, torch.float64)
    let decomposeSeconds = clock.Elapsed.TotalSeconds
    use cut = full.TruncateMeasured(spec |> Option.defaultValue (TruncationSpec.MaxBond Int32.MaxValue), w)
    let kept, report = cut.Mpo, cut.Report
    let bonds = report.Bonds
    let cores = [ for k in 0 .. kept.Cores.Count - 1 ->
                    let role = if k = kept.CentralIndex then "central" else $"aux{if k < kept.CentralIndex then k else k - 1}"
                    KeyValuePair($"{name}.{role}", kept.Cores.[k].``to``(coreDtype)) ]
    SafeTensors.Save(args.GetResult DecomposeArgs.Out, cores, metadata name kept)
    args.TryGetResult DecomposeArgs.Report
    |> Option.iter (fun path ->
        Json.write path {| source = {| file = input; tensor = name; dtype = string w.dtype |}
                           decompose_seconds = decomposeSeconds
                           core_dtype = string coreDtype
                           truncation = (match spec with Some s -> string s | None -> "none")
                           mpo = report |})
    printfn "%s" (Tables.markdown
        [ "tensor"; "shape"; "factors"; "bonds"; "params"; "ρ"; "bound (rel)"; "error (rel)" ]
        [ [ name; $"{f.Rows}x{f.Cols}"; $"{Tables.factors f.RowFactors}x{Tables.factors f.ColFactors}"
            Tables.factors bonds; Tables.int64s report.Parameters; Tables.ratio report.CompressionRatio
            Tables.sci report.RelativeBound; Tables.sci (report.RelativeError.GetValueOrDefault()) ] ])
    printfn "wrote %s%s (decomposition %.2f s)" (args.GetResult DecomposeArgs.Out)
        (match args.TryGetResult DecomposeArgs.Report with Some r -> " and " + r | None -> "") decomposeSeconds
    0
