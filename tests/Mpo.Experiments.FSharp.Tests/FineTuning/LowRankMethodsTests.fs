/// The baselines as fine-tuning methods, end to end in process: a few updates of tiny-bert by LoRA, SVD layers and the
/// last layers, whose trained-parameter counts are worked out by hand from its configuration (hidden 128, FFN 512,
/// 4 layers, two labels), and whose checkpoints load into the rebuilt structure; the ranks that match them to an MPO
/// method's parameters, against the same hand counts.
module Mpo.Experiments.Tests.FineTuning.LowRankMethodsTests

open System
open System.IO
open Expecto
open Mpo.Data
open Mpo.Tuning
open Mpo.Experiments.Specs
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Tests.Support

let private tinyBert = Path.GetDirectoryName(repoFile "models/tiny-bert/config.json")

let private settings steps = { FineTune.defaults with MaxSteps = Some steps; BatchSize = 8; EvaluationsPerEpoch = 1; LearningRate = 1e-3 }

let private runIn (dir: string) (method: Trial.Method) (steps: int64) =
    let data = Path.Combine(dir, "task")
    if not (Directory.Exists data) then
        Directory.CreateDirectory data |> ignore
        FineTuneTests.writeSeparableTask data
    FineTune.run method tinyBert TextTasks.Spam data (settings steps) (Path.Combine(dir, "run-" + method.Name)) null

