module Mpo.Core.Tests.ParameterGroupsTests

open System
open Expecto
open TorchSharp
open Mpo.Training
open Mpo.Core.Tests.TrainingProblems

let members (g: ParameterGroup) = [ for struct (name, _) in g.Parameters -> name ]

/// A module with HF-style names: BERT's LayerNorm, T5's layer_norm, GPT-2's ln_f (a LayerNorm known only by type),
/// a norm called plainly "norm", and MPO-style core names.
type Named() as this =
    inherit torch.nn.Module<Tensor, Tensor>("Named")
    let norms = [ for name in [ "LayerNorm"; "layer_norm"; "ln_f"; "norm" ] -> name, torch.nn.LayerNorm([| 4L |]) ]
    let dense = torch.nn.Linear(4L, 4L)
    do
        this.register_module("dense", dense)
        for name, m in norms do this.register_module(name, m)
        this.register_parameter("aux0", torch.nn.Parameter(torch.ones(2L, 2L)))
        this.register_parameter("central", torch.nn.Parameter(torch.ones(2L, 2L), requires_grad = false))
    override _.forward x = norms |> List.fold (fun h (_, m) -> m.forward h) (dense.forward x)

[<Tests>]
let tests =
    testList "Training.ParameterGroups" [
        test "HF's no-decay rule: biases and norm weights (by name or LayerNorm type) get no weight decay, nor do MPO cores; frozen parameters are left out" {
            use m = new Named()
            let groups = ParameterGroups.Build(m, 1e-3, 0.01)
            Expect.sequenceEqual [ for g in groups -> g.Name ] [ "default"; "default.no_decay" ] "two groups"
            Expect.sequenceEqual (members groups.[0]) [ "dense.weight" ] "decayed: dense weights"
            // decay on k trained cores of one matrix scales W by (1 − lr·λ)^k, not by (1 − lr·λ); MPOP used none
            Expect.equal (set (members groups.[1]))
                (set [ "aux0"; "dense.bias"; "LayerNorm.weight"; "LayerNorm.bias"; "layer_norm.weight"; "layer_norm.bias"; "ln_f.weight"; "ln_f.bias"; "norm.weight"; "norm.bias" ])
                "not decayed: MPO cores, biases and every norm's weight"
            Expect.isTrue (ParameterGroups.ExcludedFromWeightDecay("bert.encoder.layer.0.intermediate.dense.aux3")) "an auxiliary tensor by name"
            Expect.isFalse (ParameterGroups.ExcludedFromWeightDecay("model.auxiliary_head.weight")) "'aux' must be a core name"
            Expect.equal (groups.[0].WeightDecay, groups.[1].WeightDecay) (0.01, 0.0) "decay values"
            Expect.isFalse (groups |> Seq.exists (fun g -> members g |> List.contains "central")) "the frozen central tensor is in no group"
            Expect.isTrue (ParameterGroups.ExcludedFromWeightDecay("encoder.block.0.layer.1.layer_norm.weight")) "T5 by name"
            Expect.isFalse (ParameterGroups.ExcludedFromWeightDecay("transformer.h.0.ln_1.weight")) "GPT-2's ln_1 only by module type"
            Expect.isFalse (ParameterGroups.ExcludedFromWeightDecay("encoder.normalizer.weight")) "'norm' must be a whole component"
        }

        test "rules send matching parameters to their own group with their own lr and weight decay, first match wins" {
            use m = new Named()
            let rules =
                [ ParameterGroupRule("mpo_aux", (fun n -> n.StartsWith "aux"), 2e-6)
                  ParameterGroupRule("head", (fun n -> n.StartsWith "dense"), 5e-4, 0.2)
                  ParameterGroupRule("never", (fun n -> n.StartsWith "aux"), 1.0) ]
            let groups = ParameterGroups.Build(m, 1e-3, 0.01, rules)
            let byName = dict [ for g in groups -> g.Name, g ]
            Expect.sequenceEqual (members byName.["mpo_aux.no_decay"]) [ "aux0" ] "aux tensors in their group"
            Expect.equal (byName.["mpo_aux.no_decay"].LearningRate, byName.["mpo_aux.no_decay"].WeightDecay) (2e-6, 0.0) "own lr, no decay by default"
            Expect.sequenceEqual (members byName.["head"]) [ "dense.weight"; "dense.bias" ] "explicit weight decay covers the bias too"
            Expect.equal (byName.["head"].LearningRate, byName.["head"].WeightDecay) (5e-4, 0.2) "own lr and decay"
            Expect.isFalse (byName.ContainsKey "never") "a shadowed rule gets nothing (empty groups dropped)"
            Expect.isFalse (byName.ContainsKey "default") "every decayed parameter went to a rule"
            Expect.equal byName.["default.no_decay"].LearningRate 1e-3 "defaults keep the main lr"
        }
    ]
