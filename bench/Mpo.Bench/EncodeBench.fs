/// Encoding with the imported all-MiniLM-L6-v2 (issue 8 §4): Mpo's BertModel on the converted checkpoint against
/// ONNX Runtime (CPU) on the package's original graph, side by side in one run: same random ids, same 128-token rows,
/// same thread count, forward only. Target: Mpo ≥ 0.8× ONNX Runtime's sentences per second.
module Mpo.Bench.EncodeBench

open System
open System.IO
open Microsoft.ML.OnnxRuntime
open Microsoft.ML.OnnxRuntime.Tensors
open TorchSharp
open Mpo.Checkpoints.Onnx
open Mpo.Models
open Mpo.Bench.Report

type Result =
    { Batch: int
      Tokens: int
      Threads: int
      MpoMs: float
      OrtMs: float
      MpoSentencesPerSecond: float
      OrtSentencesPerSecond: float
      /// Mpo's throughput over ONNX Runtime's.
      Ratio: float
      MpoPeakMiB: float
      OrtPeakMiB: float
      /// ‖Mpo − ORT‖ / ‖ORT‖ of last_hidden_state on the benchmark's own batch.
      Agreement: float
      Reps: int * int }

let private plan quick : Timing.Plan =
    if quick then { Warmup = 1; MinReps = 3; MaxReps = 10; BudgetMs = 1500.0; SlowMs = 10_000.0; SlowReps = 2 }
    else { Warmup = 3; MinReps = 10; MaxReps = 200; BudgetMs = 20_000.0; SlowMs = 20_000.0; SlowReps = 3 }

let private modelsFolder () =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "cannot find models/ above the benchmark"
        elif Directory.Exists(Path.Combine(d.FullName, "models", "tiny-bert")) then Path.Combine(d.FullName, "models")
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

let run (opts: Options) : Result list =
    let encoder = PackagedEncoders.MiniLM
    let struct (folder, _) = PackagedEncoders.Ensure(encoder, modelsFolder ())
    let bytes = (PackagedEncoders.EmbeddedResources(PackagedEncoders.Locate encoder, encoder.ModelResource)).[encoder.ModelResource]
    let threads = torch.get_num_threads ()
    use options = new SessionOptions(IntraOpNumThreads = threads, InterOpNumThreads = 1)
    use session = new InferenceSession(bytes, options)
    let struct (model, _) = PretrainedModel.Load folder
    use model = model
    let tokens = if opts.Quick then 16 else 128
    let shapes = if opts.Quick then [ 1; 2 ] else [ 1; 32 ]
    withProgress opts "encode" (float shapes.Length) (fun progress ->
        [ for batch in shapes ->
            progress.Describe $"batch {batch} × {tokens} tokens"
            use g = new torch.Generator(uint64 (20240 + batch))
            use ids = torch.randint(1000L, 30000L, [| int64 batch; int64 tokens |], generator = g)
            use mask = torch.ones([| int64 batch; int64 tokens |], dtype = torch.int64)
            use types = torch.zeros([| int64 batch; int64 tokens |], dtype = torch.int64)
            let dims = [| batch; tokens |]
            let onnxInput (name: string) (t: torch.Tensor) =
                NamedOnnxValue.CreateFromTensor(name, DenseTensor<int64>(Memory<int64>(t.data<int64>().ToArray()), ReadOnlySpan<int>(dims)))
            let inputs = [| onnxInput "input_ids" ids; onnxInput "attention_mask" mask; onnxInput "token_type_ids" types |]
            let outputs = [| "last_hidden_state" |]
            let mpo () =
                use _ = torch.no_grad ()
                use scope = torch.NewDisposeScope()
                model.forward(ModelInputs(ids, AttentionMask = mask, TokenTypeIds = types)).LastHiddenState |> ignore
            let ort () =
                use results = session.Run(inputs, outputs)
                ()
            // the two sides must compute the same thing for the comparison to mean anything
            let agreement =
                use _ = torch.no_grad ()
                use scope = torch.NewDisposeScope()
                let ours = model.forward(ModelInputs(ids, AttentionMask = mask, TokenTypeIds = types)).LastHiddenState
                use results = session.Run(inputs, outputs)
                let values = ((Seq.head results).AsTensor<float32>() :?> DenseTensor<float32>).Buffer.ToArray()
                let reference = torch.tensor(values).reshape(ours.shape)
                (ours - reference).norm().item<float32>() / reference.norm().item<float32>() |> float
            let profiles = Measure.profile (plan opts.Quick) ignore [| Measure.Run mpo; Measure.Run ort |]
            let m, o = profiles.[0], profiles.[1]
            progress.Advance 1.0
            { Batch = batch; Tokens = tokens; Threads = threads
              MpoMs = m.Time.MedianMs; OrtMs = o.Time.MedianMs
              MpoSentencesPerSecond = float batch / (m.Time.MedianMs / 1000.0)
              OrtSentencesPerSecond = float batch / (o.Time.MedianMs / 1000.0)
              Ratio = o.Time.MedianMs / m.Time.MedianMs
              MpoPeakMiB = m.PeakMiB; OrtPeakMiB = o.PeakMiB; Agreement = agreement; Reps = m.Time.Reps, o.Time.Reps } ])

let markdown (quick: bool) (results: Result list) =
    let header =
        "**Encoding with the imported all-MiniLM-L6-v2** (forward only, random ids, no padding; Mpo's BertModel on the converted "
        + "checkpoint vs ONNX Runtime on the package's original graph with its default graph optimizations; same thread count; "
        + "peak RSS is the whole process's high-water mark during one call, both models loaded)"
        + (if quick then " — quick mode: 16 tokens, batch 1 and 2" else "")
    let rows =
        [ for r in results ->
            [ string r.Batch; string r.Tokens; string r.Threads; ms r.MpoMs; ms r.OrtMs
              r.MpoSentencesPerSecond.ToString("F1"); r.OrtSentencesPerSecond.ToString("F1"); ratio r.Ratio
              sprintf "%s / %s" (mib r.MpoPeakMiB) (mib r.OrtPeakMiB); sci r.Agreement; sprintf "%d/%d" (fst r.Reps) (snd r.Reps) ] ]
    header + "\n\n"
    + table
        [ "batch", Right; "tokens", Right; "threads", Right; "Mpo ms", Right; "ORT ms", Right; "Mpo sent/s", Right; "ORT sent/s", Right
          "Mpo / ORT", Right; "peak RSS MiB Mpo / ORT", Right; "agreement (rel)", Right; "reps Mpo/ORT", Right ]
        rows
