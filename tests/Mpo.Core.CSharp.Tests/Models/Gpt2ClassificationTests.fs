/// GPT2ForSequenceClassification against tools/reference/models/decoders_reference.py's fixture: the score head read
/// at each row's rightmost non-pad token, cross-head loading from the LM checkpoint, and the pad-less config.
module Mpo.Core.Tests.Gpt2ClassificationTests

open Expecto
open TorchSharp
open Mpo.Models
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.DecoderFixtures

let architecture = "GPT2ForSequenceClassification"

let inputs (d: System.Collections.Generic.IDictionary<string, torch.Tensor>) =
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], Labels = d.["labels"])

[<Tests>]
let tests =
    testSequenced <| testList "Models.Gpt2ForSequenceClassification" [
        test "float32 logits and loss match the reference (rows end at their last non-pad token)" {
            let model, report = load architecture null
            Expect.isEmpty report.NewlyInitialized "the fixture has the score head"
            Expect.sequenceEqual model.Config.Labels [ "negative"; "neutral"; "positive" ] "labels from id2label"
            let d = io architecture
            let out = model.forward (inputs d)
            expectRelative 1e-5 out.Logits d.["f64.logits"] "logits vs float64 reference"
            expectRelative 1e-5 out.LastHiddenState d.["f64.hidden"] "hidden vs float64 reference"
            expectClose 1e-6 (out.Loss.item<float32>() |> float) (d.["f64.loss"].item<float>()) "loss" }

        test "float64 to 1e-12, and the logits are the score of the hidden state at the reference's last token" {
            let model, _ = load architecture null
            model.``to``(torch.float64) |> ignore
            let d = io architecture
            let out = model.forward (inputs d)
            expectRelative 1e-12 out.Logits d.["f64.logits"] "logits"
            // independent of the pooling code: pick the rows' last tokens by the indices the reference wrote
            let last = d.["last_token"]
            let score = model.get_parameter "score.weight"
            let picked = out.LastHiddenState.[torch.arange(3L), last]
            expectRelative 1e-12 (picked.matmul(score.t())) out.Logits "score(hidden[last])" }

        test "loads from the LM checkpoint: the body is copied, the score head is fresh and reported" {
            let struct (model, report) = PretrainedModel.Load(folder "GPT2LMHeadModel", architecture, [| "a"; "b" |], padTokenId = 95)
            Expect.sequenceEqual report.NewlyInitialized [ "score.weight" ] "only the head is new"
            Expect.equal model.Config.PadTokenId (System.Nullable 95) "pad id set by the caller"
            let lm, _ = load "GPT2LMHeadModel" null
            let d = io "GPT2LMHeadModel"
            let hidden = model.forward(ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"])).LastHiddenState
            expectRelative 1e-6 hidden (lm.forward(ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"])).LastHiddenState) "same body" }

        test "without pad_token_id: one row works (its last position), several rows fail naming the key" {
            let struct (model, _) = PretrainedModel.Load(folder "GPT2LMHeadModel", architecture, [| "a"; "b" |])
            let ids = torch.tensor([| 1L; 2L; 3L |]).unsqueeze(0)
            let out = model.forward (ModelInputs ids)
            Expect.sequenceEqual out.Logits.shape [| 1L; 2L |] "one row, two classes"
            throwsWith<System.ArgumentException> [ "pad_token_id"; "2 rows" ] (fun () ->
                model.forward (ModelInputs(torch.cat([| ids; ids |], 0L))) |> ignore) |> ignore }
    ]
