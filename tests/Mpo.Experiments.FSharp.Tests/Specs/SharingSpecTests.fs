/// MPOE's parameter sharing as trial data (MPOE Table 3's "w/o PS"): the mpoe method's share_central, written only
/// when false (existing trial IDs stay), the finetune flag to the same trial, errors naming the field, and
/// specs/mpoe-sharing.json expanding to its 6 trials.
module Mpo.Experiments.Tests.Specs.SharingSpecTests

open System.IO
open System.Text.Json.Nodes
open Argu
open Expecto
open Mpo.Experiments.Cli
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Tests.Support

let private trialWith (methodJson: string) =
    TrialJson.readTrial "" (JsonNode.Parse(sprintf """{ "model": "tiny-t5", "task": "spam", "method": %s }""" methodJson))

let private specOf (methodJson: string) =
    sprintf """{ "trial": { "model": "tiny-t5", "task": "spam", "method": %s } }""" methodJson

let private specError (methodJson: string) =
    try
        SpecJson.trials (SpecJson.parse "spec.json" (specOf methodJson)) |> ignore
        failtestf "expected a spec error for %s" methodJson
    with :? TrialJson.SpecException as e -> e

let private unshared = Method.Mpoe { expertDefaults Mpo.Tuning.MoeKind.Mpoe 8 with ShareCentral = false }

[<Tests>]
let tests =
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
            let parser = ArgumentParser.Create<Arguments.FinetuneArgs>(programName = "mpo finetune")
            let flags (args: string list) = FinetuneCommand.methodOf (parser.Parse(Array.ofList args))
            Expect.equal (flags [ "--method"; "mpoe"; "--no-share-central" ]) unshared "the flag"
            Expect.equal (flags [ "--method"; "mpoe" ]) (Method.Mpoe(expertDefaults Mpo.Tuning.MoeKind.Mpoe 8)) "without it: shared"
            let fromFlags = { create "tiny-t5" "spam" with Method = flags [ "--method"; "mpoe"; "--experts"; "4"; "--no-share-central" ] }
            Expect.equal (TrialJson.id fromFlags) (TrialJson.id (trialWith """{ "name": "mpoe", "experts": 4, "share_central": false }""")) "one trial"
            let e = Expect.throwsC (fun () -> flags [ "--method"; "switch"; "--no-share-central" ] |> ignore) id
            Expect.stringContains e.Message "--no-share-central" "names the flag"
            Expect.stringContains e.Message "not switch" "and the method"
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
