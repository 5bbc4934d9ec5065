/// MPOP Figure 2: reconstruction error against compression ratio of a word-embedding matrix, (a) MPO against CP
/// (the paper's CPD) and (b) MPO with n = 2, 3, 5, 7 cores; here also Tucker and the truncated SVD. CP and Tucker
/// split the same tensor as the MPO (Tensorization: modes a_k = i_k·j_k), so at a given n all three spend their
/// parameters on the same n local indices. Pure functions returning point records; scripts/mpop-figure2.fsx
/// drives them, Plots/EmbeddingStudyPlots.fs draws them.
module Mpo.Experiments.Decomposition.EmbeddingStudy

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experiments.Reports
open Mpo.Experiments.Terminal

type Tensor = torch.Tensor

/// A word-embedding matrix [vocabulary, width] read from a checkpoint folder, in float64.
type Embedding =
    { Model: string
      Folder: string
      Tensor: string
      Weight: Tensor }

    member e.Rows = int e.Weight.shape.[0]
    member e.Cols = int e.Weight.shape.[1]

/// How the supported families name their word embedding (BERT/ALBERT/DistilBERT, GPT-2, T5).
let embeddingNames = [ "word_embeddings.weight"; "wte.weight"; "shared.weight"; "embed_tokens.weight" ]

/// The word embedding of the checkpoint in <c>folder</c> (Hugging Face layout).
let load (folder: string) =
    use checkpoint = CheckpointFolder.Open folder
    let candidates =
        checkpoint.TensorNames
        |> Seq.filter (fun n -> embeddingNames |> List.exists (fun s -> n = s || n.EndsWith("." + s)) && checkpoint.Info(n).Shape.Length = 2)
        |> Seq.sortBy (fun n -> n.Length)
        |> List.ofSeq
    match candidates with
    | [] ->
        let looked = embeddingNames |> List.map (fun n -> "*" + n) |> String.concat ", "
        invalidArg "folder" $"{folder}: none of its {checkpoint.TensorNames.Count} tensors is a word embedding (looked for 2-D tensors named {looked})"
    | name :: _ ->
        { Model = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath folder))
          Folder = folder
          Tensor = name
          Weight = checkpoint.Load(name, dtype = torch.float64) }

/// One approximation of the matrix: what it stores and how far it is from W.
type Point =
    { Model: string
      Tensor: string
      Rows: int
      Cols: int
      /// "mpo", "cp", "tucker" or "svd".
      Method: string
      /// n: cores of the MPO, modes of the CP/Tucker tensor; 2 for the SVD (the MPO with factors [I]×[J]).
      Cores: int
      RowFactors: int[]
      ColFactors: int[]
      /// The ρ the parameter budget was set from; None for the full-bond MPO.
      TargetRatio: float option
      /// Largest bond (MPO), CP rank, largest Tucker rank, SVD rank.
      Rank: int
      /// MPO bonds d_0..d_n or Tucker ranks d_1..d_n; empty for CP and SVD.
      Bonds: int[]
      Parameters: int64
      /// Parameters / (rows·cols) of the valid (unpadded) matrix (MPOP Eq. 5).
      CompressionRatio: float
      /// ‖W − W′‖_F on the valid matrix.
      Error: float
      RelativeError: float
      /// MPO: √Σε²/‖W‖ (MPOP Theorem 1); Tucker: the HOSVD bound; SVD: its exact error; CP: none.
      RelativeBound: float option
      /// CP-ALS sweeps and whether the fit settled; 0 and true for the SVD-based methods.
      Iterations: int
      Converged: bool
      /// Wall time of this point's own work (the full-bond MPO point: the decomposition its truncations share; SVD
      /// points: the one SVD they share).
      Seconds: float }

/// What to compute.
type Settings =
    { MpoCores: int list
      CpCores: int list
      TuckerCores: int list
      /// Compression ratios to aim at: each sets a parameter budget ρ·rows·cols.
      Ratios: float list
      /// CP ranks above this are not run (ALS costs grow with R: two GEMMs with X of |X|·R per sweep).
      MaxCpRank: int
      Cp: CpOptions }

/// CI: two budgets per method, CP capped at 10 sweeps.
let quickSettings =
    { MpoCores = [ 2; 3; 5; 7 ]
      CpCores = [ 5 ]
      TuckerCores = [ 5 ]
      Ratios = [ 0.05; 0.005 ]
      MaxCpRank = 200
      Cp = CpOptions(MaxIterations = 10, Tolerance = 1e-6) }

