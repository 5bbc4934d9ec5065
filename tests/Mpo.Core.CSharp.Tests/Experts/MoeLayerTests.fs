/// The MoE feed-forward layer: upcycling, grouped execution against a per-token loop, dropped tokens, unrouted
/// experts, the one shared central tensor, the cost model, bad input.
module Mpo.Core.Tests.MoeLayerTests

open System
open System.IO
open Expecto
open TorchSharp
open Mpo.Contraction
open Mpo.Decomposition
open Mpo.Experts
open Mpo.Layers
open Mpo.Models
open Mpo.Tuning
open Mpo.Models.Blocks
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.ExpertFixtures

let firstBlock (model: torch.nn.Module) =
    let struct (path, block) = FeedForward.Blocks(model).[0]
    path, block

/// The per-token oracle: for every token, Σ over its kept choices of gate · (W_out(e)·act(W_in(e)·x + b_in) + b_out),
/// with each expert's weights read back as dense matrices and applied one token at a time in float64.
let perTokenReference (moe: MoeFeedForward) (activation: Func<Tensor, Tensor>) (x: Tensor) (plan: RoutingPlan) =
    use _ = torch.no_grad()
    let n = int x.shape.[0]
    let k = int plan.Experts.shape.[1]
    let experts = plan.Experts.data<int64>().ToArray()
    let kept = plan.Kept.``to``(torch.int64).data<int64>().ToArray()
    let gates = floats plan.Gates
    let dense (m: ExpertMatrices) e =
        let w = m.Weight(e).detach().``to``(torch.float64)
        let b = match m.Bias(e) with null -> torch.zeros([| w.shape.[0] |], dtype = torch.float64) | b -> b.detach().``to``(torch.float64)
        w, b
    let rows =
        [| for t in 0 .. n - 1 ->
            let xt = x.[t].``to``(torch.float64)
            let mutable y = torch.zeros([| int64 moe.Output.OutFeatures |], dtype = torch.float64)
            for j in 0 .. k - 1 do
                if kept.[t * k + j] <> 0L then
                    let e = int experts.[t * k + j]
                    let wi, bi = dense moe.Input e
                    let wo, bo = dense moe.Output e
                    let h = activation.Invoke(wi.matmul(xt) + bi)
                    y <- y + (wo.matmul(h) + bo) * torch.tensor(gates.[t * k + j], dtype = torch.float64)
            y |]
    torch.stack(rows)

