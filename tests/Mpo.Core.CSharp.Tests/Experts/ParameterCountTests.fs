/// MoE parameter counts from shapes alone, against the MPOE paper's numbers (spec §5.4) and against the tensors of
/// real MoE layers.
module Mpo.Core.Tests.ParameterCountTests

open System.IO
open System.Text
open Expecto
open Mpo.Decomposition
open Mpo.Experts
open Mpo.Models
open Mpo.Core.Tests.ExpertFixtures

/// T5-base's config.json (Hugging Face `t5-base`), read by the model's own config reader; no model is built.
let t5Base = """{ "model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": 32128, "d_model": 768,
  "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "relative_attention_num_buckets": 32,
  "dropout_rate": 0.1, "layer_norm_epsilon": 1e-06, "initializer_factor": 1.0, "feed_forward_proj": "relu",
  "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1 }"""

let t5Large = t5Base.Replace("\"d_model\": 768", "\"d_model\": 1024").Replace("\"d_ff\": 3072", "\"d_ff\": 4096")
                    .Replace("\"num_layers\": 12", "\"num_layers\": 24").Replace("\"num_decoder_layers\": 12", "\"num_decoder_layers\": 24")
                    .Replace("\"num_heads\": 12", "\"num_heads\": 16")

let readT5 (json: string) =
    ModelRegistry.ReadConfig(System.Text.Json.Nodes.JsonNode.Parse(json).AsObject(), "t5 config") :?> T5Config

/// MPOE totals for a T5 config: base + Σ over its FFN matrices (wi [d_ff, d], wo [d, d_ff] in every encoder and
/// decoder block) of what n MPO experts add; the routers, one Linear(d, n) per FFN, counted apart.
let mpoeTotal (c: T5Config) (baseCount: int64) (n: int) =
    let wi = FactorizationChooser.Choose(c.DFf, c.DModel)
    let wo = FactorizationChooser.Choose(c.DModel, c.DFf)
    let layers = int64 (c.NumLayers + c.NumDecoderLayers)
    baseCount + layers * (ExpertParameterCounts.AddedByMpoExperts(wi, n) + ExpertParameterCounts.AddedByMpoExperts(wo, n)),
    layers * ExpertParameterCounts.Router(int64 c.DModel, n)

