module Mpo.Core.Tests.GenerationTests

open System
open Expecto
open TorchSharp
open Mpo.Models
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.DecoderFixtures

let ninf = Single.NegativeInfinity

let row (values: float32 list) = torch.tensor(Array.ofList values).reshape(1L, -1L)

let values (t: Tensor) = t.data<float32>().ToArray() |> List.ofArray

/// The fixture's prompt and reference output, and options for its greedy continuation (the reference's max_new_tokens).
let greedyCase architecture =
    use file = Mpo.Checkpoints.SafeTensorsFile.Open(IO.Path.Combine(folder architecture, "io.safetensors"))
    io architecture, GenerationOptions(MaxNewTokens = int file.Metadata.["max_new_tokens"])

/// Wraps a layer and counts its calls (put in place by ModuleSurgery).
type Counting(inner: torch.nn.Module<Tensor, Tensor>) as this =
    inherit torch.nn.Module<Tensor, Tensor>("Counting")
    do this.register_module("inner", inner)
    member val Calls = 0 with get, set
    override this.forward x =
        this.Calls <- this.Calls + 1
        inner.forward x

/// `options` with the cache switched (F# has no `with` for C# records).
let withCache (o: GenerationOptions) useCache =
    GenerationOptions(MaxNewTokens = o.MaxNewTokens, DoSample = o.DoSample, Temperature = o.Temperature, TopK = o.TopK, TopP = o.TopP,
                      EosTokenId = o.EosTokenId, PadTokenId = o.PadTokenId, UseCache = useCache)

let generate (model: PretrainedModel) (d: Collections.Generic.Dictionary<string, Tensor>) options seed =
    use g = generator seed
    Generation.Generate(model, d.["gen.input_ids"], d.["gen.attention_mask"], options, g)