/// The figure: ρ from 0.5 down to 0.001.
let fullSettings =
    { MpoCores = [ 2; 3; 5; 7 ]
      CpCores = [ 3; 5 ]
      TuckerCores = [ 3; 5 ]
      Ratios = [ 0.5; 0.3; 0.2; 0.1; 0.05; 0.03; 0.02; 0.01; 0.005; 0.002; 0.001 ]
      MaxCpRank = 512
      Cp = CpOptions(MaxIterations = 100, Tolerance = 1e-5) }

let private budget (e: Embedding) (ratio: float) = int64 (ratio * float e.Rows * float e.Cols)

let private timed f =
    let clock = Stopwatch.StartNew()
    let r = f ()
    r, clock.Elapsed.TotalSeconds

let private basePoint (e: Embedding) method cores (f: MpoFactorization) =
    { Model = e.Model; Tensor = e.Tensor; Rows = e.Rows; Cols = e.Cols; Method = method; Cores = cores
      RowFactors = Array.ofSeq f.RowFactors; ColFactors = Array.ofSeq f.ColFactors; TargetRatio = None; Rank = 0
      Bonds = [||]; Parameters = 0L; CompressionRatio = 0.0; Error = 0.0; RelativeError = 0.0; RelativeBound = None
      Iterations = 0; Converged = true; Seconds = 0.0 }

let private distance (a: Tensor) (b: Tensor) =
    use scope = torch.NewDisposeScope()
    (a - b).norm().item<float>()

/// ‖W − W′‖_F for an approximation of the tensorized W, measured on the valid (unpadded) matrix.
let private matrixError (e: Embedding) (f: MpoFactorization) (approximation: Tensor) =
    use scope = torch.NewDisposeScope()
    distance (Tensorization.ToMatrix(approximation, f)) e.Weight

/// One unit of work: a label for the progress bar and the points it produces.
type private Job = { Label: string; Run: unit -> Point list }

/// The MPO with n cores: the full decomposition, then one truncation per ratio with the Budget spec (smallest error
/// bound within the budget), measured by TruncationSweep.
let private mpoJobs (e: Embedding) (reference: Lazy<TruncationSweep.Reference>) (ratios: float list) (n: int) =
    let f = FactorizationChooser.Choose(e.Rows, e.Cols, n)
    let mpo = ref None
    let get () = match mpo.Value with Some m -> m | None -> failwith "the MPO is decomposed by the first job"
    let ofReport target (report: TruncationReport) seconds =
        { basePoint e "mpo" n f with
            TargetRatio = target; Rank = Array.max report.Bonds; Bonds = report.Bonds; Parameters = report.Parameters
            CompressionRatio = report.CompressionRatio; Error = report.ActualError.Value; RelativeError = report.RelativeError.Value
            RelativeBound = Some report.RelativeBound; Seconds = seconds }
    let full =
        { Label = $"MPO n = {n}: decompose"
          Run = fun () ->
            let m, seconds = timed (fun () -> MpoDecomposer.Decompose(e.Weight, f, torch.float64))
            mpo.Value <- Some m
            let error = (use back = m.Reconstruct() in distance back e.Weight)
            [ ofReport None (TruncationReport.Create(m, m.Bonds, error)) seconds ] }
    let cuts =
        [ for ratio in ratios ->
            { Label = $"MPO n = {n}: ρ ≈ {ratio}"
              Run = fun () ->
                let m = get ()
                let b = budget e ratio
                let floor = f.ParameterCount(Array.create (n + 1) 1)
                if b < floor || b >= m.ParameterCount then []
                else
                    let p, seconds = timed (fun () -> TruncationSweep.point reference.Value m ($"budget {b}", TruncationSpec.Budget b))
                    [ ofReport (Some ratio) p.Report seconds ] } ]
    let dispose = { Label = $"MPO n = {n}: done"; Run = fun () -> (mpo.Value |> Option.iter (fun m -> m.Dispose())); mpo.Value <- None; [] }
    full :: cuts @ [ dispose ]

/// CP-ALS at the rank each ratio's budget allows (R·Σ a_k ≤ budget), up to MaxCpRank.
let private cpJobs (e: Embedding) (norm: float) (settings: Settings) (n: int) =
    let f = FactorizationChooser.Choose(e.Rows, e.Cols, n)
    let ranks =
        settings.Ratios
        |> List.map (fun ratio -> ratio, FormatBudget.CpRank(f, budget e ratio))
        |> List.filter (fun (_, r) -> r >= 1 && r <= settings.MaxCpRank)
        |> List.distinctBy snd
    let x = lazy (Tensorization.ToTensor(e.Weight, f))
    [ for ratio, rank in ranks ->
        { Label = $"CP n = {n}: rank {rank}"
          Run = fun () ->
            let cp, seconds = timed (fun () -> CpDecomposition.Decompose(x.Force(), rank, settings.Cp))
            use cp = cp
            let error = (use back = cp.Reconstruct() in matrixError e f back)
            [ { basePoint e "cp" n f with
                  TargetRatio = Some ratio; Rank = rank; Parameters = cp.ParameterCount
                  CompressionRatio = float cp.ParameterCount / (float e.Rows * float e.Cols); Error = error
                  RelativeError = error / norm; Iterations = cp.Iterations; Converged = cp.Converged; Seconds = seconds } ] } ]
    @ [ { Label = $"CP n = {n}: done"; Run = fun () -> (if x.IsValueCreated then x.Value.Dispose()); [] } ]

