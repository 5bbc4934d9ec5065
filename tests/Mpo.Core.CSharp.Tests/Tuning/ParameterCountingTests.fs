/// The one parameter count: peft's line character for character, shared parameters once, counts from a
/// configuration alone equal to counts of the live models, and MPOP's published counts (spec §4.3, Table 3/4).
module Mpo.Core.Tests.ParameterCountingTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Models
open Mpo.Tuning
open Mpo.Core.Tests.Support

let configOf (folder: string) =
    use checkpoint = CheckpointFolder.Open folder
    ModelRegistry.ReadConfig checkpoint, ModelRegistry.StoredArchitecture checkpoint

let readConfig (path: string) = ModelRegistry.ReadConfig(JsonNode.Parse(File.ReadAllText path).AsObject(), path)

/// `mpo count` of a committed model configuration (data/configs/models) with an optional tuner (preset or file).
let countOf (model: string) (mpo: string option) =
    let config = readConfig (repoFile $"data/configs/models/{model}.json")
    let tuners = [ for m in Option.toList mpo -> MpoTuner(MpoTunerConfig.Load(if m.EndsWith ".json" then repoFile m else m)) :> IStructuralTuner ]
    ParameterCounting.FromConfig(config, ParameterCounting.CountedArchitecture config, tuners).Parameters

let truncating = MpoTunerConfig(Truncation = readOnlyDict [ "attention", TruncationSpec.MaxBond 3 :> TruncationSpec
                                                            MpoFamilies.WordEmbedding, TruncationSpec.MaxBond 4
                                                            MpoFamilies.FfnOut, TruncationSpec.PerBond [| 1; 2; 3; 2 |] ])

type Shared() as this =
    inherit torch.nn.Module<torch.Tensor, torch.Tensor>("Shared")
    let table = torch.nn.Parameter(torch.ones(5L, 3L))
    let frozen = torch.nn.Parameter(torch.ones(4L), requires_grad = false)
    let inner = torch.nn.Linear(3L, 2L)
    do
        this.register_parameter("table", table)
        this.register_parameter("frozen", frozen)
        this.register_module("inner", inner)
        inner.register_parameter("tied", table)   // the same parameter in a second place
    override _.forward x = x

[<Tests>]
let tests =
    testSequenced <| testList "Tuning.ParameterCounting" [
        test "peft's line, character for character (format `{:,d}` and `{:.4f}`)" {
            Expect.equal (string (ParameterCount(1_187_574L, 12_695_286L))) "trainable params: 1,187,574 || all params: 12,695,286 || trainable%: 9.3544" "MPOP_full+LFA on ALBERT"
            Expect.equal (string (ParameterCount(0L, 0L))) "trainable params: 0 || all params: 0 || trainable%: 0.0000" "empty" }

        test "a parameter registered in two places counts once; frozen ones count in all params only" {
            use m = new Shared()
            Expect.equal (ParameterCounting.Count m) (ParameterCount(15L + 6L + 2L, 15L + 4L + 6L + 2L)) "table once, Linear 3x2 + 2, frozen 4" }

        test "from the configuration alone = the live model, plain and tuned, for every family (and the bundled tiny models)" {
            let folders =
                [ for name in [ "BertForSequenceClassification"; "BertForMaskedLM"; "AlbertForSequenceClassification"; "DistilBertForMaskedLM"
                                "GPT2LMHeadModel"; "GPT2ForSequenceClassification"; "T5ForConditionalGeneration" ] -> Mpo.Core.Tests.ModelFixtures.folder name ]
                @ [ repoFile "models/tiny-gpt2/config.json" |> Path.GetDirectoryName ]
            for folder in folders do
                let config, stored = configOf folder
                let architecture = stored |> Option.ofObj |> Option.defaultValue "BertModel"
                let struct (live, _) = PretrainedModel.Load folder
                use live = live
                let plain = ParameterCounting.FromConfig(config, architecture)
                Expect.equal plain.Parameters (ParameterCounting.Count live) $"{folder}: plain"
                let tuner = MpoTuner(truncating)
                let fromConfig = ParameterCounting.FromConfig(config, architecture, [ tuner ])
                use tuned = tuner.Apply live
                let counted = ParameterCounting.Describe tuned.Model
                Expect.equal fromConfig.Parameters counted.Parameters $"{folder}: tuned"
                Expect.isLessThan fromConfig.Parameters.Trainable fromConfig.Parameters.Total "central tensors frozen"
                Expect.sequenceEqual [ for l in fromConfig.MpoLayers -> l.Path, List.ofArray l.Bonds ] [ for l in counted.MpoLayers -> l.Path, List.ofArray l.Bonds ] $"{folder}: the same layers and bonds" }

        test "ALBERT-base-v2 (2 labels): plain 11,685,122; MPOP_full with the appendix shapes 12,695,286 total, 1,187,574 trained (spec §4.3)" {
            Expect.equal (countOf "albert-base-v2" None) (ParameterCount(11_685_122L, 11_685_122L)) "ALBERT_rep: 11.6 / 11.6"
            Expect.equal (countOf "albert-base-v2" (Some "mpop-albert")) (ParameterCount(1_187_574L, 12_695_286L)) "MPOP_full+LFA: 1.2 / 12.7" }

        test "the other rows of spec §4.3: the code's attention shape, the released caps, the WNLI script" {
            for tuner, trainable, total in
                [ "mpop-albert-code", 1_250_539L, 12_758_251L
                  "data/configs/mpop/albert-emb240.json", 1_072_374L, 10_660_086L
                  "data/configs/mpop/albert-code-emb240.json", 1_135_339L, 10_723_051L
                  "data/configs/mpop/albert-emb240-ffn256.json", 974_070L, 8_988_918L
                  "data/configs/mpop/albert-code-emb240-ffn256.json", 1_037_035L, 9_051_883L
                  "data/configs/mpop/albert-code-wnli.json", 552_147L, 2_484_331L ] do
                Expect.equal (countOf "albert-base-v2" (Some tuner)) (ParameterCount(trainable, total)) tuner }

        test "Table 4's plain models and T5-base from their configurations" {
            Expect.equal (countOf "bert-base-uncased" None).Total 109_483_778L "BERT-base, 2 labels: \"110\""
            Expect.equal (countOf "distilbert-base-uncased" None).Total 66_955_010L "DistilBERT, 2 labels (66,362,880 without the head): \"66\""
            let config = readConfig (repoFile "data/configs/models/t5-base.json")
            Expect.equal (ParameterCounting.FromConfig(config, "T5ForConditionalGeneration").Parameters.Total) 222_903_552L "T5-base (MPOE's base)" }

        test "MobileBERT is refused naming model_type; tolerance cannot be counted without weights" {
            throwsWith<InvalidModelConfigException> [ "mobilebert-uncased.json"; "'model_type'"; "mobilebert" ] (fun () ->
                readConfig (repoFile "data/configs/models/mobilebert-uncased.json") |> ignore) |> ignore
            let config = readConfig (repoFile "data/configs/models/bert-base-uncased.json")
            let tolerance = MpoTuner(MpoTunerConfig(Truncation = readOnlyDict [ "ffn", TruncationSpec.Tolerance 0.1 :> TruncationSpec ]))
            throwsWith<System.ArgumentException> [ "Tolerance"; "singular values" ] (fun () ->
                ParameterCounting.FromConfig(config, "BertForSequenceClassification", [ tolerance ]) |> ignore) |> ignore }
    ]