[<Tests>]
let tests =
    testSequenced <| testList "Experts.MoeFeedForward" [
        test "upcycling: every expert starts as the pre-trained matrices (dense copies bit for bit, MPO experts to round-off); the router is new" {
            let model = loadFixture "T5ForConditionalGeneration"
            let _, block = firstBlock model
            let struct (wi, _) = LinearWeight.Of(block.Input, "wi")
            let struct (wo, _) = LinearWeight.Of(block.Output, "wo")
            let dense = MoeFeedForward.Upcycle(block, MoeOptions.Switch 4, ExpertKind.Dense)
            for e in 0 .. 3 do
                Expect.isTrue (sameBits (dense.Input.Weight e) wi) $"dense expert {e}: wi copied"
                Expect.isTrue (sameBits (dense.Output.Weight e) wo) $"dense expert {e}: wo copied"
                Expect.isFalse (dense.Input.Weight(e).Handle = wi.Handle) "a copy, not the same tensor"
            let mpo = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 4, ExpertKind.Mpo)
            for e in 0 .. 3 do
                Expect.isLessThan (relativeError (mpo.Input.Weight e) wi) 1e-5 $"MPO expert {e}: wi"
                Expect.isLessThan (relativeError (mpo.Output.Weight e) wo) 1e-5 $"MPO expert {e}: wo"
            // A matrix a tuner already decomposed is shared as it is (its cores, not a new decomposition).
            let path, _ = firstBlock model
            let f = MpoFactorization([| 2; 5; 4 |], [| 2; 3; 4 |])
            let mpoWi = MpoLinear.FromLinear(block.Input :?> TorchSharp.Modules.Linear, f, TruncationSpec.MaxBond 6)
            ModuleSurgery.Replace(model, path + ".wi", mpoWi) |> ignore
            let _, decomposed = firstBlock model
            let shared = MoeFeedForward.Upcycle(decomposed, MoeOptions.Mpoe 2, ExpertKind.Mpo)
            let bank = shared.Input :?> MpoExpertMatrices
            Expect.equal bank.Factorization f "the tuner's factors"
            Expect.sequenceEqual bank.Bonds mpoWi.Bonds "its truncated bonds"
            for e in 0 .. 1 do
                for k in 0 .. 2 do Expect.isTrue (sameBits (bank.Cores(e).[k]) mpoWi.Cores.[k]) $"expert {e}, core {k}: the MpoLinear's own"
            Expect.sequenceEqual dense.router.weight.shape [| 4L; 24L |] "router [n, d]"
            Expect.isNull dense.router.bias "Switch's router has no bias"
            Expect.isNotNull mpo.router.bias "MPOE's router has one"
        }

        test "grouped execution equals a per-token loop over the same routing (top-2, capacity dropping, padding, biases, GPT-2's gelu)" {
            for kind in [ ExpertKind.Dense; ExpertKind.Mpo ] do
                for priority in [ TokenPriority.Position; TokenPriority.RouterProbability ] do
                    use scope = torch.NewDisposeScope()
                    let model = loadFixture "GPT2LMHeadModel"
                    let _, block = firstBlock model
                    let options = MoeOptions(Experts = 4, TopK = 2, Gates = GateMode.Normalized, CapacityFactor = 0.5, Priority = priority)
                    let moe = MoeFeedForward.Upcycle(block, options, kind)
                    perturbExperts moe 5 0.5
                    moe.eval()
                    let x = gaussian 21 [ 2L; 9L; 32L ] torch.float32
                    let mask = torch.tensor([| 1L; 1L; 1L; 1L; 1L; 1L; 1L; 0L; 0L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L |]).reshape(2L, 9L)
                    use step = MoeStep.Begin(moe, ModelInputs(mask, AttentionMask = mask))
                    let y = moe.forward(x)
                    let flat = x.reshape(-1L, 32L)
                    let plan = Routing.Route(moe.router.forward(flat), 2, 0.5, 0, priority, GateMode.Normalized, mask.reshape(-1L).``to``(torch.ScalarType.Bool))
                    let load = step.Loads.[0]
                    Expect.isLessThan (Array.sum load.Kept) (Array.sum load.Routed) "some choices dropped"
                    Expect.isGreaterThan load.DroppedTokens 0L "some tokens lost both choices"
                    Expect.equal load.Tokens 16L "16 real tokens"
                    let keptPerExpert = [| for e in 0L .. 3L -> plan.Experts.eq(torch.tensor(e)).logical_and(plan.Kept).sum().item<int64>() |]
                    Expect.sequenceEqual load.Kept keptPerExpert "kept per expert"
                    let reference = perTokenReference moe block.Activation flat plan
                    Expect.isLessThan (relativeError (y.reshape(-1L, 32L)) reference) 1e-5 $"{kind}, {priority}: grouped = per token"
        }

        test "a dropped token gets nothing from the MoE block (not x·p): T5's layer output is its input, bit for bit" {
            let model = loadFixture "T5ForConditionalGeneration"
            let path, block = firstBlock model
            let options = MoeOptions(Experts = 4, CapacityFactor = 0.3, Gates = GateMode.Probability)
            let moe = MoeFeedForward.Upcycle(block, options, ExpertKind.Dense)
            ModuleSurgery.Replace(model, path, moe) |> ignore
            let layerFF = ModuleSurgery.Find(model, path.Substring(0, path.LastIndexOf '.')) :?> T5LayerFF
            let x = gaussian 3 [ 2L; 9L; 24L ] torch.float32
            let out = layerFF.forward(x)
            let normed = layerFF.layer_norm.forward(x)
            let plan = Routing.Route(moe.router.forward(normed.reshape(-1L, 24L)), 1, 0.3, 0, TokenPriority.Position, GateMode.Probability)
            let dropped = plan.Kept.any(1L).logical_not().data<bool>().ToArray()
            Expect.isGreaterThan (dropped |> Array.filter id |> Array.length) 5 "capacity ⌈0.3·18/4⌉ = 2 per expert drops most tokens"
            let moeRows = moe.forward(normed).reshape(-1L, 24L)
            let xs, outs = x.reshape(-1L, 24L), out.reshape(-1L, 24L)
            for t in 0 .. 17 do
                if dropped.[t] then
                    Expect.isTrue (moeRows.[t].eq(torch.tensor(0.0f)).all().item<bool>()) $"token {t}: the MoE row is zero"
                    Expect.isTrue (sameBits outs.[t] xs.[t]) $"token {t}: the residual carries it unchanged"
                else
                    Expect.isFalse (sameBits outs.[t] xs.[t]) $"token {t} was computed"
        }

        test "an expert that receives no tokens gets no gradient (undefined, not zero) and AdamW leaves it untouched, weight decay on" {
            for architecture, kind in [ "GPT2LMHeadModel", ExpertKind.Dense; "T5ForConditionalGeneration", ExpertKind.Mpo ] do
                let model = loadFixture architecture
                let _, block = firstBlock model
                let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 4, kind)
                noGrad (fun () -> moe.router.bias.copy_(torch.tensor([| 0.0f; 0.0f; 0.0f; -1e4f |])) |> ignore)
                moe.train()
                let before = parameters moe
                let x = gaussian 8 [ 3L; 5L; int64 moe.Input.InFeatures ] torch.float32
                let loss =
                    use step = MoeStep.Begin(moe)
                    let y = moe.forward(x)
                    Expect.equal step.Loads.[0].Kept.[3] 0L "expert 3 is never chosen"
                    Expect.isGreaterThan (step.Loads.[0].Kept |> Array.filter (fun c -> c > 0L) |> Array.length) 1 "several experts are"
                    step.AddTo(LossOutput(y.square().mean())).Loss
                loss.backward()
                for struct (name, p) in moe.named_parameters() do
                    if name.Contains ".experts.3." then Expect.isNull p.grad $"{name}: gradient undefined"
                    elif name.Contains "central" || name.Contains "router" then Expect.isNotNull p.grad $"{name}: gradient from every routed token"
                let optimizer = new AdamW(ParameterGroups.Build(moe, 1e-2, 0.1))
                optimizer.Step()
                let after = parameters moe
                for KeyValue(name, p) in after do
                    if name.Contains ".experts.3." then
                        Expect.isTrue (sameBits p before.[name]) $"{name}: not decayed, not moved"
                        Expect.isFalse (optimizer.State.ContainsKey name) $"{name}: no optimizer state"
                    elif name.Contains ".experts.0." && not (name.EndsWith "bias") then
                        Expect.isFalse (sameBits p before.[name]) $"{name}: updated"
        }

        test "one shared central tensor per matrix: registered once, read by every expert, survives .to(float64) as one object, gets every expert's gradient" {
            let model = loadFixture "T5ForConditionalGeneration"
            let _, block = firstBlock model
            let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 3, ExpertKind.Mpo)
            let centrals () = [ for struct (name, _) in moe.named_parameters() do if MpoLayer.IsCentral name then yield name ]
            Expect.equal (centrals ()) [ "wi.central"; "wo.central" ] "two central tensors, one per matrix"
            let keys = moe.state_dict().Keys |> List.ofSeq
            Expect.equal (keys |> List.filter (fun k -> k.EndsWith ".central")) [ "wi.central"; "wo.central" ] "the state dict holds each once"
            let wi = moe.Input :?> MpoExpertMatrices
            let aux = wi.Factorization.CoreCount - 1
            Expect.equal (keys |> List.filter (fun k -> k.StartsWith "wi.experts.") |> List.length) (3 * aux) "aux tensors per expert"
            let sameCentral () =
                for e in 0 .. 2 do
                    Expect.equal (wi.Cores(e).[wi.Factorization.CentralIndex].Handle) wi.Central.Handle $"expert {e} reads the shared central tensor"
            sameCentral ()
            moe.``to``(torch.float64) |> ignore
            Expect.equal (centrals ()) [ "wi.central"; "wo.central" ] "still two after .to(float64)"
            Expect.equal wi.Central.dtype torch.float64 "converted"
            sameCentral ()
            let before = [ for e in 0 .. 2 -> wi.Weight(e).detach().clone() ]
            noGrad (fun () -> wi.Central.mul_(torch.tensor(2.0, dtype = torch.float64)) |> ignore)
            for e in 0 .. 2 do
                Expect.isLessThan (relativeError (wi.Weight e) (before.[e] * torch.tensor(2.0, dtype = torch.float64))) 1e-12 $"expert {e} sees the change"
            // Every expert's tokens reach the one tensor: its gradient is the sum of the experts' own.
            let x = gaussian 4 [ 6L; 24L ] torch.float64
            let outputs = [ for e in 0 .. 2 -> wi.Forward(e, x.narrow(0L, int64 (2 * e), 2L)).sum() ]
            let separate = [ for o in outputs -> torch.autograd.grad([| o |], [| wi.Central :> Tensor |], retain_graph = true).[0] ]
            (outputs |> List.reduce (+)).backward()
            Expect.isLessThan (relativeError wi.Central.grad (separate |> List.reduce (+))) 1e-12 "Σ of the three experts' gradients"
            // Freezing sees one owner.
            wi.FreezeCentral()
            Expect.isFalse wi.Central.requires_grad "frozen"
            let trained = [ for g in ParameterGroups.Build(moe, 1e-3, 0.0) do for struct (n, _) in g.Parameters -> n ]
            Expect.isFalse (List.contains "wi.central" trained) "a frozen shared central tensor is in no optimizer group"
            Expect.isTrue (List.contains "wo.central" trained) "the other one still trains"
        }

        test "a checkpoint of an MPOE model stores each shared central tensor once, and loads back bit for bit" {
            let dir = Directory.CreateTempSubdirectory("mpo-moe-").FullName
            try
                let model = loadFixture "T5ForConditionalGeneration"
                let layers = upcycleAll model (MoeOptions.Mpoe 3) ExpertKind.Mpo
                Expect.equal layers.Length 5 "2 encoder + 3 decoder FFNs"
                for i, (_, moe) in List.indexed layers do perturbExperts moe (100 * i) 0.2
                model.Save dir
                use ckpt = Mpo.Checkpoints.CheckpointFolder.Open dir
                let names = List.ofSeq ckpt.TensorNames
                Expect.equal (names |> List.filter (fun n -> n.EndsWith ".central") |> List.length) 10 "5 layers × 2 matrices, each central once"
                Expect.isEmpty (names |> List.filter (fun n -> n.EndsWith ".wi.weight" || n.EndsWith ".wo.weight")) "no dense FFN left"
                let again = loadFixture "T5ForConditionalGeneration"
                upcycleAll again (MoeOptions.Mpoe 3) ExpertKind.Mpo |> ignore
                again.LoadWeights(ckpt) |> ignore
                let inputs = t5Inputs ()
                Expect.isTrue (sameBits (model.forward(inputs).Logits) (again.forward(inputs).Logits)) "same logits"
            finally
                Directory.Delete(dir, true)
        }

        test "the cost model picks each expert's contraction by its token count; both paths agree" {
            let model = loadFixture "T5ForConditionalGeneration"
            let _, block = firstBlock model
            let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 2, ExpertKind.Mpo)
            let wi = moe.Input :?> MpoExpertMatrices
            for tokens in [ 1L; 4L; 64L; 4096L ] do
                for training in [ true; false ] do
                    Expect.equal (wi.PathFor(tokens, training)) (CostModel.Choose(wi.Factorization, wi.Bonds, tokens, training)) $"{tokens} tokens"
            let x = gaussian 9 [ 7L; 24L ] torch.float32
            wi.Path <- ContractionPath.Reconstruct
            let a = wi.Forward(1, x)
            wi.Path <- ContractionPath.Factorized
            let b = wi.Forward(1, x)
            Expect.isLessThan (relativeError b a) 1e-5 "same result"
        }

        test "the router: float32 logits for a float16 model (float64 stays), multiplicative jitter only in training, within 1 ± ε, from torch's seeded generator" {
            let router = new Router(4L, 4, hasBias = false, jitterNoise = 0.1)
            noGrad (fun () -> router.weight.copy_(torch.eye(4L)) |> ignore)
            let x = torch.ones([| 50L; 4L |])
            router.eval()
            Expect.isTrue (sameBits (router.forward x) x) "eval: no noise"
            router.train()
            let draw seed = torch.random.manual_seed(seed) |> ignore; router.forward x
            let a, b, c = draw 7L, draw 7L, draw 8L
            Expect.isTrue (sameBits a b) "same seed, same noise"
            Expect.isFalse (sameBits a c) "another seed, other noise"
            let factors = floats a
            Expect.isTrue (factors |> Array.forall (fun f -> f >= 0.9 - 1e-6 && f <= 1.1 + 1e-6)) "U(1 − ε, 1 + ε)"
            Expect.isGreaterThan (Array.max factors - Array.min factors) 0.1 "spread over the interval"
            let half = new Router(4L, 3)
            half.``to``(torch.float16) |> ignore
            half.eval()
            Expect.equal (half.forward(torch.ones([| 2L; 4L |], dtype = torch.float16)).dtype) torch.float32 "float16 model, float32 logits"
            half.``to``(torch.float64) |> ignore
            Expect.equal (half.forward(torch.ones([| 2L; 4L |], dtype = torch.float64)).dtype) torch.float64 "float64 stays float64"
        }

        test "bad input: impossible options name the field, NaN router logits and a training forward outside a MoeStep are errors, masks must fit" {
            let model = loadFixture "T5ForConditionalGeneration"
            let _, block = firstBlock model
            let check (options: MoeOptions) (field: string) =
                let e = throwsWith<ArgumentException> [ $"MoeOptions.{field}" ] (fun () -> MoeFeedForward.Upcycle(block, options, ExpertKind.Dense) |> ignore)
                Expect.equal e.ParamName field $"ParamName {field}"
            check (MoeOptions(Experts = 4, TopK = 5)) "TopK"
            check (MoeOptions(Experts = 0)) "Experts"
            check (MoeOptions(CapacityFactor = 0.0)) "CapacityFactor"
            check (MoeOptions(CapacityFactor = -1.0)) "CapacityFactor"
            check (MoeOptions(CapacityFactor = nan)) "CapacityFactor"
            check (MoeOptions(EvalCapacityFactor = 0.0)) "EvalCapacityFactor"
            check (MoeOptions(TopK = 2, Gates = GateMode.StraightThrough)) "Gates"
            check (MoeOptions(JitterNoise = 1.5)) "JitterNoise"
            check (MoeOptions(BalanceLossCoefficient = -0.1)) "BalanceLossCoefficient"
            let moe = MoeFeedForward.Upcycle(block, MoeOptions.Mpoe 4, ExpertKind.Dense)
            let x = (gaussian 1 [ 2L; 3L; 24L ] torch.float32).reshape(-1L).index_fill(0L, torch.tensor([| 29L |]), (nan).ToScalar()).reshape(2L, 3L, 24L)
            throwsWith<ArgumentException> [ "router logits"; "NaN" ] (fun () -> moe.forward(x) |> ignore) |> ignore
            moe.train()
            throwsWith<InvalidOperationException> [ "outside a MoeStep"; "AddAuxiliaryLosses" ] (fun () -> moe.forward(gaussian 2 [ 2L; 3L; 24L ] torch.float32) |> ignore) |> ignore
            let quiet = MoeFeedForward.Upcycle(block, MoeOptions(Experts = 4, AddAuxiliaryLosses = false), ExpertKind.Dense)
            quiet.train()
            quiet.forward(gaussian 2 [ 2L; 3L; 24L ] torch.float32) |> ignore   // switched off: nothing to lose
            let badMask = torch.ones([| 2L; 4L |], dtype = torch.int64)
            use step = MoeStep.Begin(moe, ModelInputs(badMask, AttentionMask = badMask))
            throwsWith<ArgumentException> [ "attention_mask"; "[2,3]"; "[2,4]" ] (fun () -> moe.forward(gaussian 2 [ 2L; 3L; 24L ] torch.float32) |> ignore) |> ignore
            throwsWith<InvalidOperationException> [ "still open" ] (fun () -> MoeStep.Begin(moe) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "MoeOptions.Experts is 4"; "the router has 3" ] (fun () ->
                let r = new Router(24L, 3)
                new MoeFeedForward(MoeOptions(Experts = 4), r, "wi", moe.Input, "wo", moe.Output, block.Activation) |> ignore) |> ignore
        }
    ]
