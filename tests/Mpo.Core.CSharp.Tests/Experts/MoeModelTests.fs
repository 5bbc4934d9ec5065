/// MoE layers inside the model families: the feed-forward seam of each, upcycling that keeps the model's outputs,
/// padding masks through MoeStep, the auxiliary losses in the training loss, no memory across steps, the trainer.
module Mpo.Core.Tests.MoeModelTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open Mpo.Experts
open Mpo.Models
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ExpertFixtures

let count (m: torch.nn.Module) = m.parameters() |> Seq.sumBy (fun p -> p.numel())

let inputsFor (architecture: string) =
    if architecture.StartsWith "T5" then t5Inputs ()
    elif architecture.StartsWith "GPT2" then
        let d = fixtureIo architecture
        ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"])
    else encoderInputs architecture

let families =
    [ "T5ForConditionalGeneration", 5, "DenseReluDense.wi.weight"
      "GPT2LMHeadModel", 2, "mlp.c_fc.weight"
      "BertForSequenceClassification", 2, "intermediate.dense.weight"
      "AlbertForMaskedLM", 2, ".ffn.weight"
      "DistilBertForSequenceClassification", 2, "ffn.lin1.weight" ]

/// Dropless top-2 with renormalized gates: identical upcycled experts give back the FFN's output.
let droplessTop2 n = MoeOptions(Experts = n, TopK = 2, Gates = GateMode.Normalized, RouterBias = false)

