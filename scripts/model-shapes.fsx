// The matrices MPOP and MPOE decompose, as data: per model, every weight matrix with its count, the factors the
// chooser picks, and the parameters of its MPO at full bonds and at a few bond caps (MPOP spec §3.8, §4.3, §5.4).
// Pure arithmetic, no tensors: runs in a second.
//   ./scripts/fsi scripts/model-shapes.fsx
// Quick mode (MPO_QUICK=1, CI) and full mode are the same: shapes only, no checkpoint needed.
#load "references.fsx"

open Mpo.Decomposition
open Mpo.Experiments.Reports

/// (matrix, rows = out_features, cols = in_features, how many in the model)
type Matrix = { Name: string; Rows: int; Cols: int; Count: int }

let models =
    [ "BERT-base (12 layers)",
      [ { Name = "word embedding (30522 → 30720 padded)"; Rows = 30522; Cols = 768; Count = 1 }
        { Name = "attention q, k, v, o"; Rows = 768; Cols = 768; Count = 48 }
        { Name = "FFN in (intermediate)"; Rows = 3072; Cols = 768; Count = 12 }
        { Name = "FFN out (output)"; Rows = 768; Cols = 3072; Count = 12 } ]
      "ALBERT-base-v2 (one shared layer)",
      [ { Name = "word embedding"; Rows = 30000; Cols = 128; Count = 1 }
        { Name = "attention q, k, v, o"; Rows = 768; Cols = 768; Count = 4 }
        { Name = "FFN in"; Rows = 3072; Cols = 768; Count = 1 }
        { Name = "FFN out"; Rows = 768; Cols = 3072; Count = 1 } ]
      "T5-base FFN (12 + 12 blocks, MPOE)",
      [ { Name = "wi"; Rows = 3072; Cols = 768; Count = 24 }
        { Name = "wo"; Rows = 768; Cols = 3072; Count = 24 } ] ]

let caps = [ 256; 64 ]

for model, matrices in models do
    printfn "\n## %s\n" model
    let rows =
        [ for m in matrices ->
            let f = FactorizationChooser.Choose(m.Rows, m.Cols)
            let full = f.FullBonds()
            let central = f.CentralParameterCount full
            [ m.Name; string m.Count; $"{Tables.factors f.RowFactors}x{Tables.factors f.ColFactors}"; Tables.factors full
              Tables.int64s (int64 m.Rows * int64 m.Cols); Tables.int64s central; Tables.int64s (f.ParameterCount full - central) ]
            @ [ for cap in caps -> Tables.int64s (f.ParameterCount(f.Consistent(Truncation.PlanShape(f, TruncationSpec.MaxBond cap)))) ] ]
    printfn "%s" (Tables.markdown
        ([ "matrix"; "count"; "factors"; "full bonds"; "dense"; "central"; "auxiliary" ] @ [ for c in caps -> $"MPO, D ≤ {c}" ])
        rows)