[<Tests>]
let tests =
    testSequenced <| testList "Models.Generation" [
        for architecture in [ "GPT2LMHeadModel"; "T5ForConditionalGeneration" ] do
            test $"{architecture}: greedy continuation equals the reference's tokens, with and without the cache" {
                let model, _ = load architecture null
                let d, options = greedyCase architecture
                let expected = tokens d.["gen.sequences"]
                for useCache in [ true; false ] do
                    let out = generate model d (withCache options useCache) 0
                    Expect.sequenceEqual (tokens out.Sequences) expected $"tokens (cache {useCache})"
                    expectRelative 1e-5 out.Logits d.["gen.logits"] $"step logits vs float64 reference (cache {useCache})"
                Expect.isFalse model.training "left in eval mode" }

            test $"{architecture}: the cache gives the same tokens and logits as recomputing the prefix (float32 ≤ 1e-5, float64 ≤ 1e-12)" {
                let model, _ = load architecture null
                let d, _ = greedyCase architecture
                // sampling at a high temperature visits more varied tokens than greedy
                let options = GenerationOptions(MaxNewTokens = 8, DoSample = true, Temperature = 1.5, TopK = 0, EosTokenId = -1)
                for dtype, tolerance in [ torch.float32, 1e-5; torch.float64, 1e-12 ] do
                    model.``to``(dtype) |> ignore
                    let cached = generate model d options 11
                    let recomputed = generate model d (withCache options false) 11
                    Expect.sequenceEqual (tokens cached.Sequences) (tokens recomputed.Sequences) $"{dtype}: same tokens"
                    Expect.equal cached.Logits.shape.[1] 8L "eight steps (no eos)"
                    expectRelative tolerance cached.Logits recomputed.Logits $"{dtype}: same logits" }

        test "T5 with the cache: the encoder runs once, cross-attention keys/values are computed once and reused" {
            let model, _ = load "T5ForConditionalGeneration" null
            let d, _ = greedyCase "T5ForConditionalGeneration"
            let counters = [ for path in [ "encoder.block.0.layer.0.SelfAttention.q"; "decoder.block.1.layer.1.EncDecAttention.k"; "decoder.block.1.layer.0.SelfAttention.k" ] ->
                                let counter = new Counting(ModuleSurgery.Find(model, path) :?> torch.nn.Module<Tensor, Tensor>)
                                ModuleSurgery.Replace(model, path, counter) |> ignore
                                counter ]
            let calls () = counters |> List.map (fun c -> c.Calls)
            let options = GenerationOptions(MaxNewTokens = 5, EosTokenId = -1)
            generate model d options 0 |> ignore
            Expect.equal (calls ()) [ 1; 1; 5 ] "encoder once, cross keys once, self keys per step"
            for c in counters do c.Calls <- 0
            generate model d (withCache options false) 0 |> ignore
            Expect.equal (calls ()) [ 1; 5; 5 ] "without the cache the cross keys are recomputed every step" }

        test "each row stops at its own eos and continues with the pad id" {
            let d, options = greedyCase "GPT2LMHeadModel"
            let model, _ = load "GPT2LMHeadModel" null
            let eos = model.Config.EosTokenId.Value
            let out = generate model d options 0
            let rows = out.Sequences
            let first = tokens (rows.[0L].narrow(0, 5L, rows.shape.[1] - 5L))
            let stop = Array.IndexOf(first, int64 eos)
            Expect.isGreaterThan stop 0 "row 0 produces eos after a few tokens"
            Expect.isTrue (first.[stop..] |> Array.forall ((=) (int64 eos))) "then pads (GPT-2 pads with eos)"
            Expect.isFalse (tokens (rows.[1L].narrow(0, 5L, rows.shape.[1] - 5L)) |> Array.contains (int64 eos)) "row 1 runs on"
            let overridden = generate model d (GenerationOptions(MaxNewTokens = 6, EosTokenId = -1)) 0
            Expect.equal overridden.Sequences.shape.[1] 11L "without eos all six steps run" }

        test "temperature divides the logits" {
            Expect.equal (values (LogitsProcessing.Temperature(row [ 1.0f; -2.0f; 3.0f ], 2.0))) [ 0.5f; -1.0f; 1.5f ] "T = 2"
            throwsWith<ArgumentException> [ "temperature" ] (fun () -> LogitsProcessing.Temperature(row [ 1.0f ], 0.0) |> ignore) |> ignore }

        test "top-k keeps the k largest per row, ties with the k-th included" {
            let logits = torch.tensor([| 1.0f; 4.0f; 2.0f; 3.0f; 5.0f; 5.0f; 1.0f; 0.0f |]).reshape(2L, 4L)
            let kept = LogitsProcessing.TopK(logits, 2)
            Expect.equal (values kept) [ ninf; 4.0f; ninf; 3.0f; 5.0f; 5.0f; ninf; ninf ] "k = 2"
            Expect.equal (values (LogitsProcessing.TopK(row [ 1.0f; 3.0f; 3.0f; 2.0f ], 1))) [ ninf; 3.0f; 3.0f; ninf ] "tie at k = 1 keeps both"
            Expect.equal (values (LogitsProcessing.TopK(row [ 1.0f; 2.0f ], 0))) [ 1.0f; 2.0f ] "0 disables"
            Expect.equal (values (LogitsProcessing.TopK(row [ 1.0f; 2.0f ], 5))) [ 1.0f; 2.0f ] "k ≥ vocab keeps all"
            throwsWith<ArgumentException> [ "k" ] (fun () -> LogitsProcessing.TopK(row [ 1.0f ], -1) |> ignore) |> ignore }

        test "top-p keeps the smallest most-likely set reaching p (the crossing token included), at least min tokens" {
            // probabilities 0.15, 0.5, 0.05, 0.3 (vocabulary order is not probability order)
            let logits = torch.log(torch.tensor([| 0.15f; 0.5f; 0.05f; 0.3f |])).reshape(1L, 4L)
            let keptAt p = values (LogitsProcessing.TopP(logits, p)) |> List.map (fun v -> not (Single.IsNegativeInfinity v))
            Expect.equal (keptAt 0.7) [ false; true; false; true ] "0.5 + 0.3 reaches 0.7"
            Expect.equal (keptAt 0.9) [ true; true; false; true ] "0.95 needed to reach 0.9"
            Expect.equal (keptAt 0.4) [ false; true; false; false ] "0.5 alone reaches 0.4"
            Expect.equal (keptAt 1.0) [ true; true; true; true ] "p = 1 keeps all"
            let two = values (LogitsProcessing.TopP(logits, 0.01, minTokensToKeep = 2)) |> List.map (fun v -> not (Single.IsNegativeInfinity v))
            Expect.equal two [ false; true; false; true ] "min tokens to keep"
            Expect.equal (values (LogitsProcessing.TopP(logits, 0.7))).[1] (values logits).[1] "kept logits unchanged"
            throwsWith<ArgumentException> [ "p" ] (fun () -> LogitsProcessing.TopP(logits, 0.0) |> ignore) |> ignore }

        test "sampling reproduces with the same seed and differs with another; every draw lies in the top-k / top-p set" {
            let model, _ = load "GPT2LMHeadModel" null
            let d, _ = greedyCase "GPT2LMHeadModel"
            let options = GenerationOptions(MaxNewTokens = 12, DoSample = true, Temperature = 2.0, TopK = 0, EosTokenId = -1)
            let a, b, c = generate model d options 7, generate model d options 7, generate model d options 8
            Expect.sequenceEqual (tokens a.Sequences) (tokens b.Sequences) "same seed, same tokens"
            Expect.isFalse (identical a.Sequences c.Sequences) "another seed, other tokens"
            let check (options: GenerationOptions) (allowed: Tensor -> Tensor) what =
                let out = generate model d options 3
                let drawn = out.Sequences.narrow(1, 5L, out.Logits.shape.[1])
                for step in 0L .. out.Logits.shape.[1] - 1L do
                    let mask = allowed (out.Logits.select(1, step))   // [batch, vocab] bool
                    let picked = mask.gather(1L, drawn.narrow(1, step, 1L))
                    Expect.isTrue (picked.all().item<bool>()) $"{what}: step {step} inside the set"
            let k = GenerationOptions(MaxNewTokens = 10, DoSample = true, Temperature = 3.0, TopK = 3, EosTokenId = -1)
            check k (fun l -> let struct (top, _) = l.topk(3) in l.ge(top.narrow(1, 2L, 1L))) "top-3"
            let p = GenerationOptions(MaxNewTokens = 10, DoSample = true, Temperature = 1.0, TopK = 0, TopP = 0.6, EosTokenId = -1)
            check p (fun l -> LogitsProcessing.TopP(l, 0.6).isfinite()) "top-p 0.6"
            let one = generate model d (GenerationOptions(MaxNewTokens = 6, DoSample = true, TopK = 1, EosTokenId = -1)) 5
            let greedy = generate model d (GenerationOptions(MaxNewTokens = 6, EosTokenId = -1)) 5
            Expect.sequenceEqual (tokens one.Sequences) (tokens greedy.Sequences) "top-1 sampling is greedy" }

        test "bad prompts and options fail naming the argument" {
            let model, _ = load "GPT2LMHeadModel" null
            let ids = torch.ones(2L, 4L, dtype = torch.int64)
            let rightPadded = torch.tensor([| 1L; 1L; 1L; 1L; 1L; 1L; 0L; 0L |]).reshape(2L, 4L)
            throwsWith<ArgumentException> [ "attentionMask"; "left" ] (fun () ->
                Generation.Generate(model, ids, rightPadded) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "options"; "24 positions" ] (fun () ->
                Generation.Generate(model, ids, options = GenerationOptions(MaxNewTokens = 21)) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "temperature" ] (fun () ->
                Generation.Generate(model, ids, options = GenerationOptions(DoSample = true, Temperature = 0.0)) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "options"; "MaxNewTokens" ] (fun () ->
                Generation.Generate(model, ids, options = GenerationOptions(MaxNewTokens = 0)) |> ignore) |> ignore
            let bare, _ = load "GPT2LMHeadModel" "GPT2Model"
            throwsWith<ArgumentException> [ "model"; "GPT2Model" ] (fun () -> Generation.Generate(bare, ids) |> ignore) |> ignore }
    ]
