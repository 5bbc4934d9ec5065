/// MPOP's methods as data: LFA, MPOP (squeezing) and MPOP_dir read from specs with their hyper-parameters, written
/// back canonically, IDs that change with every hyper-parameter and only with it, and errors naming the field; the
/// `mpo finetune` flags read through the same reader, to the same trial IDs.
module Mpo.Experiments.Tests.Specs.MethodSpecTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Trial
open Mpo.Experiments.Tests.Support

let private trialWith = trialWithMethod "tiny-bert"

let private error (methodJson: string) =
    try
        trialWith methodJson |> ignore
        failtestf "expected a spec error for %s" methodJson
    with :? TrialJson.SpecException as e -> e

[<Tests>]
let tests =
    testList "Specs.Methods" [
        test "each MPO method reads its hyper-parameters, and the canonical form reads back to the same method and ID" {
            let cases =
                [ "\"lfa\"", Method.Lfa defaultMpoTuning
                  """{ "name": "lfa", "mpo": "mpop-bert", "mpo_learning_rate": 0.001 }""", Method.Lfa { Tuner = "mpop-bert"; MpoLearningRate = Some 1e-3 }
                  "\"mpop\"", Method.Mpop(defaultMpoTuning, defaultSqueeze)
                  """{ "name": "mpop", "squeeze": { "loss_gap": 0.1, "recovery_steps": 5, "max_cuts": 40, "families": ["ffn_in"] } }""",
                  Method.Mpop(defaultMpoTuning, { defaultSqueeze with LossGap = 0.1; RecoverySteps = 5; MaxCuts = Some 40; Families = Some [ "ffn_in" ] })
                  """{ "name": "mpop-dir", "target_parameters": 3000000, "mpo": "conf.json" }""", Method.MpopDir({ defaultMpoTuning with Tuner = "conf.json" }, 3000000L) ]
            for json, expected in cases do
                let t = trialWith json
                Expect.equal t.Method expected json
                let back = TrialJson.readTrial "" (TrialJson.writeTrial t)
                Expect.equal back.Method expected $"{json} round trip"
                Expect.equal (TrialJson.id back) (TrialJson.id t) $"{json}: same ID"
                Expect.stringStarts (TrialJson.id t) (expected.Name + "-tiny-bert-spam-") "the ID starts with the method's name"
            // defaults spelt out: same ID; any changed hyper-parameter: another
            Expect.equal (TrialJson.id (trialWith "\"lfa\"")) (TrialJson.id (trialWith """{ "name": "lfa", "mpo": "mpop", "mpo_learning_rate": null }""")) "spelt-out defaults"
            let squeezeIds = [ for gap in [ 0.03; 0.05 ] -> TrialJson.id (trialWith (sprintf """{ "name": "mpop", "squeeze": { "loss_gap": %g } }""" gap)) ]
            Expect.equal squeezeIds.[0] (TrialJson.id (trialWith "\"mpop\"")) "Δ = 0.03 is the default"
            Expect.notEqual squeezeIds.[0] squeezeIds.[1] "another Δ, another trial"
        }

        test "the finetune flags of every MPOP method give the trial ID of the equivalent spec; a flag of another method is an error naming it" {
            let flags = finetuneMethod
            let fromFlags args = { create "tiny-bert" "spam" with Method = flags args }
            let cases =
                [ [ "--method"; "mpop"; "--loss-gap"; "0.1"; "--squeeze-warmup"; "4"; "--recovery-steps"; "2"; "--max-cuts"; "12"
                    "--target-parameters"; "3000000"; "--mpo"; "mpop-bert"; "--mpo-lr"; "1e-3" ],
                  """{ "name": "mpop", "mpo": "mpop-bert", "mpo_learning_rate": 0.001,
                       "squeeze": { "loss_gap": 0.1, "warmup_steps": 4, "recovery_steps": 2, "max_cuts": 12, "target_parameters": 3000000 } }"""
                  [ "--method"; "mpop"; "--loss-gap"; "0.1" ], """{ "name": "mpop", "squeeze": { "loss_gap": 0.1 } }"""
                  [ "--method"; "mpop" ], "\"mpop\""
                  [ "--method"; "lfa"; "--mpo-lr"; "2e-3" ], """{ "name": "lfa", "mpo_learning_rate": 0.002 }"""
                  [ "--method"; "mpop-dir"; "--target-parameters"; "3000000"; "--mpo"; "conf.json" ], """{ "name": "mpop-dir", "target_parameters": 3000000, "mpo": "conf.json" }"""
                  [ "--method"; "lora"; "--rank"; "4"; "--lora-alpha"; "16" ], """{ "name": "lora", "r": 4, "lora_alpha": 16 }"""
                  [], "\"full\"" ]
            for args, json in cases do
                Expect.equal (TrialJson.id (fromFlags args)) (TrialJson.id (trialWith json)) $"{args} and {json}: one trial"
            Expect.equal (flags [ "--method"; "mpop"; "--loss-gap"; "0.1" ]) (Method.Mpop(defaultMpoTuning, { defaultSqueeze with LossGap = 0.1 })) "Δ from the flag, the rest the spec's defaults"
            Expect.notEqual (TrialJson.id (fromFlags [ "--method"; "mpop"; "--loss-gap"; "0.1" ])) (TrialJson.id (fromFlags [ "--method"; "mpop"; "--loss-gap"; "0.2" ])) "another Δ, another trial"
            let refused (args: string list) (fragments: string list) =
                let e = Expect.throwsC (fun () -> flags args |> ignore) id
                for f in fragments do Expect.stringContains e.Message f $"{args}: the error names it"
            refused [ "--method"; "lfa"; "--loss-gap"; "0.1" ] [ "--loss-gap"; "--method mpop"; "not lfa" ]
            refused [ "--method"; "lora"; "--max-cuts"; "3" ] [ "--max-cuts"; "not lora" ]
            refused [ "--method"; "mpop"; "--rank"; "4" ] [ "--rank"; "lora|svd" ]
            refused [ "--method"; "mpop-dir" ] [ "--target-parameters" ]
            refused [ "--method"; "nope" ] [ "'nope' is not a method" ]
        }

        test "full fine-tuning's trial IDs are those of the committed store (its records stay finished)" {
            let folder = repoFile "results/full-finetuning/store/trials"
            let files = Directory.GetFiles(folder, "*.json")
            Expect.isGreaterThan files.Length 0 "committed records"
            for file in files do
                let record = JsonNode.Parse(File.ReadAllText file).AsObject()
                let trial = TrialJson.readTrial "" record.["trial"]
                Expect.equal (TrialJson.id trial) (record.["trial_id"].GetValue<string>()) $"{Path.GetFileName file}: the ID recomputed from its trial"
        }

        testList "bad hyper-parameters name the field" [
            let case name json field fragment =
                test name {
                    let e = error json
                    Expect.equal e.Field field e.Message
                    Expect.stringContains e.Message fragment e.Message }
            case "squeezing settings on LFA" """{ "name": "lfa", "squeeze": {} }""" "method.squeeze" "is unknown"
            case "a misspelt squeezing setting" """{ "name": "mpop", "squeeze": { "loss_gapp": 0.1 } }""" "method.squeeze.loss_gapp" "is unknown in method.squeeze"
            case "a misspelt tuner field" """{ "name": "mpop-dir", "target_parameters": 5, "mpo_lr": 0.1 }""" "method.mpo_lr" "is unknown"
            case "MPOP_dir without its target" """{ "name": "mpop-dir" }""" "method.target_parameters" "is required"
            case "a negative Δ" """{ "name": "mpop", "squeeze": { "loss_gap": -1 } }""" "method.squeeze.loss_gap" "non-negative"
            case "no recovery" """{ "name": "mpop", "squeeze": { "recovery_steps": 0 } }""" "method.squeeze.recovery_steps" "at least 1"
            case "a zero MPO learning rate" """{ "name": "lfa", "mpo_learning_rate": 0 }""" "method.mpo_learning_rate" "positive"
            case "families that are no list" """{ "name": "mpop", "squeeze": { "families": "ffn_in" } }""" "method.squeeze.families" "list"
        ]
    ]
