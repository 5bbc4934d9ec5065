/// Adapters: only what was trained is saved, a saved adapter loaded onto its base gives the trained model back (also
/// after squeezing), and the wrong base, a different central tensor or a mismatched tensor file are refused by name.
module Mpo.Core.Tests.AdapterTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Decomposition
open Mpo.Layers
open Mpo.Models
open Mpo.Tuning
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TunerTests

let baseFolder = Mpo.Core.Tests.ModelFixtures.folder "BertForSequenceClassification"

let config = MpoTunerConfig(Truncation = readOnlyDict [ "ffn", TruncationSpec.MaxBond 3 :> TruncationSpec ])

/// The base tuned and "trained": every trainable parameter moved by a seeded step.
let trained () =
    let struct (model, _) = PretrainedModel.Load baseFolder
    let tuned = MpoTuner(config).Apply model
    use _ = torch.no_grad ()
    let mutable seed = 100
    for struct (_, p) in model.named_parameters () do
        if p.requires_grad then
            seed <- seed + 1
            p.add_(gaussian seed (List.ofArray p.shape) torch.float32 * 0.05f) |> ignore
    tuned

let inTemp action = Mpo.Core.Tests.ModelFixtures.inTemp action

let tensorNames (path: string) =
    use file = SafeTensorsFile.Open path
    set [ for t in file.Tensors -> t.Name ]

[<Tests>]
let tests =
    testList "Tuning.Adapter" [
        test "saved: only what was trained (auxiliary tensors, biases, norms, head), hashes of the base and of each central tensor" {
            use tuned = trained ()
            inTemp (fun dir ->
                MpoAdapter.Save(tuned, dir, baseFolder)
                let trainable = set [ for struct (n, p) in tuned.Model.named_parameters () do if p.requires_grad then yield n ]
                Expect.equal (tensorNames (Path.Combine(dir, MpoAdapter.WeightsFile))) trainable "exactly the trained tensors"
                Expect.isFalse (trainable |> Set.exists MpoLayer.IsCentral) "no central tensor"
                Expect.isTrue (trainable.Contains "classifier.weight" && trainable.Contains "bert.embeddings.LayerNorm.weight") "head and norms are trained"
                let json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, MpoAdapter.ConfigFile))).AsObject()
                Expect.equal (json.["peft_type"].GetValue<string>()) "MPO" "peft_type"
                Expect.equal (json.["base_model"].["checkpoint_sha256"].GetValue<string>()) (MpoAdapter.CheckpointHash baseFolder) "base hash"
                // the base hash is the SHA-256 of the weight file (name line, then bytes), computed independently here
                use sha = Security.Cryptography.IncrementalHash.CreateHash(Security.Cryptography.HashAlgorithmName.SHA256)
                sha.AppendData(Text.Encoding.UTF8.GetBytes("model.safetensors\n"))
                sha.AppendData(File.ReadAllBytes(Path.Combine(baseFolder, "model.safetensors")))
                Expect.equal (MpoAdapter.CheckpointHash baseFolder) (Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant()) "hash of the file's bytes"
                let targets = json.["targets"].AsArray()
                Expect.equal targets.Count tuned.Targets.Count "one record per decomposed module"
                for record, target in Seq.zip targets tuned.Targets do
                    use central = (tuned.Layer target).Central.detach().contiguous()
                    let expected = Convert.ToHexString(Security.Cryptography.SHA256.HashData(central.bytes)).ToLowerInvariant()
                    Expect.equal (record.["central_sha256"].GetValue<string>()) expected $"{target.Path}: central hash") }

        test "loaded onto its base: the trained model, logits equal; a squeezed target brings its central tensor and bonds" {
            use tuned = trained ()
            let inputs = batchFor tuned.Model
            // squeeze one layer after training started: its central tensor must now travel with the adapter
            let squeezed = tuned.Targets |> Seq.find (fun t -> t.Family = MpoFamilies.Query)
            (tuned.Layer squeezed).Truncate(TruncationSpec.MaxBond 2) |> ignore
            use expected = logits tuned.Model inputs
            inTemp (fun dir ->
                MpoAdapter.Save(tuned, dir, baseFolder)
                let names = tensorNames (Path.Combine(dir, MpoAdapter.WeightsFile))
                Expect.isTrue (names.Contains(squeezed.Path + ".central")) "the squeezed central tensor is saved"
                Expect.equal (names |> Set.filter MpoLayer.IsCentral) (set [ squeezed.Path + ".central" ]) "and no other"
                use loaded = MpoAdapter.Load(baseFolder, dir)
                let layer = loaded.Layer(loaded.Targets |> Seq.find (fun t -> t.Path = squeezed.Path))
                Expect.equal (List.ofArray layer.Bonds) (List.ofArray (tuned.Layer squeezed).Bonds) "trained bonds restored"
                Expect.isLessThan (relativeError (logits loaded.Model inputs) expected) 1e-6 "same logits") }

        test "the wrong base is refused naming the adapter config and the base's weight file" {
            use tuned = trained ()
            inTemp (fun dir ->
                let adapter = Path.Combine(dir, "adapter")
                MpoAdapter.Save(tuned, adapter, baseFolder)
                // another base: the same architecture and shapes, one weight changed
                let other = Path.Combine(dir, "other-base")
                use checkpoint = CheckpointFolder.Open baseFolder
                let tensors = [ for n in checkpoint.TensorNames -> KeyValuePair(n, (if n.EndsWith "pooler.dense.bias" then checkpoint.Load(n) + 1.0f else checkpoint.Load(n))) ]
                CheckpointFolder.Save(other, tensors, checkpoint.Config)
                throwsWith<InvalidTunerConfigException> [ MpoAdapter.ConfigFile; "model.safetensors"; "not the base it was trained on" ] (fun () ->
                    MpoAdapter.Load(other, adapter) |> ignore) |> ignore) }

        test "a central tensor that differs from the one trained against, or a tensor file that does not fit, is refused by name" {
            use tuned = trained ()
            inTemp (fun dir ->
                MpoAdapter.Save(tuned, dir, baseFolder)
                let configPath = Path.Combine(dir, MpoAdapter.ConfigFile)
                let original = File.ReadAllText configPath
                let json = JsonNode.Parse(original).AsObject()
                let first = json.["targets"].AsArray().[0].AsObject()
                first.["central_sha256"] <- JsonValue.Create("00")
                first.["central_fingerprint"] <- JsonArray(JsonValue.Create(1.0), JsonValue.Create(2.0), JsonValue.Create(3.0), JsonValue.Create(4.0))
                File.WriteAllText(configPath, json.ToJsonString())
                throwsWith<InvalidTunerConfigException> [ MpoAdapter.ConfigFile; "targets[0]"; tuned.Targets.[0].Path; "central tensor" ] (fun () ->
                    MpoAdapter.Load(baseFolder, dir) |> ignore) |> ignore
                File.WriteAllText(configPath, original)
                // a weights file without the classifier
                let weights = Path.Combine(dir, MpoAdapter.WeightsFile)
                let kept = SafeTensors.LoadAll(weights) |> Seq.filter (fun kv -> kv.Key <> "classifier.weight") |> List.ofSeq
                SafeTensors.Save(weights, kept)
                throwsWith<CheckpointFormatException> [ MpoAdapter.WeightsFile; "classifier.weight" ] (fun () ->
                    MpoAdapter.Load(baseFolder, dir) |> ignore) |> ignore) }
    ]
