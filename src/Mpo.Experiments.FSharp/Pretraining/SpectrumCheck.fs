/// Evidence that a model was really trained: the singular values of its weight matrices decay, where those of the
/// random matrices it started from do not (a Gaussian matrix's spectrum follows the flat Marchenko–Pastur law).
/// This is also what makes MPO truncation worthwhile later (MPOP §3.3): energy concentrated in few directions.
module Mpo.Experiments.Pretraining.SpectrumCheck

open TorchSharp

/// Fraction of ‖W‖²_F carried by the top <c>fraction</c> of singular values (at least one).
let topEnergy (fraction: float) (w: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    let s = torch.linalg.svdvals(w.detach().``to``(torch.float64))
    let e = s * s
    let k = max 1L (int64 (ceil (fraction * float e.shape.[0])))
    (e.narrow(0, 0L, k).sum() / e.sum()).item<float>()

/// The same measure for a seeded Gaussian matrix of the same shape: what an untrained weight would show.
let randomTopEnergy (fraction: float) (rows: int64) (cols: int64) (seed: int) =
    use g = new torch.Generator(uint64 seed)
    use w = torch.randn([| rows; cols |], dtype = torch.float64, generator = g)
    topEnergy fraction w

type MatrixSpectrum = { Name: string; Shape: int64[]; TopEnergy: float; RandomTopEnergy: float }

/// Every 2-D weight except embeddings/position tables (their rows are tokens, and rare tokens barely move from
/// their initialization in a short pre-training), measured at the top 10%.
let ofWeights (tensors: seq<string * torch.Tensor>) =
    [ for name, t in tensors do
        if t.dim() = 2L && not (name.Contains "embed" || name.Contains "wte" || name.Contains "wpe" || name.EndsWith "shared.weight"
                                || name.Contains "relative_attention_bias") then
            yield { Name = name; Shape = t.shape; TopEnergy = topEnergy 0.1 t
                    RandomTopEnergy = randomTopEnergy 0.1 t.shape.[0] t.shape.[1] 7 } ]