[<Tests>]
let tests =
    testList "Experts.ParameterCounts" [
        test "per FFN matrix (768 × 3072): central 2,359,296, auxiliary 184,720; n MPO experts C + n·A, n dense experts n·T, a router d·n + n" {
            let f = FactorizationChooser.Choose(3072, 768)
            let struct (central, auxiliary) = ExpertParameterCounts.Split(f)
            Expect.equal (central, auxiliary) (2_359_296L, 184_720L) "the paper's split"
            Expect.equal (ExpertParameterCounts.MpoExperts(f, 8)) (2_359_296L + 8L * 184_720L) "one central + 8 × auxiliary"
            Expect.equal (ExpertParameterCounts.AddedByMpoExperts(f, 8)) (8L * 184_720L) "C = T here, so each matrix adds n·A"
            Expect.equal (ExpertParameterCounts.DenseExperts(3072L, 768L, 8)) (8L * 2_359_296L) "n·T"
            Expect.equal (ExpertParameterCounts.AddedByDenseExperts(3072L, 768L, 8)) (7L * 2_359_296L) "(n − 1)·T"
            Expect.equal (ExpertParameterCounts.Router(768L, 8)) 6_152L "768·8 + 8"
            Expect.equal (ExpertParameterCounts.Router(768L, 8, bias = false)) 6_144L "without bias"
            // γ = C/A ≈ 12.77: sharing the central tensor keeps (γ + n)/(n(γ + 1)) of n unshared MPO experts, 0.189 at
            // n = 8 (the paper's 0.19 takes T = C + A); against n dense experts (T = rows·cols) it is 0.203.
            let unshared = 8L * (central + auxiliary)
            let sharing = float (ExpertParameterCounts.MpoExperts(f, 8)) / float unshared
            let gamma = float central / float auxiliary
            Expect.floatClose Accuracy.high sharing ((gamma + 8.0) / (8.0 * (gamma + 1.0))) "(γ + n)/(n(γ + 1))"
            Expect.isTrue (abs (sharing - 0.189) < 0.0005) $"{sharing:F4} ≈ 0.189"
            let vsDense = float (ExpertParameterCounts.MpoExperts(f, 8)) / float (ExpertParameterCounts.DenseExperts(3072L, 768L, 8))
            Expect.isTrue (abs (vsDense - 0.2033) < 0.0005) $"{vsDense:F4} of dense experts"
            // Biases are per expert.
            Expect.equal (ExpertParameterCounts.MpoExperts(f, 4, bias = true)) (2_359_296L + 4L * (184_720L + 3072L)) "biased MPO experts"
            Expect.equal (ExpertParameterCounts.DenseExperts(3072L, 768L, 4, bias = true)) (4L * (2_359_296L + 3072L)) "biased dense experts"
        }

        test "T5-base from its config: MPOE n = 4, 8, 16 and dense 8-expert MoE reproduce the paper's totals exactly" {
            let c = readT5 t5Base
            let baseCount = 222_903_552L   // T5-base's parameter count (tied embeddings), as the paper and HF report it
            let total n = fst (mpoeTotal c baseCount n)
            Expect.equal (total 4) 258_369_792L "n = 4 (paper's multi-task MPOE: 258 M)"
            Expect.equal (total 8) 293_836_032L "n = 8 (294 M)"
            Expect.equal (snd (mpoeTotal c baseCount 8)) 147_648L "+ routers 24 × (768·8 + 8)"
            Expect.equal (total 16) 364_768_512L "n = 16, MPOE++ (365 M)"
            let layers = int64 (c.NumLayers + c.NumDecoderLayers)
            let dense = baseCount + layers * (ExpertParameterCounts.AddedByDenseExperts(int64 c.DFf, int64 c.DModel, 8)
                                              + ExpertParameterCounts.AddedByDenseExperts(int64 c.DModel, int64 c.DFf, 8))
            Expect.equal dense 1_015_627_008L "dense 8-expert MoE / Switch (1015 M)"
        }

        test "T5-large: n = 8 gives 989,719,552, not the paper's 956 M (spec §5.4: unresolved)" {
            let c = readT5 t5Large
            let wi = FactorizationChooser.Choose(c.DFf, c.DModel)
            let struct (_, auxiliary) = ExpertParameterCounts.Split(wi)
            Expect.equal auxiliary 328_192L "auxiliary of [4,4,8,8,4] × [4,4,4,4,4]"
            Expect.equal (fst (mpoeTotal c 737_668_096L 8)) 989_719_552L "989.7 M"
        }

        test "the formulas count what real MoE layers hold (dense and MPO experts, with and without biases, routers)" {
            for architecture in [ "T5ForConditionalGeneration"; "GPT2LMHeadModel" ] do
                for kind in [ ExpertKind.Dense; ExpertKind.Mpo ] do
                    for n in [ 1; 3 ] do
                        let model = loadFixture architecture
                        let layers = upcycleAll model (MoeOptions.Mpoe n) kind
                        for _, moe in layers do
                            let held = moe.parameters() |> Seq.sumBy (fun p -> p.numel())
                            let matrix (m: ExpertMatrices) =
                                match m with
                                | :? MpoExpertMatrices as mpo -> ExpertParameterCounts.MpoExperts(mpo.Factorization, n, bias = mpo.HasBias)
                                | _ -> ExpertParameterCounts.DenseExperts(int64 m.OutFeatures, int64 m.InFeatures, n, bias = m.HasBias)
                            let expected = matrix moe.Input + matrix moe.Output + ExpertParameterCounts.Router(int64 moe.Input.InFeatures, n)
                            Expect.equal held expected $"{architecture}, {kind}, n = {n}: tensors = formula"
        }
    ]
