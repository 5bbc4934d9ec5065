/// The mpoe method's own fields as trial data. Parameter sharing (MPOE Table 3's "w/o PS"): share_central, written
/// only when false (existing trial IDs stay), the finetune flag to the same trial, errors naming the field, and
/// specs/mpoe-sharing.json expanding to its 6 trials. The MPO experts' learning rate (MPOP's `--mpo_lr` for MPOE's
/// cores): read, written only when set, the flag, errors, and the method putting exactly the experts' cores (shared
/// central and auxiliary tensors) in MPOP's group at that rate without decay.
module Mpo.Experiments.Tests.Specs.ExpertSpecTests

open System.IO
open Expecto
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Tests.Support

let private trialWith = trialWithMethod "tiny-t5"

let private specOf (methodJson: string) =
    sprintf """{ "trial": { "model": "tiny-t5", "task": "spam", "method": %s } }""" methodJson

let private specError (methodJson: string) =
    try
        SpecJson.trials (SpecJson.parse "spec.json" (specOf methodJson)) |> ignore
        failtestf "expected a spec error for %s" methodJson
    with :? TrialJson.SpecException as e -> e

let private withRate lr = Method.Mpoe { expertDefaults Mpo.Tuning.MoeKind.Mpoe 8 with MpoLearningRate = Some lr }

let private unshared = Method.Mpoe { expertDefaults Mpo.Tuning.MoeKind.Mpoe 8 with ShareCentral = false }

[<Tests>]
let sharing =
    testList "Specs.Sharing" [
        test "share_central: read, written only when false (the shared trial's JSON and ID do not move), read back equal" {
            let shared = trialWith "\"mpoe\""
            Expect.equal shared.Method (Method.Mpoe(expertDefaults Mpo.Tuning.MoeKind.Mpoe 8)) "default: shared"
            Expect.isFalse ((TrialJson.writeMethod shared.Method).ToJsonString().Contains "share_central") "not written when true"
            Expect.equal (TrialJson.id (trialWith """{ "name": "mpoe", "share_central": true }""")) (TrialJson.id shared) "spelt-out true: the same trial"
            let off = trialWith """{ "name": "mpoe", "share_central": false }"""
            Expect.equal off.Method unshared "read"
            Expect.stringContains ((TrialJson.writeMethod off.Method).ToJsonString()) "\"share_central\":false" "written when false"
            let back = TrialJson.readTrial "" (TrialJson.writeTrial off)
            Expect.equal back.Method unshared "round trip"
            Expect.equal (TrialJson.id back) (TrialJson.id off) "same ID"
            Expect.notEqual (TrialJson.id off) (TrialJson.id shared) "another trial"
        }

        test "the method's tuner configuration carries the switch to the moe section (and leaves it at its default when shared)" {
            let e = expertDefaults Mpo.Tuning.MoeKind.Mpoe 4
            Expect.isFalse (Mpo.Experiments.FineTuning.ExpertMethods.tunerConfig Mpo.Tuning.MoeKind.Mpoe { e with ShareCentral = false }).Moe.ShareCentral "unshared"
            Expect.isTrue (Mpo.Experiments.FineTuning.ExpertMethods.tunerConfig Mpo.Tuning.MoeKind.Mpoe e).Moe.ShareCentral "shared"
        }

        test "mpo finetune --method mpoe --no-share-central is the spec's trial; the flag on another method is an error naming it" {
            let flags = finetuneMethod
            Expect.equal (flags [ "--method"; "mpoe"; "--no-share-central" ]) unshared "the flag"
            Expect.equal (flags [ "--method"; "mpoe" ]) (Method.Mpoe(expertDefaults Mpo.Tuning.MoeKind.Mpoe 8)) "without it: shared"
            let fromFlags = { create "tiny-t5" "spam" with Method = flags [ "--method"; "mpoe"; "--experts"; "4"; "--no-share-central" ] }
            Expect.equal (TrialJson.id fromFlags) (TrialJson.id (trialWith """{ "name": "mpoe", "experts": 4, "share_central": false }""")) "one trial"
            flagRefused "switch" [ "--no-share-central" ]
        }

        test "bad settings name the field: share_central on dense experts, not a boolean, with a gradient mask" {
            let e = specError """{ "name": "switch", "share_central": false }"""
            Expect.equal e.Field "method.share_central" e.Message
            Expect.stringContains e.Message "dense experts" e.Message
            let e = specError """{ "name": "mpoe", "share_central": "no" }"""
            Expect.equal e.Field "method.share_central" e.Message
            Expect.stringContains e.Message "true or false" e.Message
            let e = specError """{ "name": "mpoe", "share_central": false, "gradient_mask": 0.5 }"""
            Expect.equal e.Field "method.gradient_mask" e.Message
            Expect.stringContains e.Message "share_central false" e.Message
        }

        test "specs/mpoe-sharing.json: 6 trials (shared and unshared × seeds 1, 2, 3), distinct IDs, the shared ones those of mpoe-table1" {
            let load (name: string) = SpecJson.trials (SpecJson.parse name (File.ReadAllText(repoFile $"specs/{name}")))
            let trials = load "mpoe-sharing.json"
            Expect.equal trials.Length 6 "2 methods × 3 seeds"
            Expect.equal (trials |> List.map fst |> List.distinct |> List.length) 6 "distinct IDs"
            let got = trials |> List.map (fun (_, t) -> (match t.Method with Method.Mpoe e -> e.Experts, e.ShareCentral | m -> failtestf "not MPOE: %A" m), t.Seed) |> Set.ofList
            Expect.equal got (set [ for share in [ true; false ] do for s in [ 1L; 2L; 3L ] -> (8, share), s ]) "8 experts, shared and not, seeds 1–3"
            Expect.isTrue (trials |> List.forall (fun (_, t) -> t.Model = "tiny-t5" && t.Task = "spam")) "tiny-t5 on spam"
            let table1 = load "mpoe-table1.json" |> List.map fst |> Set.ofList
            let shared = trials |> List.filter (fun (_, t) -> match t.Method with Method.Mpoe e -> e.ShareCentral | _ -> false) |> List.map fst
            Expect.isTrue (shared |> List.forall table1.Contains) "the shared trials are Table 1's MPOE n = 8 trials (one store record serves both)"
        }
    ]

[<Tests>]
let learningRate =
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
            let flags = finetuneMethod
            Expect.equal (flags [ "--method"; "mpoe"; "--mpo-lr"; "1e-4" ]) (withRate 1e-4) "the flag"
            flagRefused "switch" [ "--mpo-lr"; "1e-4" ]
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