[<Tests>]
let tests =
    testSequenced <| testList "FineTuning.LowRankMethods" [
        test "LoRA r=4 on query and value trains 4 layers · 2 · 4·(128 + 128) + the classifier's 128·2 + 2 = 8,450 parameters; a finished run reloads into the rebuilt structure" {
            inTempDir (fun dir ->
                let lora = Trial.Method.Lora(LoraConfig(R = 4, LoraAlpha = 8.0))
                let first = runIn dir lora 2L
                Expect.equal first.TrainableParameters 8_450L "by hand"
                Expect.equal first.Steps 2L "two updates"
                // the same run again finds its finished checkpoint: the LoRA structure is rebuilt and the trained state loaded
                let again = runIn dir lora 2L
                Expect.equal again.Steps 2L "nothing more to do"
                Expect.equal again.Parameters first.Parameters "the same structure rebuilt"
                Expect.equal (Map.ofSeq [ for KeyValue(k, v) in again.Test -> k, v ]) (Map.ofSeq [ for KeyValue(k, v) in first.Test -> k, v ]) "the trained adapter, loaded: same test scores") }

        test "last layer only (no embeddings): one BERT layer 198,272 + pooler 16,512 + classifier 258 = 215,042 trained" {
            inTempDir (fun dir ->
                let outcome = runIn dir (Trial.Method.LastLayers(LastLayersConfig(Layers = 1, TrainEmbeddings = false))) 2L
                Expect.equal outcome.TrainableParameters 215_042L "by hand"
                Expect.isTrue (outcome.Dev.ContainsKey "accuracy") "evaluated") }

        test "nearestRank: the rank whose count is nearest the target (the smaller on a tie), each rank counted once, also where the count levels off" {
            let calls = ResizeArray<int>()
            let square r = calls.Add r; 10L * int64 r * int64 r
            Expect.equal (LowRankMethods.nearestRank square 1000L) 10 "exactly 10 · 10²"
            Expect.equal (LowRankMethods.nearestRank square 1100L) 10 "1,000 is 100 away, 1,210 is 110"
            Expect.equal (LowRankMethods.nearestRank square 1110L) 11 "1,210 is 100 away, 1,000 is 110"
            Expect.equal (LowRankMethods.nearestRank square 1105L) 10 "a tie: the smaller rank"
            Expect.equal (LowRankMethods.nearestRank square 0L) 1 "below rank 1's count: rank 1"
            calls.Clear()
            Expect.equal (LowRankMethods.nearestRank square 123_456_789L) 3514 "√(12,345,678.9) = 3513.6"
            Expect.equal calls.Count (Seq.length (Seq.distinct calls)) "no rank counted twice"
            Expect.isLessThan calls.Count 40 "doubling, then bisection"
            let capped r = 7L * int64 (min r 5)
            Expect.equal (LowRankMethods.nearestRank capped 1000L) 5 "the first rank of the level"
            Expect.equal (LowRankMethods.nearestRank capped 22L) 3 "21 is nearer 22 than 28"
        }

        test "LoRA at a trained budget on tiny-bert: every attention and FFN linear, 4 layers · r·(4·256 + 2·640) + the classifier's 258 trained" {
            let count = MpopDemo.countFromConfig tinyBert TextTasks.Spam
            Expect.equal (LowRankMethods.blockLinears "bert") [ "query"; "key"; "value"; "attention_output"; "ffn_in"; "ffn_out" ] "BERT's block linears"
            Expect.equal (LowRankMethods.blockLinears "gpt2") [ "query_key_value"; "attention_output"; "ffn_in"; "ffn_out" ] "GPT-2's fused attention"
            // the configuration count is the count the run trains (the run above: r = 4 on query and value, 8,450)
            Expect.equal (count [ LoraTuner(LoraConfig(R = 4, LoraAlpha = 8.0)) ]).Trainable 8_450L "counted from the configuration, as trained"
            let make (r: int) = LoraConfig(R = r, LoraAlpha = 2.0 * float r, TargetModules = Array.ofList (LowRankMethods.blockLinears "bert"))
            let byHand r = 9_216L * int64 r + 258L
            for r in [ 1; 7; 36 ] do
                Expect.equal (count [ LoraTuner(make r) ]).Trainable (byHand r) $"r = {r}"
            // 100,000: r = 10 trains 92,418 (7,582 short), r = 11 trains 101,634 (1,634 over)
            let matched = LowRankMethods.loraMatching count make 100_000L
            Expect.equal matched.R 11 "the nearest rank"
            Expect.equal matched.LoraAlpha 22.0 "made by make"
            Expect.equal (LowRankMethods.loraMatching count make ((byHand 10 + byHand 11) / 2L)).R 10 "half-way: the smaller rank"
            Expect.equal (MpopDemo.label (Trial.Method.Lora matched)) "LoRA r=11" "the row names the rank"
        }

        test "truncated SVD at a total budget on tiny-bert: every MPOP matrix as rank-r factors, total = 23,938 + 40,122·r up to r = 128" {
            let count = MpopDemo.countFromConfig tinyBert TextTasks.Spam
            // tiny-bert with its 2-label head has 4,733,570 parameters, 4,709,632 of them in the matrices MPOP decomposes
            // (word embedding 30522×128, per layer four 128×128 and two 128×512/512×128, the pooler 128×128); rank r
            // keeps r·(rows + cols) of each: r·(30,650 + 4·2,304 + 256) = 40,122·r
            Expect.equal (count []).Total 4_733_570L "the plain model"
            let byHand r = 4_733_570L - 4_709_632L + 40_122L * int64 (min r 128)
            let tuning = Trial.defaultMpoTuning
            for r in [ 1; 49; 128 ] do
                Expect.equal (count [ SvdTuner(SvdTunerConfig(Rank = r)) ]).Total (byHand r) $"r = {r}"
            // 2,000,000: r = 49 has 1,989,916 (10,084 short), r = 50 has 2,030,038 (30,038 over)
            let matched = LowRankMethods.svdMatching count tuning 2_000_000L
            Expect.equal matched.Rank (Nullable 49) "the nearest rank"
            Expect.isNull matched.TargetModules "the MPO tuner's targets (preset mpop: every family the model has)"
            Expect.equal (LowRankMethods.svdMatching count tuning 1_000_000_000L).Rank (Nullable 128) "beyond full rank: the smallest rank of the largest size"
            Expect.equal (MpopDemo.label (Trial.Method.Svd matched)) "truncated SVD r=49" "the row names the rank"
        }

        test "SVD rank 8 on query and value: each 128 x 128 matrix becomes 8·256 factor entries, everything else trains as in full fine-tuning" {
            inTempDir (fun dir ->
                let full = runIn dir Trial.Method.Full 1L
                let svd = runIn dir (Trial.Method.Svd(SvdTunerConfig(TargetModules = [| "query"; "value" |], Rank = 8))) 1L
                let replaced = 4L * 2L * (128L * 128L - 8L * 256L)
                Expect.equal svd.Parameters (full.Parameters - replaced) "total"
                Expect.equal svd.TrainableParameters (full.TrainableParameters - replaced) "trained") }
    ]
