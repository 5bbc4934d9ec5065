/// `mpo forward` against the reference fixtures of tools/reference/models (independent PyTorch implementations).
module Mpo.Experiments.Tests.ForwardTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Experiments.Tests.Support

let private fixture name = repoFile $"tests/fixtures/models/{name}"

/// Copies the named input tensors of a fixture's io.safetensors into an input file for `mpo forward`.
let private writeInputs (dir: string) (model: string) (names: string list) =
    let all = SafeTensors.LoadAll(Path.Combine(fixture model, "io.safetensors"))
    let path = Path.Combine(dir, "ids.safetensors")
    SafeTensors.Save(path, [ for n in names -> KeyValuePair(n, all.[n]) ])
    path, all

let private relativeError (a: torch.Tensor) (b: torch.Tensor) =
    let a, b = a.``to``(torch.float64), b.``to``(torch.float64)
    (a - b).norm().item<float>() / b.norm().item<float>()

let private forwardCase (model: string) (inputs: string list) (expected: string) =
    test $"{model}: logits match the reference within 1e-5" {
        inTempDir (fun dir ->
            let ids, io = writeInputs dir model inputs
            let run = mpo dir [ "forward"; "--model"; fixture model; "--input"; ids; "--out"; "out.safetensors" ]
            Expect.equal run.Code 0 $"success; stderr: {run.Err}"
            let out = SafeTensors.LoadAll(Path.Combine(dir, "out.safetensors"))
            Expect.isTrue (out.ContainsKey "last_hidden_state") "final hidden states written"
            Expect.isLessThan (relativeError out.["logits"] io.[expected]) 1e-5 "logits vs reference")
    }

[<Tests>]
let tests =
    testSequenced <| testList "Cli.forward" [
        forwardCase "GPT2LMHeadModel" [ "input_ids"; "attention_mask" ] "f32.logits"
        forwardCase "T5ForConditionalGeneration" [ "input_ids"; "attention_mask"; "decoder_input_ids" ] "f32.logits"
        forwardCase "BertForSequenceClassification" [ "input_ids"; "attention_mask"; "token_type_ids" ] "logits_f32"
        forwardCase "AlbertForMaskedLM" [ "input_ids"; "attention_mask"; "token_type_ids" ] "logits_f32"
        test "an MPOE checkpoint (T5, experts in every FFN) runs through mpo forward: the logits of the model that saved it" {
            inTempDir (fun dir ->
                let struct (model, _) = Mpo.Models.PretrainedModel.Load(fixture "T5ForConditionalGeneration")
                let config = Mpo.Tuning.MpoTunerConfig.FromJson(Text.Json.Nodes.JsonNode.Parse("""{"moe": {"kind": "mpoe", "experts": 4}}""").AsObject(), "test")
                use tuned = Mpo.Tuning.MpoTuner(config).Apply(model)
                let saved = Path.Combine(dir, "mpoe")
                model.Save saved
                let ids, io = writeInputs dir "T5ForConditionalGeneration" [ "input_ids"; "attention_mask"; "decoder_input_ids" ]
                let expected =
                    use _ = torch.no_grad ()
                    model.forward(Mpo.Models.ModelInputs(io.["input_ids"], AttentionMask = io.["attention_mask"], DecoderInputIds = io.["decoder_input_ids"])).Logits
                let run = mpo dir [ "forward"; "--model"; saved; "--input"; ids; "--out"; "out.safetensors" ]
                Expect.equal run.Code 0 $"success; stderr: {run.Err}"
                let out = SafeTensors.LoadAll(Path.Combine(dir, "out.safetensors"))
                Expect.isLessThan (relativeError out.["logits"] expected) 1e-6 "the saved model's logits"
                Expect.isLessThan (relativeError out.["logits"] io.["f32.logits"]) 1e-4 "upcycled: still the dense model's (to MPO round-off)")
        }
        test "an unknown input tensor is refused, naming it and the accepted names" {
            inTempDir (fun dir ->
                let ids, _ = writeInputs dir "GPT2LMHeadModel" [ "input_ids"; "labels" ]
                let run = mpo dir [ "forward"; "--model"; fixture "GPT2LMHeadModel"; "--input"; ids; "--out"; "out.safetensors" ]
                Expect.equal run.Code 2 $"bad input; stderr: {run.Err}"
                Expect.stringContains run.Err "labels" "names the tensor"
                Expect.stringContains run.Err "attention_mask" "lists what is accepted"
                Expect.isFalse (File.Exists(Path.Combine(dir, "out.safetensors"))) "nothing written")
        }
        test "token ids outside the vocabulary are refused, naming input_ids" {
            inTempDir (fun dir ->
                let path = Path.Combine(dir, "ids.safetensors")
                SafeTensors.Save(path, [ KeyValuePair("input_ids", torch.tensor([| 1L; 2L; 5000L |]).reshape(1L, 3L)) ])
                let run = mpo dir [ "forward"; "--model"; fixture "GPT2LMHeadModel"; "--input"; path; "--out"; "out.safetensors" ]
                Expect.equal run.Code 2 $"bad input; stderr: {run.Err}"
                Expect.stringContains run.Err "input_ids" "names the argument"
                Expect.isFalse (File.Exists(Path.Combine(dir, "out.safetensors"))) "nothing written")
        }
        test "a checkpoint whose weights disagree with its config is refused, naming the tensor" {
            inTempDir (fun dir ->
                let model = Path.Combine(dir, "model")
                Directory.CreateDirectory model |> ignore
                let config = File.ReadAllText(Path.Combine(fixture "GPT2LMHeadModel", "config.json"))
                File.WriteAllText(Path.Combine(model, "config.json"), config.Replace("\"n_layer\": 2", "\"n_layer\": 3"))
                File.Copy(Path.Combine(fixture "GPT2LMHeadModel", "model.safetensors"), Path.Combine(model, "model.safetensors"))
                let ids, _ = writeInputs dir "GPT2LMHeadModel" [ "input_ids" ]
                let run = mpo dir [ "forward"; "--model"; model; "--input"; ids; "--out"; "out.safetensors" ]
                Expect.equal run.Code 2 $"bad input; stderr: {run.Err}"
                Expect.stringContains run.Err "transformer.h.2." "names the missing layer's tensors")
        }
        test "an unknown architecture is refused, naming model_type and the supported ones" {
            inTempDir (fun dir ->
                let model = Path.Combine(dir, "model")
                Directory.CreateDirectory model |> ignore
                File.WriteAllText(Path.Combine(model, "config.json"), """{"model_type": "llama", "vocab_size": 10}""")
                File.Copy(Path.Combine(fixture "GPT2LMHeadModel", "model.safetensors"), Path.Combine(model, "model.safetensors"))
                let ids, _ = writeInputs dir "GPT2LMHeadModel" [ "input_ids" ]
                let run = mpo dir [ "forward"; "--model"; model; "--input"; ids; "--out"; "out.safetensors" ]
                Expect.equal run.Code 2 $"bad input; stderr: {run.Err}"
                Expect.stringContains run.Err "model_type" "names the key"
                Expect.stringContains run.Err "gpt2" "lists what is supported")
        }
    ]