[<Tests>]
let tests =
    testSequenced <| testList "Experts.Models" [
        test "each family's feed-forward is one swappable block; upcycled MoE layers give the model's outputs back and drop the dense matrices" {
            for architecture, blocks, denseName in families do
                for kind, options, tolerance in [ ExpertKind.Dense, droplessTop2 3, 1e-6; ExpertKind.Mpo, MoeOptions.Mpoe 3, 2e-5 ] do
                    use scope = torch.NewDisposeScope()
                    let model = loadFixture architecture
                    let inputs = inputsFor architecture
                    let expected = model.forward(inputs).Logits
                    let before = count model
                    let found = FeedForward.Blocks(model)
                    Expect.equal found.Count blocks $"{architecture}: feed-forward blocks"
                    let denseParams = found |> Seq.sumBy (fun struct (_, b) -> count b.Input + count b.Output)
                    Expect.isTrue (model.state_dict().Keys |> Seq.exists (fun k -> k.Contains denseName)) $"{architecture}: HF's FFN names before"
                    let layers = upcycleAll model options kind
                    Expect.isEmpty (FeedForward.Blocks(model)) $"{architecture}: every FFN replaced"
                    let keys = model.state_dict().Keys |> List.ofSeq
                    Expect.isFalse (keys |> List.exists (fun k -> k.Contains denseName)) $"{architecture}: no dense FFN matrix left ({denseName})"
                    if architecture.StartsWith "Bert" then
                        Expect.isFalse (keys |> List.exists (fun k -> Regex.IsMatch(k, @"layer\.\d+\.output\.dense"))) "BERT: output.dense dropped"
                        Expect.isTrue (keys |> List.exists (fun k -> k.EndsWith "layer.0.output.LayerNorm.weight")) "BERT: the add & norm stays"
                        Expect.isTrue (keys |> List.exists (fun k -> k.EndsWith "layer.0.feed_forward.router.weight")) "BERT: the MoE sits at feed_forward"
                    let moeParams = layers |> List.sumBy (fun (_, l) -> count l)
                    Expect.equal (count model) (before - denseParams + moeParams) $"{architecture}: parameters = base − dense FFN + MoE"
                    let actual = model.forward(inputs).Logits
                    Expect.isLessThan (relativeError actual expected) tolerance $"{architecture}, {kind}: same logits as the dense model"
        }

        test "MoeStep reads padding from attention_mask (encoder) and from the labels (decoder); what padded tokens hold changes no loss" {
            let model = loadFixture "T5ForConditionalGeneration"
            let layers = upcycleAll model (MoeOptions(Experts = 4, TopK = 2, Gates = GateMode.Normalized)) ExpertKind.Mpo
            for i, (_, l) in List.indexed layers do perturbExperts l (7 * i) 0.3
            let inputs = t5Inputs ()
            let run (inputs: ModelInputs) =
                use step = MoeStep.Begin(model, inputs)
                model.forward(inputs) |> ignore
                step.Loads
            let loads = run inputs
            Expect.equal loads.Count 5 "five layers ran"
            let encoderTokens = inputs.AttentionMask.sum().item<int64>()
            let decoderTokens = inputs.Labels.ne(torch.tensor(-100L)).sum().item<int64>()
            Expect.isLessThan encoderTokens (inputs.InputIds.numel()) "the fixture has encoder padding"
            Expect.isLessThan decoderTokens (inputs.Labels.numel()) "and decoder padding"
            for load in loads do
                let expected = if load.Layer.StartsWith "decoder." then decoderTokens else encoderTokens
                Expect.equal load.Tokens expected $"{load.Layer}: real tokens"
                Expect.equal (Array.sum load.Routed) (2L * expected) $"{load.Layer}: two choices per real token"
                Expect.equal load.Calls 1 "one call"
            // Other ids at the padded positions: the real tokens' states, hence every loss, stay the same.
            let ids = torch.where(inputs.AttentionMask.eq(torch.tensor(0L)), torch.full_like(inputs.InputIds, (55L).ToScalar()), inputs.InputIds)
            let labels = inputs.Labels
            let repadded = run (ModelInputs(ids, AttentionMask = inputs.AttentionMask, Labels = labels))
            for a, b in Seq.zip loads repadded do
                expectClose 1e-6 b.BalanceLoss a.BalanceLoss $"{a.Layer}: balance loss"
                expectClose 1e-6 b.ZLoss a.ZLoss $"{a.Layer}: z-loss"
                Expect.sequenceEqual b.Routed a.Routed $"{a.Layer}: loads"
            // Without masks every position counts, and the loads change.
            let unmasked = run (ModelInputs(ids, DecoderInputIds = (model :?> T5ForConditionalGeneration).ShiftRight(labels)))
            Expect.equal unmasked.[0].Tokens (inputs.InputIds.numel()) "no mask: all positions"
            // ALBERT shares its layer across depth: one MoE layer, one call per depth.
            let albert = loadFixture "AlbertForMaskedLM"
            upcycleAll albert (MoeOptions.Mpoe 2) ExpertKind.Dense |> ignore
            let albertInputs = encoderInputs "AlbertForMaskedLM"
            use step = MoeStep.Begin(albert, albertInputs)
            albert.forward(albertInputs) |> ignore
            for load in step.Loads do
                Expect.equal load.Calls 3 $"{load.Layer}: three depths"
                Expect.equal load.Tokens (3L * albertInputs.AttentionMask.sum().item<int64>()) "real tokens at every depth"
        }

        test "the auxiliary losses are added to the training loss by default (α·balance + β·z, averaged over layers), logged, and switched off on request" {
            for adds in [ true; false ] do
                let model = loadFixture "T5ForConditionalGeneration"
                let options = MoeOptions(Experts = 4, AddAuxiliaryLosses = adds, BalanceLossCoefficient = 0.05, ZLossCoefficient = 0.002)
                upcycleAll model options ExpertKind.Mpo |> ignore
                model.train()
                let inputs = t5Inputs ()
                use step = MoeStep.Begin(model, inputs)
                let outputs = model.forward(inputs)
                let total = step.AddTo(LossOutput(outputs.Loss, 10L))
                let loads = step.Loads
                let expectedAux = loads |> Seq.averageBy (fun l -> 0.05 * l.BalanceLoss + 0.002 * l.ZLoss)
                let task = outputs.Loss.ToDouble()
                if adds then expectClose 1e-6 (total.Loss.ToDouble()) (task + expectedAux) "task + α·B + β·Z"
                else Expect.equal (total.Loss.ToDouble()) task "switched off: the task loss alone"
                let c = total.Components
                expectClose 1e-6 (c.["moe_aux_loss"].ToDouble()) (if adds then expectedAux else 0.0) "what was added"
                expectClose 1e-6 (c.["moe_balance_loss"].ToDouble()) (loads |> Seq.averageBy (fun l -> l.BalanceLoss)) "balance logged either way"
                expectClose 1e-6 (c.["moe_z_loss"].ToDouble()) (loads |> Seq.averageBy (fun l -> l.ZLoss)) "z logged either way"
                Expect.equal (c.["moe_dropped_fraction"].ToDouble()) 0.0 "dropless"
                Expect.isGreaterThanOrEqual (loads |> Seq.map (fun l -> l.BalanceLoss) |> Seq.min) (1.0 - 1e-6) "balance loss ≥ 1 (1 = balanced)"
                Expect.equal total.Tokens 10L "the caller's token count"
                if adds then
                    step.AuxiliaryLoss().backward()
                    for struct (name, p) in model.named_parameters() do
                        if name.EndsWith "router.weight" then Expect.isNotNull p.grad $"{name}: the balance loss trains the router"
        }

        test "no memory kept across steps (megablocks#119): MoE training steps leave the live tensor count flat and no layer attached" {
            let model = loadFixture "T5ForConditionalGeneration"
            let layers = upcycleAll model (MoeOptions(Experts = 4, CapacityFactor = 1.25, Gates = GateMode.Probability)) ExpertKind.Mpo
            model.train()
            let inputs = t5Inputs ()
            let parameters = [ for p in model.parameters() -> p ]
            let live = ResizeArray<int64>()
            let trainStep () =
                use scope = torch.NewDisposeScope()
                use moe = MoeStep.Begin(model, inputs)
                let loss = moe.AddTo(LossOutput(model.forward(inputs).Loss)).Loss
                loss.backward()
            for step in 1 .. 16 do
                trainStep ()
                for p in parameters do p.grad <- null
                if step >= 4 then live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount)
                // Detached: a training forward outside a step is refused again.
                Expect.throwsT<InvalidOperationException> (fun () ->
                    use scope = torch.NewDisposeScope()
                    (snd layers.[0]).forward(torch.zeros(1L, 24L)) |> ignore) "no step attached"
            Expect.equal (Seq.max live) (Seq.min live) $"live tensors flat from step 4 to 16 (min {Seq.min live}, max {Seq.max live})"
        }

        test "the trainer trains an MPOE T5 with the auxiliary losses in its loss and logs them in metrics.jsonl" {
            let dir = Directory.CreateTempSubdirectory("mpo-moe-train-").FullName
            try
                let model = loadFixture "T5ForConditionalGeneration"
                upcycleAll model (MoeOptions.Mpoe 4) ExpertKind.Mpo |> ignore
                let inputs = t5Inputs ()
                let batches = BatchSource.Create(4, Func<int, int, ModelInputs>(fun _ i ->
                    ModelInputs((inputs.InputIds + torch.tensor(7L * int64 i)).remainder((96L).ToScalar()), AttentionMask = inputs.AttentionMask, Labels = inputs.Labels)))
                let loss =
                    Func<ModelInputs, LossOutput>(fun b ->
                        use moe = MoeStep.Begin(model, b)
                        moe.AddTo(LossOutput(model.forward(b).Loss, b.InputIds.numel())))
                let options = TrainerOptions(OutputFolder = dir, MaxSteps = 5L, LearningRate = 3e-3, LoggingSteps = 1L, Seed = Nullable 5L)
                use trainer = new Trainer<ModelInputs>(model, options, batches, loss)
                let result = trainer.Run()
                Expect.isLessThan (Seq.last result.Losses) (Seq.head result.Losses) "the loss falls"
                let records = MetricsLog.Read(Path.Combine(dir, MetricsLog.FileName)) |> Seq.filter (fun r -> r.ContainsKey "loss") |> List.ofSeq
                Expect.equal records.Length 5 "a line per update"
                for r in records do
                    for key in [ "moe_aux_loss"; "moe_balance_loss"; "moe_z_loss"; "moe_dropped_fraction" ] do
                        Expect.isTrue (r.ContainsKey key) $"{key} logged"
            finally
                Directory.Delete(dir, true)
        }
    ]
