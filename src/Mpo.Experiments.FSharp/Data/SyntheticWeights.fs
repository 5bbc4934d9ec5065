/// A stand-in for a pre-trained FFN weight until Mpo's own pre-trained models exist (no pre-trained transformer
/// weights are obtainable offline). Trained weight matrices are not Gaussian noise: their spectra decay, and the
/// interleaved unfoldings an MPO cuts decay too. A random Gaussian matrix has neither, and a matrix with a decaying
/// spectrum alone still has flat bond spectra, so the recipe mixes three parts:
///   W = 0.6·(MPO-structured part: random cores, bond index m weighted (m+1)^-1.2)
///     + 0.3·(low-rank part: rank 64, singular values ∝ (i+1)^-1)
///     + 0.1·(Gaussian noise)  (each part scaled to unit Frobenius norm first)
/// and is scaled to an entry standard deviation of 0.04, BERT-base FFN scale.
module Mpo.Experiments.Data.SyntheticWeights

open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction

let private gaussian (g: torch.Generator) (shape: int64[]) = torch.randn(shape, dtype = torch.float64, generator = g)

let private unit (t: torch.Tensor) = t / t.norm()

/// The recipe above for a [rows, cols] matrix (float32), deterministic in <c>seed</c>.
let ffnLike (seed: int) (rows: int) (cols: int) =
    use scope = torch.NewDisposeScope()
    use g = new torch.Generator(uint64 seed)
    let f = FactorizationChooser.Choose(rows, cols)
    let bonds = f.FullBonds()
    let cores =
        [| for k in 0 .. f.CoreCount - 1 ->
            let weights = torch.arange(1.0, float bonds.[k + 1] + 1.0, dtype = torch.float64).pow(torch.tensor(-1.2, dtype = torch.float64))
            gaussian g (f.CoreShape(k, bonds)) * weights.reshape(1L, 1L, 1L, -1L) |]
    let structured = MpoContraction.Reconstruct(cores, f)
    let rank = 64L
    let struct (u, _) = torch.linalg.qr(gaussian g [| int64 rows; rank |])
    let struct (v, _) = torch.linalg.qr(gaussian g [| int64 cols; rank |])
    let s = torch.arange(1.0, float rank + 1.0, dtype = torch.float64).reciprocal()
    let lowRank = (u * s.unsqueeze(0L)).matmul(v.t())
    let noise = gaussian g [| int64 rows; int64 cols |]
    let scalar (x: float) = torch.tensor(x, dtype = torch.float64)
    let w = unit structured * scalar 0.6 + unit lowRank * scalar 0.3 + unit noise * scalar 0.1
    let w = w * scalar (0.04 / w.std().item<float>())
    w.``to``(torch.float32).MoveToOuterDisposeScope()
