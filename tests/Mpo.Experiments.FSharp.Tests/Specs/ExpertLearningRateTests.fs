/// The MPO experts' own learning rate as trial data (MPOP's `--mpo_lr` for MPOE's cores): read, written only when set
/// (existing trial IDs stay), the finetune flag to the same trial, errors naming the field, and the method putting
/// exactly the experts' cores (shared central and auxiliary tensors) in MPOP's group at that rate without decay.
module Mpo.Experiments.Tests.Specs.ExpertLearningRateTests

open System
open System.Text.Json.Nodes
open Argu
open Expecto
open Mpo.Experiments.Cli
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Tests.Support

let private trialWith (methodJson: string) =
    TrialJson.readTrial "" (JsonNode.Parse(sprintf """{ "model": "tiny-t5", "task": "spam", "method": %s }""" methodJson))

let private specError (methodJson: string) =
    try
        SpecJson.trials (SpecJson.parse "spec.json" (sprintf """{ "trial": { "model": "tiny-t5", "task": "spam", "method": %s } }""" methodJson)) |> ignore
        failtestf "expected a spec error for %s" methodJson
    with :? TrialJson.SpecException as e -> e

let private withRate lr = Method.Mpoe { expertDefaults Mpo.Tuning.MoeKind.Mpoe 8 with MpoLearningRate = Some lr }

[<Tests>]
let tests =
    testList "Specs.ExpertLearningRate" [
        test "mpo_learning_rate on mpoe: read, written only when set (the default trial's JSON and ID do not move), read back equal" {
            let plain = trialWith "\"mpoe\""
            Expect.isFalse ((TrialJson.writeMethod plain.Method).ToJsonString().Contains "mpo_learning_rate") "not written when unset"
            let set = trialWith """{ "name": "mpoe", "mpo_learning_rate": 1e-4 }"""
            Expect.equal set.Method (withRate 1e-4) "read"
            let back = TrialJson.readTrial "" (TrialJson.writeTrial set)
            Expect.equal back.Method set.Method "round trip"
            Expect.equal (TrialJson.id back) (TrialJson.id set) "same ID"
            Expect.notEqual (TrialJson.id set) (TrialJson.id plain) "another trial"
        }

        test "mpo finetune --method mpoe --mpo-lr is the spec's trial; on a dense-expert method it is an error naming the flag" {
            let parser = ArgumentParser.Create<Arguments.FinetuneArgs>(programName = "mpo finetune")
            let flags (args: string list) = FinetuneCommand.methodOf (parser.Parse(Array.ofList args))
            Expect.equal (flags [ "--method"; "mpoe"; "--mpo-lr"; "1e-4" ]) (withRate 1e-4) "the flag"
            let e = Expect.throwsC (fun () -> flags [ "--method"; "switch"; "--mpo-lr"; "1e-4" ] |> ignore) id
            Expect.stringContains e.Message "--mpo-lr" "names the flag"
            Expect.stringContains e.Message "not switch" "and the method"
        }

        test "bad settings name the field: on dense experts, not positive" {
            let e = specError """{ "name": "moe", "mpo_learning_rate": 1e-4 }"""
            Expect.equal e.Field "method.mpo_learning_rate" e.Message
            Expect.stringContains e.Message "dense experts" e.Message
            for bad in [ "0"; "-1e-4" ] do
                let e = specError (sprintf """{ "name": "mpoe", "mpo_learning_rate": %s }""" bad)
                Expect.equal e.Field "method.mpo_learning_rate" e.Message
                Expect.stringContains e.Message "positive" e.Message
        }

        test "the method's optimizer groups: every expert core (central and auxiliary) at the rate without decay, nothing else; unset: no group" {
            let struct (model, _) = Mpo.Models.PretrainedModel.Load(repoFile "models/tiny-t5")
            use model = model
            let ctx: Mpo.Experiments.FineTuning.Methods.Context =
                { Model = model; ModelFolder = repoFile "models/tiny-t5"; RunFolder = ""; NewlyInitialized = [||]
                  Measure = fun () -> failwith "not measured" }
            let e = { expertDefaults Mpo.Tuning.MoeKind.Mpoe 3 with MpoLearningRate = Some 1e-4 }
            let applied = Mpo.Experiments.FineTuning.ExpertMethods.mpoe e ctx
            let groups = Mpo.Training.ParameterGroups.Build(model, 5e-4, 0.01, ResizeArray applied.ParameterGroups)
            let byName = dict [ for g in groups -> g.Name, g ]
            let members (g: Mpo.Training.ParameterGroup) = set [ for struct (n, _) in g.Parameters -> n ]
            let all = [ for struct (n, _) in model.named_parameters () -> n ]
            // the cores as the experts' layout names them (…wi.central, …wi.experts.{e}.aux{k}), found without MpoLayer's rule
            let cores = all |> List.filter (fun n -> n.Contains ".DenseReluDense." && (n.EndsWith ".central" || n.Contains ".aux")) |> set
            Expect.isGreaterThan cores.Count 0 "the upcycled model has MPO expert cores"
            Expect.equal (members byName.["mpo"]) cores "the mpo group: exactly the experts' cores"
            Expect.equal (byName.["mpo"].LearningRate, byName.["mpo"].WeightDecay) (1e-4, 0.0) "the rate, no decay"
            Expect.isTrue (members byName.["mpo"] |> Set.exists (fun n -> n.EndsWith ".central")) "shared central tensors among them"
            Expect.equal (groups |> Seq.sumBy (fun g -> g.Parameters.Count)) all.Length "every parameter in one group"
            let struct (other, _) = Mpo.Models.PretrainedModel.Load(repoFile "models/tiny-t5")
            use other = other
            let unset = Mpo.Experiments.FineTuning.ExpertMethods.mpoe { e with MpoLearningRate = None } { ctx with Model = other }
            Expect.isEmpty unset.ParameterGroups "unset: the trainer's default groups (the main rate), as MPOE's code"
        }
    ]
