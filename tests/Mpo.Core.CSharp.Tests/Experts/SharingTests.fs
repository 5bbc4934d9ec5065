/// MPOE's parameter sharing switched off (MPOE Table 3's "w/o PS"; moe.share_central false): every expert owns its
/// central tensor (experts.{e}.central), the experts are independent objects, the upcycled layer still computes the
/// dense FFN, checkpoints round-trip bit for bit (and a sharing mismatch is named), the gradient mask is refused, and the
/// count from a configuration alone adds (n − 1) central tensors per FFN matrix, against an oracle from core shapes.
module Mpo.Core.Tests.SharingTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Experts
open Mpo.Layers
open Mpo.Models
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TrainingProblems
open Mpo.Core.Tests.ExpertFixtures

let private config (json: string) = MpoTunerConfig.FromJson(JsonNode.Parse(json).AsObject(), "test.json")

let private logits (model: PretrainedModel) (inputs: ModelInputs) =
    use _ = torch.no_grad ()
    model.forward(inputs).Logits.detach().clone()

let private firstBlock (model: torch.nn.Module) =
    let struct (_, block) = FeedForward.Blocks(model).[0]
    block

/// The central core's size at full bonds, from the factors alone: d_k = min(Π_{m<k} i_m·j_m, Π_{m≥k} i_m·j_m) (the
/// largest rank a cut of the reshaped matrix can have, MPOP §3.1), and the central core is [d_c, i_c, j_c, d_{c+1}]
/// with c the middle core.
let centralSize (f: MpoFactorization) =
    let n = f.CoreCount
    let dims = [ for k in 0 .. n - 1 -> int64 f.RowFactors.[k] * int64 f.ColFactors.[k] ]
    let bond k = min (List.take k dims |> List.fold (*) 1L) (List.skip k dims |> List.fold (*) 1L)
    let c = n / 2
    bond c * dims.[c] * bond (c + 1)

