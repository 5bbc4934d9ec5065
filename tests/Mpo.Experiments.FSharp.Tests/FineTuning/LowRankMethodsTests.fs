/// The baselines as fine-tuning methods, end to end in process: a few updates of tiny-bert by LoRA, SVD layers and the
/// last layers, whose trained-parameter counts are worked out by hand from its configuration (hidden 128, FFN 512,
/// 4 layers, two labels), and whose checkpoints load into the rebuilt structure.
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

        test "SVD rank 8 on query and value: each 128 x 128 matrix becomes 8·256 factor entries, everything else trains as in full fine-tuning" {
            inTempDir (fun dir ->
                let full = runIn dir Trial.Method.Full 1L
                let svd = runIn dir (Trial.Method.Svd(SvdTunerConfig(TargetModules = [| "query"; "value" |], Rank = 8))) 1L
                let replaced = 4L * 2L * (128L * 128L - 8L * 256L)
                Expect.equal svd.Parameters (full.Parameters - replaced) "total"
                Expect.equal svd.TrainableParameters (full.TrainableParameters - replaced) "trained") }
    ]