/// Tucker by truncated HOSVD with one rank cap for every mode, the largest within each ratio's budget.
let private tuckerJobs (e: Embedding) (norm: float) (settings: Settings) (n: int) =
    let f = FactorizationChooser.Choose(e.Rows, e.Cols, n)
    let configurations =
        settings.Ratios
        |> List.choose (fun ratio -> FormatBudget.TuckerRanks(f, budget e ratio) |> Option.ofObj |> Option.map (fun r -> ratio, r))
        |> List.distinctBy (snd >> List.ofArray)
    let x = lazy (Tensorization.ToTensor(e.Weight, f))
    [ for ratio, ranks in configurations ->
        { Label = $"Tucker n = {n}: ranks ≤ {Array.max ranks}"
          Run = fun () ->
            let t, seconds = timed (fun () -> TuckerDecomposition.Decompose(x.Force(), ranks))
            use t = t
            let error = (use back = t.Reconstruct() in matrixError e f back)
            [ { basePoint e "tucker" n f with
                  TargetRatio = Some ratio; Rank = Array.max ranks; Bonds = ranks; Parameters = t.ParameterCount
                  CompressionRatio = float t.ParameterCount / (float e.Rows * float e.Cols); Error = error
                  RelativeError = error / norm; RelativeBound = Some t.RelativeBound; Seconds = seconds } ] } ]
    @ [ { Label = $"Tucker n = {n}: done"; Run = fun () -> (if x.IsValueCreated then x.Value.Dispose()); [] } ]

/// The truncated SVD at each ratio's budget: Eckart–Young's error from W's singular values (TruncationSweep).
let private svdJob (e: Embedding) (reference: Lazy<TruncationSweep.Reference>) (norm: float) (ratios: float list) =
    { Label = "SVD"
      Run = fun () ->
        let r, s = timed (fun () -> reference.Force())
        [ for ratio in ratios do
            let rank = FormatBudget.SvdRank(e.Rows, e.Cols, budget e ratio)
            if rank >= 1 then
                let rel = TruncationSweep.lowRankError r.Singular rank
                let p = int64 rank * int64 (e.Rows + e.Cols)
                yield
                    { basePoint e "svd" 2 (FormatBudget.SvdFactorization(e.Rows, e.Cols)) with
                        TargetRatio = Some ratio; Rank = rank; Parameters = p; CompressionRatio = float p / (float e.Rows * float e.Cols)
                        Error = rel * norm; RelativeError = rel; RelativeBound = Some rel; Seconds = s } ] }

/// Every point of the study for one embedding, in order: SVD, MPO per n, CP per n, Tucker per n.
let run (settings: Settings) (e: Embedding) : Point list =
    // The reference (W in float64 and its singular values) is shared by the SVD points and every MPO truncation.
    let reference = lazy (TruncationSweep.reference e.Weight)
    let norm = (use n = e.Weight.norm() in n.item<float>())
    let jobs =
        [ svdJob e reference norm settings.Ratios ]
        @ (settings.MpoCores |> List.collect (mpoJobs e reference settings.Ratios))
        @ (settings.CpCores |> List.collect (cpJobs e norm settings))
        @ (settings.TuckerCores |> List.collect (tuckerJobs e norm settings))
    ProgressBar.track $"{e.Model} {e.Rows}×{e.Cols}" (float jobs.Length) (fun report ->
        jobs |> List.mapi (fun i job ->
            report (float i) job.Label
            job.Run ()) |> List.concat)

// ---------------------------------------------------------------------------------------------------------------
// Files: one JSON object per line, so another run's points append and a result store can read them line by line.

let private lineOptions = JsonSerializerOptions(Json.options, WriteIndented = false)

let toJsonLine (p: Point) = JsonSerializer.Serialize(p, lineOptions)

let ofJsonLine (line: string) = JsonSerializer.Deserialize<Point>(line, lineOptions)

/// Writes the points as JSON lines (atomically).
let write (path: string) (points: Point list) =
    AtomicFile.WriteAllText(path, String.Join("", points |> List.map (fun p -> toJsonLine p + "\n")))