[<Tests>]
let tests =
    testSequenced <| testList "Experts.Sharing" [
        test "unshared experts own their central tensors: named experts.{e}.central, distinct objects, equal at upcycling; a step on expert 0 leaves expert 1 bit-identical" {
            let block = firstBlock (loadFixture "T5ForConditionalGeneration")
            let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 3, ExpertKind.Mpo, shareCentral = false)
            let shared = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 3, ExpertKind.Mpo)
            let centrals = [ for struct (name, _) in moe.named_parameters() do if MpoLayer.IsCentral name then yield name ]
            Expect.equal centrals [ for m in [ "wi"; "wo" ] do for e in 0 .. 2 -> $"{m}.experts.{e}.central" ] "one central per expert per matrix, found by IsCentral"
            let wi = moe.Input :?> MpoExpertMatrices
            Expect.isFalse wi.SharesCentral "not shared"
            throwsWith<InvalidOperationException> [ "share_central false"; "CentralOf" ] (fun () -> wi.Central |> ignore) |> ignore
            let handles = [ for e in 0 .. 2 -> wi.CentralOf(e).Handle ]
            Expect.equal (List.distinct handles).Length 3 "three tensors, not one"
            let c = wi.Factorization.CentralIndex
            for e in 0 .. 2 do
                Expect.equal (wi.Cores(e).[c].Handle) (wi.CentralOf e).Handle $"expert {e} reads its own central tensor"
                Expect.isTrue (sameBits (wi.CentralOf e) (shared.Input :?> MpoExpertMatrices).Central) $"expert {e}: the same decomposition as the shared one"
            // .to keeps n distinct tensors, each still read by its expert
            moe.``to``(torch.float64) |> ignore
            shared.``to``(torch.float64) |> ignore
            Expect.equal [ for e in 0 .. 2 -> (wi.Cores(e).[c].Handle, wi.CentralOf(e).dtype) ] [ for e in 0 .. 2 -> wi.CentralOf(e).Handle, torch.float64 ] "after .to(float64)"
            // one AdamW step (weight decay on) with tokens for expert 0 only
            let before = [ for e in 0 .. 2 -> wi.CentralOf(e).detach().clone() ]
            let weight1 = wi.Weight(1).detach().clone()
            let x = gaussian 9 [ 5L; 24L ] torch.float64
            // inference calls cache each expert's weight (WeightCache): fill expert 0's and 1's before the step
            let cached e = (use _ = torch.no_grad () in wi.Forward(e, x).detach().clone())
            let before0, before1 = cached 0, cached 1
            use opt = torch.optim.AdamW(moe.parameters(), lr = 1e-2, weight_decay = 0.1)
            moe.train()
            wi.Forward(0, x).pow(torch.tensor 2.0).sum().backward()
            Expect.isNull (wi.CentralOf 1).grad "expert 1's central got no gradient"
            opt.step() |> ignore
            Expect.isFalse (sameBits (wi.CentralOf 0) before.[0]) "expert 0's central moved"
            for e in 1 .. 2 do Expect.isTrue (sameBits (wi.CentralOf e) before.[e]) $"expert {e}'s central bit-identical"
            Expect.isTrue (sameBits (wi.Weight 1) weight1) "expert 1 computes what it did"
            let fresh e = (use _ = torch.no_grad () in Mpo.Contraction.MpoContraction.LinearReconstructed(x, wi.Cores e, wi.Factorization, wi.Bias e))
            Expect.isLessThan (relativeError (cached 0) (fresh 0)) 1e-12 "expert 0's cached weight follows its own central's step"
            Expect.isFalse (sameBits (cached 0) before0) "(it moved)"
            Expect.isTrue (sameBits (cached 1) before1) "expert 1's cached output unchanged"
            // the same step with a shared central moves what expert 1 computes: the contrast the ablation is about
            let sw = shared.Input :?> MpoExpertMatrices
            let sharedWeight1 = sw.Weight(1).detach().clone()
            use sopt = torch.optim.AdamW(shared.parameters(), lr = 1e-2, weight_decay = 0.1)
            sw.Forward(0, x).pow(torch.tensor 2.0).sum().backward()
            sopt.step() |> ignore
            Expect.isFalse (sameBits (sw.Weight 1) sharedWeight1) "shared: expert 0's tokens change expert 1"
            // freezing freezes every expert's central tensor and nothing else
            wi.FreezeCentral()
            Expect.isTrue ([ for e in 0 .. 2 -> (wi.CentralOf e).requires_grad ] |> List.forall not) "all three frozen"
            Expect.isFalse wi.CentralTrainable "reported frozen"
            Expect.isTrue ((wi.Cores 0).[0].requires_grad) "auxiliary tensors still train"
        }

        test "an upcycled unshared layer (and a whole model through moe.share_central false) computes the dense FFN at full bonds" {
            let model = loadFixture "T5ForConditionalGeneration"
            let block = firstBlock model
            let struct (wi, _) = LinearWeight.Of(block.Input, "wi")
            let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 4, ExpertKind.Mpo, shareCentral = false)
            moe.eval()
            for e in 0 .. 3 do Expect.isLessThan (relativeError (moe.Input.Weight e) wi) 1e-5 $"expert {e}: wi"
            let x = gaussian 3 [ 2L; 7L; 24L ] torch.float32
            use _ = torch.no_grad ()
            let dense = block.Output.forward(block.Activation.Invoke(block.Input.forward x))
            Expect.isLessThan (relativeError (moe.forward x) dense) 1e-5 "the layer: the dense FFN's output"
            for architecture in [ "T5ForConditionalGeneration"; "GPT2LMHeadModel" ] do
                let model = loadFixture architecture
                let inputs = if architecture.StartsWith "T5" then t5Inputs () else encoderInputs architecture
                let before = logits model inputs
                use tuned = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3, "share_central": false}}""").Apply(model)
                Expect.isLessThan (relativeError (logits model inputs) before) 1e-4 $"{architecture}: the dense model's logits"
                let banks = [ for struct (_, m) in model.named_modules() do match m with :? MpoExpertMatrices as b -> yield b | _ -> () ]
                Expect.isNonEmpty banks "MPO experts"
                Expect.isTrue (banks |> List.forall (fun b -> not b.SharesCentral)) "none shares"
        }

        test "an unshared checkpoint: config.json records share_central false, each expert stores its central, save → load is bit for bit; a sharing mismatch is named" {
            let dir = Directory.CreateTempSubdirectory("mpo-moe-unshared-").FullName
            try
                let model = loadFixture "T5ForConditionalGeneration"
                use tuned = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3, "share_central": false}}""").Apply(model)
                for struct (_, block) in model.named_modules() do
                    match block with
                    | :? MoeFeedForward as moe -> perturbExperts moe 11 0.2   // centrals included: they are the experts' own
                    | _ -> ()
                model.Save dir
                let json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))
                Expect.isFalse (json.["mpo_tuner"].["moe"].["share_central"].GetValue<bool>()) "config.json: not shared"
                use file = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"))
                let names = [ for t in file.Tensors -> t.Name ]
                let layer = "encoder.block.0.layer.1.DenseReluDense"
                Expect.equal (names |> List.filter (fun n -> n.StartsWith layer && n.EndsWith ".central"))
                    [ for m in [ "wi"; "wo" ] do for e in 0 .. 2 -> $"{layer}.{m}.experts.{e}.central" ] "one central per expert"
                let struct (again, _) = PretrainedModel.Load dir
                use again = again
                let saved = parameters model
                for struct (name, p) in again.named_parameters() do
                    Expect.isTrue (sameBits p saved.[name]) $"{name}: bit-identical"
                Expect.equal (Seq.length (again.named_parameters())) saved.Count "the same parameters"
                let inputs = t5Inputs ()
                Expect.isTrue (sameBits (logits model inputs) (logits again inputs)) "same logits, bit for bit"
                // loaded into experts that share: named, with the setting
                let other = loadFixture "T5ForConditionalGeneration"
                use _ = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3}}""").Apply(other)
                use ckpt = CheckpointFolder.Open dir
                let e = throwsWith<CheckpointFormatException> [ "own their central tensors"; "share_central false" ] (fun () -> other.LoadWeights(ckpt) |> ignore)
                Expect.equal e.Tensor "encoder.block.0.layer.1.DenseReluDense.wi.experts.0.central" "names the tensor"
                // and the reverse: a shared checkpoint into unshared experts
                let sharedDir = Path.Combine(dir, "shared")
                other.Save sharedDir
                let third = loadFixture "T5ForConditionalGeneration"
                use _ = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3, "share_central": false}}""").Apply(third)
                use sharedCkpt = CheckpointFolder.Open sharedDir
                let e = throwsWith<CheckpointFormatException> [ "share one central tensor"; "share_central true" ] (fun () -> third.LoadWeights(sharedCkpt) |> ignore)
                Expect.equal e.Tensor "encoder.block.0.layer.1.DenseReluDense.wi.central" "names the tensor"
            finally
                Directory.Delete(dir, true)
        }

        test "the section: share_central reads, writes and round-trips (default true); on dense experts, not a boolean, or with a gradient mask it is an error naming the field" {
            Expect.isTrue (config """{"moe": {"kind": "mpoe"}}""").Moe.ShareCentral "default: shared"
            let off = config """{"moe": {"kind": "mpoe", "share_central": false}}"""
            Expect.isFalse off.Moe.ShareCentral "read"
            let again = MpoTunerConfig.FromJson(off.ToJson(), "round trip")
            Expect.isFalse again.Moe.ShareCentral "written and read back"
            Expect.equal (again.ToJson().ToJsonString()) (off.ToJson().ToJsonString()) "the same configuration"
            let bad (json: string) (field: string) (fragment: string) =
                let e = throwsWith<InvalidTunerConfigException> [ "test.json"; field; fragment ] (fun () -> config json |> ignore)
                Expect.equal e.Field field $"field {field}"
            bad """{"moe": {"kind": "switch", "share_central": false}}""" "moe.share_central" "dense experts"
            bad """{"moe": {"kind": "mpoe", "share_central": "no"}}""" "moe.share_central" "true or false"
            bad """{"moe": {"kind": "mpoe", "share_central": false, "gradient_mask": {"p_b": 0.5}}}""" "moe.gradient_mask" "share_central"
            bad """{"moe": {"kind": "mpoe", "share_central": false, "gradient_mask": {"p_b": 1}}}""" "moe.gradient_mask" "none to mask"
            Expect.isFalse (config """{"moe": {"kind": "mpoe", "share_central": false, "gradient_mask": {"p_b": 0}}}""").Moe.ShareCentral "p_b = 0 (plain training) is allowed"
            throwsWith<InvalidTunerConfigException> [ "moe.share_central" ] (fun () -> MoeTunerConfig.Of(MoeKind.Moe, 4, shareCentral = false) |> ignore) |> ignore
            // the callback itself finds no shared tensor among unshared experts (rather than masking nothing silently)
            torch.random.manual_seed 3L |> ignore
            let fc1 = torch.nn.Linear(16L, 32L)
            let fc2 = torch.nn.Linear(32L, 16L)
            let ffn = new FeedForwardView("fc1", (fun () -> fc1 :> Layer), "fc2", (fun () -> fc2 :> Layer), Func<Tensor, Tensor>(fun x -> torch.nn.functional.relu(x)))
            let moe = MoeFeedForward.Upcycle(ffn, MoeOptions(Experts = 3), ExpertKind.Mpo, shareCentral = false)
            let model = torch.nn.Sequential(struct ("moe", moe :> Layer), struct ("head", torch.nn.Linear(16L, 1L) :> Layer))
            use trainer = new Trainer<Batch>(model, GradientMaskTests.options null 1L, TrainingProblems.batches (GradientMaskTests.data.Force()) 8,
                                             GradientMaskTests.moeLoss model, callbacks = [ GradientMaskCallback(GradientMaskSchedule.Constant 0.5) :> TrainerCallback ])
            throwsWith<InvalidOperationException> [ "no shared central tensor" ] (fun () -> trainer.Run() |> ignore) |> ignore
        }

        test "counts from a configuration alone: T5-base unshared = shared + (n − 1) × Σ central sizes over the 48 FFN matrices (oracle from core shapes)" {
            let t5 = ParameterCountTests.readT5 ParameterCountTests.t5Base
            let count n share =
                ParameterCounting.FromConfig(t5, "T5ForConditionalGeneration", [ MpoTuner(MpoTunerConfig.ForMoe(MoeTunerConfig.Of(MoeKind.Mpoe, n, shareCentral = share))) ])
            let wi = FactorizationChooser.Choose(t5.DFf, t5.DModel)
            let wo = FactorizationChooser.Choose(t5.DModel, t5.DFf)
            Expect.equal (wi.CentralIndex, wo.CentralIndex) (wi.CoreCount / 2, wo.CoreCount / 2) "the central core is the middle one"
            let blocks = int64 (t5.NumLayers + t5.NumDecoderLayers)
            let centrals = blocks * (centralSize wi + centralSize wo)
            Expect.equal (centralSize wi) 2_359_296L "a full-bond central holds as many parameters as the matrix (spec §5.4)"
            for n in [ 1; 4; 8 ] do
                let shared, unshared = count n true, count n false
                Expect.equal unshared.Parameters.Total (shared.Parameters.Total + int64 (n - 1) * centrals) $"n = {n}: (n − 1) more central tensors per matrix"
                Expect.equal unshared.RouterParameters shared.RouterParameters "the same routers"
                Expect.isTrue (unshared.ExpertLayers |> Seq.forall (fun l -> l.Kind = "mpo-unshared" && l.SharedCentral = 0L)) "no shared central; kind says so"
                let own (c: ModelCount) = c.ExpertLayers |> Seq.sumBy (fun l -> l.PerExpert)
                Expect.equal (own unshared) (own shared + int64 n * centrals) "the experts own n centrals each matrix"
            let eight = count 8 false
            Expect.equal (eight.Parameters.Total - eight.RouterParameters) 1_086_559_488L "T5-base, 8 unshared MPO experts: 293,836,032 + 7 × 48 × 2,359,296"
            // the live count of an upcycled fixture equals the count of its configuration
            let model = loadFixture "GPT2LMHeadModel"
            let tuner = MpoTuner(config """{"moe": {"kind": "mpoe", "experts": 3, "share_central": false}}""")
            use tuned = tuner.Apply(model)
            Expect.equal (ParameterCounting.FromConfig(model.Config, model.Architecture, [ tuner ])).Parameters (ParameterCounting.Count model) "configuration alone = the live model"
        }
    ]
