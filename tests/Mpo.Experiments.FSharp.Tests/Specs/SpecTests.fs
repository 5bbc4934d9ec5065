/// Experiments as data: grid expansion against hand-enumerated sets, trial IDs that depend on content only, schedules
/// against Hugging Face's formulas, and spec errors that name the field and its line.
module Mpo.Experiments.Tests.Specs.SpecTests

open System
open System.Text.Json.Nodes
open Expecto
open Mpo.Training
open Mpo.Experiments.Specs
open Mpo.Experiments.Specs.Schedules
open Mpo.Experiments.Specs.Trial

let private parse (text: string) = SpecJson.parse "spec.json" text
let private trials (text: string) = SpecJson.trials (parse text)
let private ids (text: string) = trials text |> List.map fst

/// The SpecException a spec raises (when parsing or expanding).
let private error (text: string) =
    try
        trials text |> ignore
        failtestf "expected a spec error for %s" text
    with :? TrialJson.SpecException as e -> e

let private expectError (text: string) (field: string) (line: int option) (fragment: string) =
    let e = error text
    Expect.equal e.Field field $"the error names the field ({e.Message})"
    Expect.equal e.Line line $"the error names the line ({e.Message})"
    Expect.stringContains e.Message fragment "the error says what is wrong"
    Expect.stringContains e.Message "spec.json" "the error names the file"

let private sweep =
    """{ "name": "sweep",
         "trial": { "task": "spam", "training": { "epochs": 1 } },
         "grid": { "product": { "model": ["tiny-bert", "tiny-gpt2"], "training.learning_rate.peak": [1e-4, 2e-4], "seed": [1, 2, 3] } } }"""

