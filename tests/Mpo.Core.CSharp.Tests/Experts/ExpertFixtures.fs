/// Tiny models with MoE feed-forward blocks for the expert tests: the cross-framework fixtures (T5, GPT-2, the BERT
/// family) with every FFN upcycled in place.
module Mpo.Core.Tests.ExpertFixtures

open System.Collections.Generic
open System.IO
open TorchSharp
open Mpo.Checkpoints
open Mpo.Experts
open Mpo.Models
open Mpo.Tuning
open Mpo.Models.Blocks
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

let fixtureFolder (architecture: string) = Path.GetDirectoryName(repoFile $"tests/fixtures/models/{architecture}/config.json")
let fixtureIo architecture = SafeTensors.LoadAll(Path.Combine(fixtureFolder architecture, "io.safetensors"))

/// A fixture model in eval mode.
let loadFixture (architecture: string) =
    let struct (model, _) = PretrainedModel.Load(fixtureFolder architecture)
    model.eval()
    model

/// Replaces every feed-forward block of `model` by an MoE layer upcycled from it; returns (path, layer) in model order.
let upcycleAll (model: torch.nn.Module) (options: MoeOptions) (kind: ExpertKind) =
    [ for struct (path, block) in FeedForward.Blocks(model) ->
        let moe = MoeFeedForward.Upcycle(block, options, kind)
        ModuleSurgery.Replace(model, path, moe) |> ignore
        path, moe ]

/// The fixture batch of a decoder fixture (T5: with labels; GPT-2: ids and mask).
let t5Inputs () =
    let d = fixtureIo "T5ForConditionalGeneration"
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], Labels = d.["labels"])

let encoderInputs (architecture: string) =
    let d = fixtureIo architecture
    let tryGet key = match d.TryGetValue key with | true, t -> t | _ -> null
    ModelInputs(d.["input_ids"], AttentionMask = d.["attention_mask"], TokenTypeIds = tryGet "token_type_ids")

let floats (t: Tensor) = t.detach().``to``(torch.float64).contiguous().data<float>().ToArray()

/// Copies of every parameter by name, outside any dispose scope.
let parameters (m: torch.nn.Module) =
    dict [ for struct (name, p) in m.named_parameters() -> name, p.detach().clone().DetachFromDisposeScope() ]

let sameBits (a: Tensor) (b: Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.contiguous().bytes.ToArray() = b.contiguous().bytes.ToArray()

/// Adds seeded noise of relative size `scale` to every expert's own tensors, so experts differ (routing tests need it).
let perturbExperts (layer: MoeFeedForward) (seed: int) (scale: float) =
    use _ = torch.no_grad()
    let mutable i = 0
    for struct (name, p) in layer.named_parameters() do
        if name.Contains ".experts." then
            let noise = gaussian (seed + i) (List.ofArray p.shape) p.dtype
            p.add_(noise * torch.tensor(scale * (p.abs().mean().ToDouble() + 1e-3), dtype = p.dtype)) |> ignore
            i <- i + 1

/// Runs `f` with autograd off (for in-place edits of parameters).
let noGrad (f: unit -> unit) =
    use _ = torch.no_grad()
    f ()