/// Reads points written by <see cref="write"/>; a malformed line is an error naming the file and line.
let read (path: string) =
    File.ReadAllLines path
    |> Array.mapi (fun i line -> i, line)
    |> Array.filter (fun (_, l) -> l.Trim() <> "")
    |> Array.map (fun (i, line) ->
        try ofJsonLine line
        with :? JsonException as ex -> raise (InvalidDataException($"{path}:{i + 1}: not a point: {ex.Message}", ex)))
    |> List.ofArray

// ---------------------------------------------------------------------------------------------------------------
// Tables.

/// Column name of a method line: "SVD", "MPO n = 5", "CP n = 5", "Tucker n = 3".
let series (p: Point) =
    match p.Method with
    | "svd" -> "SVD"
    | "mpo" -> $"MPO n = {p.Cores}"
    | "cp" -> $"CP n = {p.Cores}"
    | "tucker" -> $"Tucker n = {p.Cores}"
    | m -> m

/// Relative error per target ratio (rows) and method line (columns), one model; "–" where a method has no point
/// for that budget (CP above MaxCpRank, Tucker caps too coarse to differ).
let table (points: Point list) =
    let budgeted = points |> List.filter (fun p -> p.TargetRatio.IsSome)
    let columns = budgeted |> List.map series |> List.distinct
    let ratios = budgeted |> List.map (fun p -> p.TargetRatio.Value) |> List.distinct |> List.sortDescending
    let cell ratio column =
        match budgeted |> List.tryFind (fun p -> p.TargetRatio = Some ratio && series p = column) with
        | Some p -> p.RelativeError.ToString("0.000", Globalization.CultureInfo.InvariantCulture)
        | None -> "–"
    Tables.markdown ("ρ ≤" :: columns) [ for r in ratios -> r.ToString(Globalization.CultureInfo.InvariantCulture) :: [ for c in columns -> cell r c ] ]

/// Factors each series split the matrix with, e.g. "MPO n = 5: [6,8,10,8,8]×[2,2,4,4,2]".
let factorsUsed (points: Point list) =
    points
    |> List.distinctBy series
    |> List.map (fun p -> $"{series p}: {Tables.factors p.RowFactors}×{Tables.factors p.ColFactors}")

/// Seconds spent per series (CP-ALS sweeps and whether they settled, where it applies).
let timing (points: Point list) =
    points
    |> List.groupBy series
    |> List.map (fun (name, ps) ->
        let seconds =
            // SVD points share one SVD: count it once.
            if ps.Head.Method = "svd" then ps.Head.Seconds else ps |> List.sumBy (fun p -> p.Seconds)
        let cp =
            if ps.Head.Method = "cp" then
                let unsettled = ps |> List.filter (fun p -> not p.Converged) |> List.length
                let sweeps = ps |> List.map (fun p -> p.Iterations)
                $", {List.min sweeps}–{List.max sweeps} sweeps, {unsettled} of {ps.Length} stopped at the sweep limit"
            else ""
        $"{name}: {seconds:F1} s{cp}")

/// The results folder's README: per model the table, the figures, the factors and the time each method took.
let readme (points: Point list) (command: string) (machine: string) (figures: string -> string list) =
    let models = points |> List.map (fun p -> p.Model) |> List.distinct
    [ yield "# MPOP Figure 2: reconstruction error of word embeddings against compression"
      yield ""
      yield "Made by `" + command + "` on " + machine + "."
      yield "Each cell is ‖W − W′‖_F / ‖W‖_F of the approximation with the most parameters within ρ·rows·cols"
      yield "(the actual ρ of every point is in `points.jsonl`). MPO: the chooser's factors for n cores, truncated"
      yield "with the Budget spec (smallest error bound √Σε² within the budget), error measured. CP (the paper's CPD):"
      yield "ALS on the MPO's n-way tensor (modes a_k = i_k·j_k), rank R = ⌊budget / Σa_k⌋, HOSVD start. Tucker: truncated"
      yield "HOSVD of the same tensor, one rank cap for all modes. SVD: the truncated SVD of W at rank ⌊budget / (rows + cols)⌋"
      yield "(= the MPO with n = 2 and factors [I]×[J]). \"–\": no point (CP rank above the run's limit, or a Tucker cap"
      yield "that repeats the previous one)."
      for m in models do
          let ps = points |> List.filter (fun p -> p.Model = m)
          let p = ps.Head
          yield ""
          yield $"## {m}: `{p.Tensor}` [{p.Rows}×{p.Cols}]"
          yield ""
          yield table ps
          yield ""
          for f in figures m do
              yield $"![{m}]({f})"
          yield ""
          yield "Factors: " + String.Join("; ", factorsUsed ps) + "."
          yield ""
          yield "Time: " + String.Join("; ", timing ps) + "." ]
    |> String.concat "\n"