[<Tests>]
let tests =
    testList "Specs" [
        test "a product is every combination, each trial reading its values (checked against a hand enumeration)" {
            let got = trials sweep |> List.map snd |> List.map (fun t -> t.Model, t.Training.LearningRate.Peak, t.Seed) |> Set.ofList
            let expected = set [ for m in [ "tiny-bert"; "tiny-gpt2" ] do for lr in [ 1e-4; 2e-4 ] do for s in [ 1L; 2L; 3L ] -> m, lr, s ]
            Expect.equal got expected "2 × 2 × 3 trials"
            let t = trials sweep |> List.head |> snd
            Expect.equal t.Training.Epochs 1 "the base trial's field"
            Expect.equal t.Training.BatchSize defaultTraining.BatchSize "defaults fill the rest"
            Expect.equal t.Method Method.Full "full fine-tuning by default"
        }

        test "LoRA, SVD and last layers are methods with their hyper-parameters as data: read, written canonically, read back equal, distinct IDs" {
            let spec =
                """{ "trial": { "model": "tiny-bert", "task": "spam" },
                     "grid": { "product": { "method": [ "full", {"name": "lora", "r": 4, "lora_alpha": 16, "target_modules": ["query", "value"]},
                                                         {"name": "svd", "budget": 200}, {"name": "last-layers", "layers": 2} ] } } }"""
            let methods = trials spec |> List.map (fun (_, t) -> t.Method)
            let lora = Mpo.Tuning.LoraConfig(R = 4, LoraAlpha = 16.0, TargetModules = [| "query"; "value" |])
            Expect.equal methods [ Method.Full; Method.Lora lora; Method.Svd(Mpo.Tuning.SvdTunerConfig(Budget = 200L))
                                   Method.LastLayers(Mpo.Tuning.LastLayersConfig(Layers = 2)) ] "read as data"
            Expect.equal (methods |> List.map (fun m -> m.Name)) [ "full"; "lora"; "svd"; "last-layers" ] "names"
            for m in methods do
                Expect.equal (TrialJson.readMethod "method" (TrialJson.writeMethod m)) m $"{m.Name}: canonical form read back"
            Expect.equal (ids spec |> List.distinct |> List.length) 4 "four trials, four IDs"
            let written = (TrialJson.writeMethod (Method.Lora lora)).ToJsonString()
            Expect.stringContains written "\"lora_alpha\":16" "peft's field names"
        }

        test "trial IDs depend on content only: reordered axes and values keep them, spelt-out defaults keep them, a changed value changes only its trials" {
            let reordered =
                """{ "name": "other-name",
                     "trial": { "training": { "epochs": 1, "batch_size": 16 }, "task": "spam", "method": {"name": "full"}, "seed": 42 },
                     "grid": { "product": { "seed": [3, 1, 2], "training.learning_rate.peak": [0.0002, 0.0001], "model": ["tiny-gpt2", "tiny-bert"] } } }"""
            Expect.equal (Set.ofList (ids reordered)) (Set.ofList (ids sweep)) "same trials, same IDs"
            Expect.equal (ids sweep |> List.distinct |> List.length) 12 "12 distinct IDs"
            let changed = sweep.Replace("\"epochs\": 1", "\"epochs\": 2")
            Expect.isEmpty (Set.intersect (Set.ofList (ids changed)) (Set.ofList (ids sweep))) "another epoch count: all new trials"
            let oneValue = sweep.Replace("[1, 2, 3]", "[1, 2, 4]")
            let common = Set.intersect (Set.ofList (ids oneValue)) (Set.ofList (ids sweep))
            Expect.equal common.Count 8 "only seed 3's four trials are replaced by seed 4's"
            // the ID is the hash of the canonical JSON: a trial built in F# with the same values has the same ID
            let t = { create "tiny-bert" "spam" with Training = { defaultTraining with Epochs = 1; LearningRate = { defaultTraining.LearningRate with Peak = 1e-4 } }; Seed = 1L }
            Expect.contains (ids sweep) (TrialJson.id t) "F# and JSON agree"
            Expect.stringStarts (TrialJson.id t) "full-tiny-bert-spam-s1-" "readable prefix"
        }

        test "zip pairs values, union concatenates and merges equal trials, exclude and where filter, overrides set only the matching trials" {
            let spec =
                """{ "trial": { "model": "tiny-bert", "task": "spam" },
                     "grid": [ { "zip": { "training.learning_rate.peak": [1e-4, 2e-4, 3e-4], "training.epochs": [1, 2, 3] } },
                               { "product": { "training.learning_rate.peak": [1e-4], "training.epochs": [1] } },
                               { "product": { "seed": [7, 8] }, "where": { "seed": 8 } } ],
                     "exclude": [ { "training.epochs": 3 } ],
                     "overrides": [ { "when": { "training.epochs": [2], "seed": 42 }, "set": { "training.batch_size": 8 } } ] }"""
            let got = trials spec |> List.map snd |> List.map (fun t -> t.Training.LearningRate.Peak, t.Training.Epochs, t.Seed, t.Training.BatchSize)
            // zip: (1e-4, 1), (2e-4, 2), (3e-4, 3); the union's second grid repeats the first point (one trial); where keeps
            // seed 8 (default 3 epochs); exclude drops both 3-epoch trials; the override hits the 2-epoch one
            Expect.equal got [ 1e-4, 1, 42L, 16; 2e-4, 2, 42L, 8 ] "two trials"
        }

        test "MoE methods are data: the preset's values spelt out keep the ID, a grid sweeps experts and p_b" {
            let spec (m: string) = sprintf """{ "trial": { "model": "tiny-t5", "task": "spam", "method": %s },
                                                "grid": { "product": { "method.experts": [4, 8], "method.gradient_mask": [0, 0.5] } } }""" m
            let short = trials (spec "\"mpoe\"")
            Expect.equal short.Length 4 "2 × 2"
            let spelt = spec """{ "name": "mpoe", "top_k": 1, "capacity_factor": null, "balance_loss": 0.01, "z_loss": 0.001, "jitter": 0, "gradient_mask_mode": "skip_step", "cores": 5 }"""
            Expect.equal (ids spelt) (List.map fst short) "defaults written out: the same IDs"
            let methods = short |> List.map (fun (_, t) -> t.Method)
            Expect.contains methods (Method.Mpoe { expertDefaults Mpo.Tuning.MoeKind.Mpoe 8 with GradientMask = 0.5 }) "experts 8, p_b 0.5"
            Expect.stringStarts (fst short.Head) "mpoe-tiny-t5-spam-" "readable prefix"
            let switch = trials ((spec "{ \"name\": \"switch\" }").Replace("\"method.gradient_mask\": [0, 0.5]", "\"seed\": [1]")) |> List.map snd
            Expect.equal (switch |> List.map (fun t -> t.Method)) [ for n in [ 4; 8 ] -> Method.Switch(expertDefaults Mpo.Tuning.MoeKind.Switch n) ] "Switch's preset: top-1, capacity 1.25"
            Expect.equal (expertDefaults Mpo.Tuning.MoeKind.Switch 8).CapacityFactor (Some 1.25) "Switch drops above 1.25"
            Expect.equal (expertDefaults Mpo.Tuning.MoeKind.Moe 8).TopK 2 "MoE is top-2"
            let back = TrialJson.readMethod "method" (TrialJson.writeMethod (snd short.Head).Method)
            Expect.equal back (snd short.Head).Method "method JSON round-trips"
        }

        test "the F# grid API expands like the JSON one" {
            let grid =
                Grid.product [ Grid.models [ "tiny-bert"; "tiny-gpt2" ]; Grid.seeds [ 1L; 2L ] ]
                |> Grid.exclude "gpt2 seed 2" (fun t -> t.Model = "tiny-gpt2" && t.Seed = 2L)
                |> Grid.overrideWhen "bert" (fun t -> t.Model = "tiny-bert") [ "training.max_length", box 64 ]
            let expanded = Grid.expand (Grid.baseOf (create "tiny-bert" "spam")) grid |> List.map snd
            Expect.equal [ for t in expanded -> t.Model, t.Seed, t.Training.MaxLength ] [ "tiny-bert", 1L, 64; "tiny-bert", 2L, 64; "tiny-gpt2", 1L, 128 ] "three trials"
        }

        test "schedules: Hugging Face's linear warmup and decay, linear and piecewise scalars" {
            let lr = { Peak = 1e-3; Shape = ScheduleKind.Linear; Warmup = WarmupSteps 10L }
            // HF get_linear_schedule_with_warmup: s / w during warmup, then (T - s) / (T - w)
            Expect.floatClose Accuracy.veryHigh (learningRateAt lr 5L 100L) 5e-4 "half-way through warmup"
            Expect.floatClose Accuracy.veryHigh (learningRateAt lr 55L 100L) (1e-3 * 45.0 / 90.0) "decaying"
            Expect.floatClose Accuracy.veryHigh (learningRateAt { lr with Warmup = WarmupRatio 0.1 } 55L 100L) (1e-3 * 45.0 / 90.0) "a ratio of 0.1 is 10 of 100 updates"
            Expect.floatClose Accuracy.veryHigh (valueAt (Linear(0.0, 1.0)) 25L 101L) 0.25 "linear p_b"
            Expect.equal (valueAt (Steps [ 0L, 0.5; 100L, 0.25 ]) 99L 1000L) 0.5 "before the second step"
            Expect.equal (valueAt (Steps [ 0L, 0.5; 100L, 0.25 ]) 100L 1000L) 0.25 "from the second step on"
            Expect.isNonEmpty (Schedules.problems 0.0 1.0 (Constant 1.5)) "a probability above 1"
            Expect.isNonEmpty (Schedules.problems 0.0 1.0 (Steps [ 5L, 0.1 ])) "must start at update 0"
        }

        test "schedules read back from their JSON" {
            for s in [ Constant 0.5; Linear(0.0, 0.75); Steps [ 0L, 1.0; 50L, 0.5 ] ] do
                Expect.equal (TrialJson.readSchedule "p" (TrialJson.writeSchedule s)) s $"{s}"
        }

        testList "bad specs name the field and its line" [
            test "an unknown top-level field" {
                expectError "{\n \"name\": \"x\",\n \"trails\": {}\n}" "trails" (Some 3) "is unknown (known: name, store, trial, grid"
            }
            test "an unknown trial field, misspelt in the base trial" {
                expectError "{\n \"trial\": {\n  \"model\": \"tiny-bert\", \"task\": \"spam\",\n  \"training\": { \"learnig_rate\": {} }\n }\n}"
                    "training.learnig_rate" (Some 4) "is unknown in training"
            }
            test "an unknown field set by a grid axis" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\" },\n  \"grid\": { \"product\": {\n    \"training.epoch\": [1, 2] } } }"
                    "training.epoch" (Some 3) "is unknown in training"
            }
            test "an impossible value set by a grid axis" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\" },\n  \"grid\": { \"product\": {\n\n    \"training.epochs\": [1, 0] } } }"
                    "training.epochs" (Some 4) "must be at least 1, got 0"
            }
            test "zipped lists of different lengths" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\" },\n \"grid\": { \"zip\": { \"seed\": [1, 2],\n \"training.epochs\": [1, 2, 3] } } }"
                    "training.epochs" (Some 3) "has 3 values but is zipped with 2"
            }
            test "hyper-parameters full fine-tuning does not have" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\",\n \"method\": { \"name\": \"full\", \"experts\": 4 } } }"
                    "method.experts" (Some 2) "is unknown"
            }
            test "a method that does not exist" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\" },\n \"grid\": { \"product\": { \"method\": [\"full\", \"nonesuch\"] } } }"
                    "method.name" (Some 2) "'nonesuch' is not a method (known: full, lfa, mpop, mpop-dir"
            }
            test "a baseline's unknown or impossible hyper-parameter, named under method" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\",\n \"method\": { \"name\": \"lora\", \"r\": 4, \"lora_alfa\": 8 } } }"
                    "method.lora_alfa" (Some 2) "unknown field"
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\",\n \"method\": { \"name\": \"svd\", \"rank\": 4, \"budget\": 100 } } }"
                    "method.budget" (Some 2) "exactly one of rank and budget"
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\",\n \"method\": { \"name\": \"last-layers\", \"layers\": 0 } } }"
                    "method.layers" (Some 2) "must be at least 1"
            }
            test "a GLUE task without its data" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"RTE\" } }" "data" (Some 1) "is not bundled"
            }
            test "warmup given both ways" {
                expectError "{ \"trial\": { \"model\": \"tiny-bert\", \"task\": \"spam\",\n \"training\": { \"learning_rate\": { \"warmup_ratio\": 0.1,\n \"warmup_steps\": 5 } } } }"
                    "training.learning_rate.warmup_steps" (Some 3) "exclude each other"
            }
            test "MoE methods: top-k above the experts, more experts than a batch can reach, a gradient mask on dense experts, capacity factor 0" {
                let spec (m: string) = "{ \"trial\": { \"model\": \"tiny-t5\", \"task\": \"spam\", \"training\": { \"batch_size\": 2, \"max_length\": 8 },\n \"method\": " + m + " } }"
                expectError (spec "{ \"name\": \"switch\", \"experts\": 4, \"top_k\": 5 }") "method.top_k" (Some 2) "between 1 and the 4 experts"
                expectError (spec "{ \"name\": \"mpoe\", \"experts\": 32 }") "method.experts" (Some 2) "at most 16 choices"
                expectError (spec "{ \"name\": \"moe\", \"gradient_mask\": 0.5 }") "method.gradient_mask" (Some 2) "dense experts"
                expectError (spec "{ \"name\": \"switch\", \"capacity_factor\": 0 }") "method.capacity_factor" (Some 2) "must be positive"
                expectError (spec "{ \"name\": \"mpoe\", \"expert\": 4 }") "method.expert" (Some 2) "is unknown"
            }
            test "broken JSON" {
                let e = error "{\n \"name\": \"x\",\n \"trial\": { \"model\": }\n}"
                Expect.equal e.Line (Some 3) "the line of the syntax error"
                Expect.stringContains e.Message "is not valid JSON" "says so"
            }
        ]
    ]
