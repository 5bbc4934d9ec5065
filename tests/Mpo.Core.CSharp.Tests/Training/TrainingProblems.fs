/// Two small, seeded, real learning problems for the trainer tests: a regression MLP with dropout and LayerNorm, and a
/// three-class classification of Gaussian blobs. Data live in memory; batches are addressed by (epoch, index) with a
/// per-epoch shuffle derived from the epoch alone, as IBatchSource asks.
module Mpo.Core.Tests.TrainingProblems

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open Mpo.Training

type Tensor = torch.Tensor
type Batch = Tensor * Tensor
type Layer = torch.nn.Module<Tensor, Tensor>

/// Examples (inputs, targets) and a held-out split.
type Dataset = { X: Tensor; Y: Tensor; ValX: Tensor; ValY: Tensor }

/// y = sin(x·w) + small noise, x ∈ R⁶: 64 training and 32 validation examples.
let regressionData =
    lazy (
        use g = new torch.Generator(7UL)
        let x = torch.randn([| 96L; 6L |], generator = g)
        let w = torch.randn([| 6L; 1L |], generator = g)
        let y = torch.sin(x.matmul(w)) + torch.randn([| 96L; 1L |], generator = g) * torch.tensor(0.05f)
        { X = x.narrow(0, 0, 64); Y = y.narrow(0, 0, 64); ValX = x.narrow(0, 64, 32); ValY = y.narrow(0, 64, 32) })

/// Three Gaussian blobs in R²: 60 training and 30 validation examples, labels int64.
let classificationData =
    lazy (
        use g = new torch.Generator(11UL)
        let centers = torch.tensor([| -2.0f; 0.0f; 2.0f; 0.0f; 0.0f; 2.5f |]).reshape(3L, 2L)
        let labels = torch.arange(90L).remainder((3L).ToScalar())
        let x = centers.index_select(0, labels) + torch.randn([| 90L; 2L |], generator = g) * torch.tensor(0.9f)
        { X = x.narrow(0, 0, 60); Y = labels.narrow(0, 0, 60); ValX = x.narrow(0, 60, 30); ValY = labels.narrow(0, 60, 30) })

/// Linear(6,16) → GELU → Dropout(p) → LayerNorm(16) → Linear(16,1), initialized from torch's generator seeded with `seed`.
let regressionModel (seed: int) (dropout: float) : torch.nn.Module<Tensor, Tensor> =
    torch.random.manual_seed(int64 seed) |> ignore
    torch.nn.Sequential(
        struct ("fc1", torch.nn.Linear(6L, 16L) :> Layer),
        struct ("act", torch.nn.GELU() :> Layer),
        struct ("drop", torch.nn.Dropout(dropout) :> Layer),
        struct ("norm", torch.nn.LayerNorm([| 16L |]) :> Layer),
        struct ("out", torch.nn.Linear(16L, 1L) :> Layer))

/// Linear(2,8) → Tanh → Linear(8,3).
let classificationModel (seed: int) : torch.nn.Module<Tensor, Tensor> =
    torch.random.manual_seed(int64 seed) |> ignore
    torch.nn.Sequential(
        struct ("hidden", torch.nn.Linear(2L, 8L) :> Layer),
        struct ("act", torch.nn.Tanh() :> Layer),
        struct ("out", torch.nn.Linear(8L, 3L) :> Layer))

/// Batches of `size` examples; epoch e visits the examples in the order of randperm seeded with 1000 + e.
let batches (data: Dataset) (size: int) : IBatchSource<Batch> =
    let n = int (data.X.shape.[0])
    BatchSource.Create(n / size, Func<int, int, Batch>(fun epoch index ->
        use g = new torch.Generator(uint64 (1000 + epoch))
        let order = torch.randperm(int64 n, generator = g)
        let rows = order.narrow(0, int64 (index * size), int64 size)
        data.X.index_select(0, rows), data.Y.index_select(0, rows)))

/// Mean squared error of the model on a batch; counts examples as "tokens".
let mseLoss (model: torch.nn.Module<Tensor, Tensor>) =
    Func<Batch, LossOutput>(fun (x, y) ->
        LossOutput(torch.nn.functional.mse_loss(model.forward(x), y), x.shape.[0]))

/// Cross-entropy of the model on a batch.
let crossEntropyLoss (model: torch.nn.Module<Tensor, Tensor>) =
    Func<Batch, LossOutput>(fun (x, y) ->
        LossOutput(torch.nn.functional.cross_entropy(model.forward(x), y), x.shape.[0]))

/// Validation MSE.
let mseMetric (model: torch.nn.Module<Tensor, Tensor>) (data: Dataset) =
    Func<IReadOnlyDictionary<string, float>>(fun () ->
        let mse = torch.nn.functional.mse_loss(model.forward(data.ValX), data.ValY).ToDouble()
        readOnlyDict [ "mse", mse ])

/// Validation accuracy and cross-entropy.
let accuracyMetric (model: torch.nn.Module<Tensor, Tensor>) (data: Dataset) =
    Func<IReadOnlyDictionary<string, float>>(fun () ->
        let logits = model.forward(data.ValX)
        let accuracy = logits.argmax(1L).eq(data.ValY).to_type(torch.float64).mean().ToDouble()
        readOnlyDict [ "accuracy", accuracy; "loss", torch.nn.functional.cross_entropy(logits, data.ValY).ToDouble() ])

/// A synchronous IProgress (Progress<T> would post to a thread pool and run late).
let onProgress (f: TrainingProgress -> unit) =
    { new IProgress<TrainingProgress> with member _.Report p = f p }

/// Copies of every parameter, by name; kept alive beyond any dispose scope (callbacks run inside the step's).
let snapshot (m: torch.nn.Module) =
    [ for struct (name, p) in m.named_parameters() -> name, p.detach().clone().DetachFromDisposeScope() ]

/// Whether two tensors hold the same bytes (dtype, shape and every bit of every value; -0.0 differs from 0.0).
let bitwise (a: Tensor) (b: Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.contiguous().bytes.ToArray() = b.contiguous().bytes.ToArray()

/// Whether two snapshots are bit-for-bit equal (names, and every tensor by `bitwise`).
let bitwiseEqual (a: (string * Tensor) list) (b: (string * Tensor) list) =
    List.length a = List.length b && List.forall2 (fun (na: string, ta) (nb, tb) -> na = nb && bitwise ta tb) a b

/// Runs `action` with a fresh temporary folder, deleted afterwards.
let inTemp (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-train-")
    try action dir.FullName finally dir.Delete true
