/// MoE through the tuner configuration (the "moe" section): reading it (unknown fields and bad values named), applying
/// it to the fixtures (upcycled models compute what the dense ones did), counts from a configuration alone against the
/// MPOE paper's totals and the shape formulas, and MoE checkpoints (config.json records the experts; save → load gives
/// the same logits bit for bit; the shared central tensor is stored once; n experts loaded as m is named; the Models
/// layer rebuilds them through the hook Tuning registers, naming neither Tuning nor Experts).
module Mpo.Core.Tests.MoeTunerTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Experts
open Mpo.Models
open Mpo.Models.Blocks
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ExpertFixtures

let private config (json: string) = MpoTunerConfig.FromJson(JsonNode.Parse(json).AsObject(), "test.json")

let private logits (model: PretrainedModel) (inputs: ModelInputs) =
    use _ = torch.no_grad ()
    model.forward(inputs).Logits.detach().clone()

let private inputsOf (architecture: string) =
    if architecture.StartsWith "T5" then t5Inputs () else encoderInputs architecture

[<Tests>]
let tests =
    testSequenced <| testList "Experts.Tuner" [
        test "the moe section: kind picks the preset, fields override it, JSON round-trips, no other matrix is decomposed" {
            let c = config """{"moe": {"kind": "switch", "experts": 4}}"""
            Expect.equal c.Moe.Options (MoeOptions.Switch 4) "Switch's preset with 4 experts"
            Expect.equal c.Moe.ExpertKind ExpertKind.Dense "dense experts"
            Expect.sequenceEqual c.TargetModules [] "an MoE configuration decomposes nothing else"
            let m = config """{"cores": 3, "moe": {"kind": "mpoe", "experts": 16, "capacity_factor": 1.5, "balance_loss": 0.1, "z_loss": 0,
                                "jitter": 0.01, "gradient_mask": {"p_b": 0.25, "mode": "mask_update", "rescale": true}, "blocks": ["decoder"]}}"""
            Expect.equal m.Moe.Options (MoeOptions(Experts = 16, CapacityFactor = 1.5, BalanceLossCoefficient = 0.1, ZLossCoefficient = 0.0, JitterNoise = 0.01)) "overrides"
            Expect.equal m.Moe.GradientMask (GradientMaskSettings(GradientMaskSchedule.Constant 0.25, GradientMaskMode.MaskUpdate, true)) "the mask"
            Expect.equal m.Cores 3 "the experts' cores are the configuration's"
            let again = MpoTunerConfig.FromJson(m.ToJson(), "round trip")
            Expect.equal (again.ToJson().ToJsonString()) (m.ToJson().ToJsonString()) "written and read back: the same configuration"
            Expect.equal again.Moe.Options m.Moe.Options "same routing"
            let dropless = config """{"moe": {"kind": "moe", "capacity_factor": null}}"""
            Expect.equal dropless.Moe.Options.CapacityFactor Double.PositiveInfinity "null: no dropping"
            Expect.equal dropless.Moe.Options.TopK 2 "Shazeer's top-2"
            Expect.isNull (config """{"preset": "mpop"}""").Moe "no section, no experts"
        }

        test "bad input names the field: unknown fields, top-k above the experts, capacity factor ≤ 0, a mask on dense experts, p_b > 1" {
            let bad (json: string) (field: string) =
                let e = throwsWith<InvalidTunerConfigException> [ "test.json"; field ] (fun () -> config json |> ignore)
                Expect.equal e.Field field $"field {field}"
            bad """{"moe": {"kind": "mpoe", "expert": 8}}""" "moe.expert"
            bad """{"moe": {"kind": "mixtral"}}""" "moe.kind"
            bad """{"moe": {"experts": 8}}""" "moe.kind"
            bad """{"moe": {"kind": "switch", "experts": 4, "top_k": 5}}""" "moe.top_k"
            bad """{"moe": {"kind": "moe", "experts": 0}}""" "moe.experts"
            bad """{"moe": {"kind": "switch", "capacity_factor": 0}}""" "moe.capacity_factor"
            bad """{"moe": {"kind": "switch", "capacity_factor": -1.25}}""" "moe.capacity_factor"
            bad """{"moe": {"kind": "switch", "gradient_mask": {"p_b": 0.5}}}""" "moe.gradient_mask"
            bad """{"moe": {"kind": "mpoe", "gradient_mask": {"p_b": 1.5}}}""" "moe.gradient_mask.p_b"
            bad """{"moe": {"kind": "mpoe", "gradient_mask": {"p_b": 0.5, "mode": "sometimes"}}}""" "moe.gradient_mask.mode"
            bad """{"moe": {"kind": "mpoe", "gradient_mask": {"p_b": 0.5, "rescale": true}}}""" "moe.gradient_mask.rescale"
            bad """{"moe": {"kind": "mpoe", "gates": "random"}}""" "moe.gates"
            bad """{"moe": {"kind": "mpoe", "blocks": []}}""" "moe.blocks"
            let model = loadFixture "T5ForConditionalGeneration"
            let tuner = MpoTuner(config """{"moe": {"kind": "mpoe", "blocks": ["decoder.block.7"]}}""")
            throwsWith<ArgumentException> [ "moe.blocks"; "decoder.block.7"; "selects no feed-forward block" ] (fun () -> tuner.Apply(model) |> ignore) |> ignore
        }

        test "applying it upcycles every FFN (T5 encoder and decoder, GPT-2, BERT, ALBERT, DistilBERT): MPOE and dropless top-2 compute what the dense model did" {
            for architecture in [ "T5ForConditionalGeneration"; "GPT2LMHeadModel"; "BertForSequenceClassification"; "AlbertForSequenceClassification"; "DistilBertForSequenceClassification" ] do
                for json, tolerance in [ """{"moe": {"kind": "mpoe", "experts": 3}}""", 1e-4; """{"moe": {"kind": "moe", "experts": 3, "capacity_factor": null, "eval_capacity_factor": null}}""", 1e-5 ] do
                    let model = loadFixture architecture
                    let inputs = inputsOf architecture
                    let dense = logits model inputs
                    let blocks = FeedForward.Blocks(model).Count
                    use tuned = MpoTuner(config json).Apply(model)
                    Expect.equal tuned.Experts.Count blocks $"{architecture}: every FFN block"
                    Expect.isEmpty (FeedForward.Blocks(model)) "no dense FFN left"
                    Expect.isLessThan (relativeError (logits model inputs) dense) tolerance $"{architecture} {json}: the dense model's logits"
                    Expect.isNotNull model.TunerConfig "the model records its tuner for its checkpoints"
        }

        test "blocks select by dotted prefix; p_b = 1 freezes the shared central tensors outright (and counts say so)" {
            let model = loadFixture "T5ForConditionalGeneration"
            use tuned = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 2, "blocks": ["decoder"], "gradient_mask": {"p_b": 1}}}""").Apply(model)
            Expect.isTrue (tuned.Experts |> Seq.forall (fun t -> t.Path.StartsWith "decoder.")) "decoder blocks only"
            Expect.equal tuned.Experts.Count 3 "the fixture's 3 decoder blocks"
            Expect.equal (FeedForward.Blocks(model).Count) 2 "the 2 encoder FFNs stay dense"
            let count = ParameterCounting.Describe model
            let central = count.ExpertLayers |> Seq.sumBy (fun l -> l.SharedCentral)
            Expect.isGreaterThan central 0L "MPO experts have shared central tensors"
            Expect.equal (count.Parameters.Total - count.Parameters.Trainable) central "frozen: exactly the shared central tensors"
        }

        test "counts from a configuration alone (meta device, the one counting function) equal the formulas and MPOE's T5-base totals" {
            let t5 = ParameterCountTests.readT5 ParameterCountTests.t5Base
            let count kind n = ParameterCounting.FromConfig(t5, "T5ForConditionalGeneration", [ MpoTuner(MpoTunerConfig.ForMoe(MoeTunerConfig.Of(kind, n))) ])
            let plain = ParameterCounting.FromConfig(t5, "T5ForConditionalGeneration")
            Expect.equal plain.Parameters.Total 222_903_552L "T5-base"
            for n, paper in [ 4, 258_369_792L; 8, 293_836_032L; 16, 364_768_512L ] do
                let c = count MoeKind.Mpoe n
                let formula, routers = ParameterCountTests.mpoeTotal t5 plain.Parameters.Total n
                Expect.equal (c.Parameters.Total - c.RouterParameters) paper $"MPOE n = {n}: the paper's total without routers"
                Expect.equal (c.Parameters.Total - c.RouterParameters) formula "= base + Σ C + n·A − T (ExpertParameterCounts)"
                Expect.equal c.RouterParameters routers "routers 24 × (768·n + n)"
                Expect.equal c.ExpertLayers.Count 24 "12 encoder + 12 decoder FFNs"
            let dense = count MoeKind.Switch 8
            Expect.equal (dense.Parameters.Total - dense.RouterParameters) 1_015_627_008L "dense 8-expert Switch (1015 M)"
            Expect.equal dense.RouterParameters (24L * ExpertParameterCounts.Router(768L, 8, bias = false)) "Switch's routers have no bias"
            Expect.equal ((count MoeKind.Moe 8).Parameters.Total - dense.RouterParameters) 1_015_627_008L "dense 8-expert MoE (1015 M)"
            // the live count of an upcycled fixture equals the count of its configuration
            let model = loadFixture "GPT2LMHeadModel"
            let tuner = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3}}""")
            use tuned = tuner.Apply(model)
            let fromConfig = ParameterCounting.FromConfig(model.Config, model.Architecture, [ tuner ])
            Expect.equal fromConfig.Parameters (ParameterCounting.Count model) "configuration alone = the live model"
        }

        test "an MoE checkpoint: config.json records the experts, tensors are named by role, the central tensor is stored once, save → load gives the same logits bit for bit" {
            let dir = Directory.CreateTempSubdirectory("mpo-moe-ckpt-").FullName
            try
                let model = loadFixture "T5ForConditionalGeneration"
                use tuned = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3}}""").Apply(model)
                for struct (_, block) in model.named_modules() do
                    match block with
                    | :? MoeFeedForward as moe -> perturbExperts moe 7 0.2
                    | _ -> ()
                model.Save dir
                let json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))
                Expect.equal (json.["mpo_tuner"].["moe"].["experts"].GetValue<int>()) 3 "config.json: the experts"
                Expect.equal (json.["mpo_tuner"].["moe"].["kind"].GetValue<string>()) "mpoe" "config.json: the method"
                use file = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"))
                let names = [ for t in file.Tensors -> t.Name ]
                let layer = "encoder.block.0.layer.1.DenseReluDense"
                Expect.equal (names |> List.filter (fun n -> n.StartsWith layer && n.EndsWith ".central")) [ layer + ".wi.central"; layer + ".wo.central" ] "one shared central per matrix"
                Expect.isEmpty (names |> List.filter (fun n -> n.Contains ".experts." && n.EndsWith "central")) "no expert stores a central tensor"
                Expect.equal (names |> List.filter (fun n -> n.StartsWith(layer + ".wi.experts."))) [ for e in 0 .. 2 do for k in 0 .. 3 -> $"{layer}.wi.experts.{e}.aux{k}" ] "auxiliary tensors per expert"
                Expect.contains names (layer + ".router.weight") "the router"
                let struct (again, _) = PretrainedModel.Load dir
                use again = again
                let inputs = t5Inputs ()
                Expect.isTrue (sameBits (logits model inputs) (logits again inputs)) "same logits, bit for bit"
                // n experts saved, m built: the error names the router tensor and both counts
                let other = loadFixture "T5ForConditionalGeneration"
                use _ = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 4}}""").Apply(other)
                use ckpt = CheckpointFolder.Open dir
                let e = throwsWith<CheckpointFormatException> [ "3 experts"; "has 4" ] (fun () -> other.LoadWeights(ckpt) |> ignore)
                Expect.equal e.Tensor "encoder.block.0.layer.1.DenseReluDense.router.weight" "names the tensor"
                // a config.json edited to another number of experts: the same error from the loader
                json.["mpo_tuner"].["moe"].["experts"] <- JsonValue.Create 5
                File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString())
                throwsWith<CheckpointFormatException> [ "router.weight"; "3 experts"; "has 5" ] (fun () -> PretrainedModel.Load dir |> ignore) |> ignore
            finally
                Directory.Delete(dir, true)
        }

        // The loader above rebuilt the MoE structure through the hook the Tuning layer registers; Models itself names
        // nothing of the layers above it (code lines only: the docs may say who registers).
        test "the Models layer names neither Tuning nor Experts: MoE checkpoints rebuild through the registered ICheckpointStructure" {
            Expect.isNotNull CheckpointStructure.Registered "registered when the assembly loaded"
            let above = Text.RegularExpressions.Regex @"\b(Mpo\.)?(Tuning|Experts)(;|\.[A-Z])"
            let folder = repoFile "src/Mpo.Core.CSharp/Models"
            let sources = Directory.GetFiles(folder, "*.cs", SearchOption.AllDirectories)
            Expect.isGreaterThan sources.Length 10 "the Models sources"
            let offending =
                [ for file in sources do
                    for line in File.ReadAllLines file do
                        if not (line.TrimStart().StartsWith "//") && above.IsMatch line then
                            yield $"{Path.GetRelativePath(folder, file)}: {line.Trim()}" ]
            Expect.isEmpty offending "no reference from Models up into Tuning or Experts"
        }
    ]
