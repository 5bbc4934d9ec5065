/// Seeded test data and small oracles shared by the core tests.
module Mpo.Core.Tests.Support

open System
open Expecto
open TorchSharp
open Mpo.Decomposition

type Tensor = torch.Tensor

/// FsCheck runs from a fixed seed, so a failure reproduces exactly.
let properties maxTest =
    { FsCheckConfig.defaultConfig with maxTest = maxTest; replay = Some (20210603UL, 2021UL, None) }

let generator (seed: int) = new torch.Generator(uint64 seed)

let gaussian (seed: int) (shape: int64 list) (dtype: torch.ScalarType) =
    use g = generator seed
    torch.randn(List.toArray shape, dtype = dtype, generator = g)

/// A matrix whose every bond unfolding has a decaying spectrum: the contraction of random cores whose bond index m is
/// weighted by decay^m. (A random Gaussian matrix has flat unfolding spectra and is incompressible, and a matrix
/// with a decaying spectrum of its own still has flat bond spectra after the MPO's interleaved reshape.)
let compressible (f: MpoFactorization) (decay: float) (seed: int) (dtype: torch.ScalarType) =
    use scope = torch.NewDisposeScope()
    let bonds = f.FullBonds()
    let cores =
        [| for k in 0 .. f.CoreCount - 1 ->
            let core = gaussian (seed * 1000 + k) (List.ofArray (f.CoreShape(k, bonds))) torch.float64
            let weights = torch.pow(torch.tensor(decay, dtype = torch.float64), torch.arange(int64 bonds.[k + 1], dtype = torch.float64))
            core * weights.reshape(1L, 1L, 1L, -1L) |]
    let w = Mpo.Contraction.MpoContraction.Reconstruct(cores, f)
    (w / w.norm()).``to``(dtype).MoveToOuterDisposeScope()

/// ‖a − b‖_F / ‖b‖_F in float64.
let relativeError (a: Tensor) (b: Tensor) =
    use scope = torch.NewDisposeScope()
    let a64, b64 = a.``to``(torch.float64), b.``to``(torch.float64)
    (a64 - b64).norm().item<float>() / b64.norm().item<float>()

let frobenius (a: Tensor) (b: Tensor) =
    use scope = torch.NewDisposeScope()
    (a.``to``(torch.float64) - b.``to``(torch.float64)).norm().item<float>()

/// Bond-b unfolding of W taken straight from the definition (interleaved reshape, then split after core b):
/// an oracle independent of the decomposition's sweeps.
let unfolding (w: Tensor) (f: MpoFactorization) (b: int) =
    let n = f.CoreCount
    let shape = Array.append (f.RowFactors |> Seq.map int64 |> Array.ofSeq) (f.ColFactors |> Seq.map int64 |> Array.ofSeq)
    let perm = [| for k in 0 .. n - 1 do yield int64 k; yield int64 (n + k) |]
    let left = Seq.init b (fun k -> int64 (f.Physical k)) |> Seq.fold (*) 1L
    w.reshape(shape).permute(perm).reshape(left, -1L)

let singularValues (m: Tensor) =
    use scope = torch.NewDisposeScope()
    torch.linalg.svdvals(m.``to``(torch.float64)).data<float>().ToArray()

/// Random factor lists for property tests: n cores with small factors, so matrices stay small.
let randomFactorization (rng: Random) =
    let n = rng.Next(2, 6)
    let factors () = Array.init n (fun _ -> rng.Next(1, 4))
    MpoFactorization(factors (), factors ())

let expectClose (tolerance: float) (actual: float) (expected: float) message =
    if abs (actual - expected) > tolerance * max 1.0 (abs expected) then
        failtestf "%s: expected %g, got %g (tolerance %g)" message expected actual tolerance

let repoFile = Mpo.Tests.RepoFiles.find

/// Runs `f`, expects an exception of type 'e whose message contains every fragment, and returns it.
let throwsWith<'e when 'e :> exn> (fragments: string list) (f: unit -> unit) : 'e =
    let error =
        try
            f ()
            None
        with :? 'e as e -> Some e
    match error with
    | None -> failtestf "expected %s" typeof<'e>.Name
    | Some e ->
        for fragment in fragments do
            Expect.stringContains e.Message fragment $"the message names {fragment}"
        e
