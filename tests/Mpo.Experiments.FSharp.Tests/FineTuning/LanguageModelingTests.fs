/// Causal-LM fine-tuning (MPOE's NLG rows): perplexity against a per-block recomputation from the logits, the test
/// prompts and their references, seeded sampling, and `mpo finetune tiny-gpt2 --task lm` end to end with experts.
module Mpo.Experiments.Tests.FineTuning.LanguageModelingTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Models
open Mpo.Tokenization
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Tests.Support

let private gpt2 () = Path.GetDirectoryName(repoFile "models/tiny-gpt2/config.json")

/// The bundled lm split's first passages of at least <c>tokens</c> tokens.
let private passages (tokenizer: ITextTokenizer) (split: string) (n: int) (tokens: int) =
    let root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(repoFile "data/tasks/SHA256SUMS"), "..", ".."))
    (TextTasks.Read(root, TextTasks.Lm, split)).Examples |> Seq.filter (fun e -> (tokenizer.Encode e.TextA).Length >= tokens) |> Seq.truncate n |> List.ofSeq

[<Tests>]
let tests =
    testList "FineTuning.LanguageModeling" [
        test "perplexity: exp of the mean NLL per predicted token, the padding of a short block excluded" {
            let struct (model, _) = PretrainedModel.Load(gpt2 ())
            use model = model
            let rng = Random 11
            // two full blocks and a short one: batched by two, the short one is padded beside a full one
            let blocks = [| for length in [ 20; 20; 7 ] -> Array.init length (fun _ -> rng.Next 50000) |]
            model.train ()   // as the trainer calls it: the evaluation runs without dropout, then training goes on
            let ppl = LanguageModeling.perplexity model (CausalLmCollator 50256) 2 blocks
            Expect.isTrue model.training "the model's training mode restored"
            // one block at a time, no padding: −log softmax of each next token from the logits
            let nll, predicted =
                use _ = torch.no_grad ()
                model.eval ()
                blocks |> Array.fold (fun (sum, count) block ->
                    use scope = torch.NewDisposeScope()
                    let ids = torch.tensor(block |> Array.map int64).unsqueeze(0L)
                    let logp = (model.forward (ModelInputs ids)).Logits.[0L].log_softmax(-1L).``to``(torch.float64)
                    let s = Seq.sum [ for t in 1 .. block.Length - 1 -> -(logp.[int64 (t - 1), int64 block.[t]].item<float>()) ]
                    sum + s, count + block.Length - 1) (0.0, 0)
            Expect.floatClose { absolute = 0.0; relative = 1e-5 } ppl (exp (nll / float predicted)) "exp(Σ NLL / 44 predicted tokens)"
        }
        test "prompts: a passage's first tokens and the words of what follows; short passages left out" {
            let tokenizer = Tokenizers.FromFolder(gpt2 ())
            let c = LanguageModeling.continuations
            let long = passages tokenizer "test" 2 (c.PromptTokens + c.ContinuationTokens)
            let short = TextExample("short", "Call me Ishmael.", null, Nullable(), Nullable())
            let prompts = LanguageModeling.prompts tokenizer c (long @ [ short ])
            Expect.equal prompts.Length 2 "the short passage has no prompt"
            for p, passage in List.zip prompts long do
                let ids = tokenizer.Encode passage.TextA
                Expect.sequenceEqual p.Ids (ids.[.. c.PromptTokens - 1] |> Array.map int64) "the first PromptTokens tokens"
                let following = tokenizer.Decode(ids.[c.PromptTokens .. c.PromptTokens + c.ContinuationTokens - 1])
                Expect.sequenceEqual p.Reference (Bleu.Words following) "the next ContinuationTokens tokens' words"
                Expect.isTrue (passage.TextA.Contains(following.Trim())) "the reference is the passage's own text"
        }
        test "sampled continuations reproduce with the seed and change with it" {
            let tokenizer = Tokenizers.FromFolder(gpt2 ())
            let struct (model, _) = PretrainedModel.Load(gpt2 ())
            use model = model
            let c = { LanguageModeling.continuations with ContinuationTokens = 8; BatchSize = 2 }
            let prompts = LanguageModeling.prompts tokenizer c (passages tokenizer "test" 3 (c.PromptTokens + c.ContinuationTokens))
            let once = LanguageModeling.sample model tokenizer c 7L prompts
            Expect.equal once.Length 3 "one continuation per prompt (over two generation batches)"
            Expect.equal (LanguageModeling.sample model tokenizer c 7L prompts) once "same seed, same samples"
            Expect.notEqual (LanguageModeling.sample model tokenizer c 8L prompts) once "another seed, other samples"
        }
        test "mpo finetune tiny-gpt2 --task lm --method switch: test perplexity, BLEU-2/4, Self-BLEU-2 and the expert loads in the store" {
            inTempDir (fun dir ->
                let tokenizer = Tokenizers.FromFolder(gpt2 ())
                let data = Path.Combine(dir, "lm")
                Directory.CreateDirectory data |> ignore
                for split, n in [ "train", 16; "dev", 4; "test", 5 ] do
                    TaskFiles.Write(TextTasks.Lm, Path.Combine(data, split + ".tsv"), passages tokenizer (if split = "train" then "train" else "test") n 48)
                let out = Path.Combine(dir, "out")
                let run = mpo dir [ "finetune"; "tiny-gpt2"; "--task"; "lm"; "--data"; data; "--method"; "switch"; "--experts"; "2"
                                    "--steps"; "2"; "--batch-size"; "4"; "--max-length"; "64"; "--out"; out ]
                Expect.equal run.Code 0 $"finetune succeeds; stderr: {run.Err}"
                let record = Directory.GetFiles(Path.Combine(out, "store", "trials"), "*.json") |> Array.exactlyOne |> File.ReadAllText |> JsonNode.Parse
                let metric (k: string) = record.["metrics"].[k].GetValue<float>()
                Expect.floatClose Accuracy.high (metric "test.perplexity") (exp (metric "test.loss")) "perplexity = exp(mean NLL)"
                Expect.isGreaterThan (metric "test.perplexity") 1.0 "a perplexity"
                Expect.isGreaterThan (metric "initial_test_perplexity") 1.0 "the perplexity before fine-tuning"
                for k in [ "test.bleu2"; "test.bleu4"; "test.self_bleu2" ] do
                    Expect.isTrue (metric k >= 0.0 && metric k <= 1.0) $"{k} in [0, 1]"
                Expect.isLessThanOrEqual (metric "test.bleu4") (metric "test.bleu2") "BLEU-4 ≤ BLEU-2 here (higher orders match less)"
                Expect.equal (metric "test_prompts") 5.0 "every test passage prompted"
                Expect.isTrue (metric "dev.perplexity" > 1.0) "dev perplexity picks the best checkpoint"
                Expect.equal (metric "moe.experts") 2.0 "the MoE metrics"
                Expect.equal (record.["labels"].["head"].GetValue<string>()) "causal-lm" "the formulation"
                let series = record.["series"].AsObject()
                let loads = [ for KeyValue(k, v) in series do if k.StartsWith "expert_load/" then v.AsArray().Count ]
                Expect.equal loads.Length 4 "an expert-load series per GPT-2 block's MLP"
                Expect.all loads (fun n -> n = 2) "a share per expert"
                Expect.stringContains (File.ReadAllText(Path.Combine(out, "switch", "README.md"))) "perplexity" "the table")
        }
    ]
