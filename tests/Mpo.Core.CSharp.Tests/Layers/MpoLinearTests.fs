module Mpo.Core.Tests.MpoLinearTests

open System
open Expecto
open TorchSharp
open Mpo.Decomposition
open Mpo.Contraction
open Mpo.Layers
open Mpo.Core.Tests.Support

let factors = MpoFactorization([|2;3;4;2|], [|2;4;3;2|])

let denseLinear seed =
    let linear = torch.nn.Linear(48L, 48L, dtype = torch.float64)
    use _ = torch.no_grad()
    use w = compressible factors 0.7 seed torch.float64
    linear.weight.copy_(w) |> ignore
    linear.bias.copy_(gaussian (seed + 1) [ 48L ] torch.float64) |> ignore
    linear

[<Tests>]
let tests =
    testList "Layers.MpoLinear" [
        test "parameter names say their role: central, aux0.., bias" {
            use layer = MpoLinear.FromLinear(denseLinear 1, factors)
            let names = layer.named_parameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq
            Expect.equal names (set [ "central"; "aux0"; "aux1"; "aux2"; "bias" ]) "names"
            Expect.isTrue (MpoLayer.IsCentral "bert.encoder.layer.0.attention.self.query.central") "dotted path" }

        test "full bonds: same outputs as the dense layer on every path" {
            use linear = denseLinear 2
            use layer = MpoLinear.FromLinear(linear, factors)
            use x = gaussian 3 [ 5L; 48L ] torch.float64
            use expected = linear.forward(x)
            for path in [ ContractionPath.Reconstruct; ContractionPath.Factorized; ContractionPath.Auto ] do
                layer.Path <- path
                Expect.isLessThan (relativeError (layer.forward x) expected) 1e-10 $"{path}" }

        test "moving to another dtype converts the cores the layer computes with (no stale parameters)" {
            use linear = denseLinear 5
            use layer = MpoLinear.FromLinear(linear, factors)
            layer.``to``(torch.float32) |> ignore
            Expect.equal layer.Central.dtype torch.float32 "central converted"
            Expect.allEqual (layer.Cores |> Seq.map (fun c -> c.dtype)) torch.float32 "every core converted"
            use x = gaussian 6 [ 3L; 48L ] torch.float32
            use expected = linear.forward(x.``to``(torch.float64))
            Expect.isLessThan (relativeError (layer.forward x) expected) 1e-5 "float32 forward" }

        test "merge back to dense equals the reconstruction and the original layer" {
            use linear = denseLinear 4
            use layer = MpoLinear.FromLinear(linear, factors)
            use merged = layer.Merge()
            Expect.isLessThan (relativeError merged.weight (layer.Weight())) 1e-14 "merge = reconstruction"
            Expect.isLessThan (relativeError merged.weight linear.weight) 1e-10 "= original weight"
            Expect.isLessThan (relativeError merged.bias linear.bias) 1e-15 "bias" }

        test "frozen central tensor: gradients reach only the auxiliary tensors and the bias" {
            use layer = MpoLinear.FromLinear(denseLinear 5, factors)
            layer.FreezeCentral()
            use x = gaussian 6 [ 4L; 48L ] torch.float64
            for path in [ ContractionPath.Reconstruct; ContractionPath.Factorized ] do
                layer.zero_grad()
                layer.Path <- path
                layer.forward(x).square().sum().backward()
                Expect.isNull (box layer.Central.grad) $"{path}: no gradient for the central tensor"
                for aux in layer.Auxiliary do
                    Expect.isNotNull (box aux.grad) $"{path}: auxiliary gradient"
                    Expect.isGreaterThan (aux.grad.abs().sum().item<float>()) 0.0 "non-zero"
            let count = Mpo.Tuning.ParameterCounting.Count layer
            Expect.equal (count.Total - count.Trainable) (layer.Central.numel()) "only the central tensor is frozen" }

        test "an optimizer step with a frozen central tensor leaves it bit-identical" {
            use layer = MpoLinear.FromLinear(denseLinear 7, factors)
            layer.FreezeCentral()
            use before = layer.Central.detach().clone()
            let aux0 = layer.Auxiliary |> Seq.head
            use auxBefore = aux0.detach().clone()
            let optimizer = torch.optim.AdamW(layer.parameters(), lr = 0.01)
            use x = gaussian 8 [ 4L; 48L ] torch.float64
            layer.forward(x).square().sum().backward()
            optimizer.step() |> ignore
            Expect.isTrue ((before).eq(layer.Central).all().item<bool>()) "central unchanged"
            Expect.isFalse ((auxBefore).eq(aux0).all().item<bool>()) "auxiliary moved" }

        test "truncate in place re-gauges trained cores; error = report; the same parameter objects hold the new shapes" {
            use layer = MpoLinear.FromLinear(denseLinear 9, factors)
            // "train": perturb the cores so they leave the canonical gauge
            use _ = torch.no_grad()
            for (c: Modules.Parameter) in layer.Cores do c.add_(gaussian 10 (List.ofArray c.shape) torch.float64 * 0.01) |> ignore
            use before = layer.Weight()
            let handles = layer.Cores |> Seq.map id |> Array.ofSeq
            let report = layer.Truncate(TruncationSpec.MaxBond 6)
            use after = layer.Weight()
            Expect.equal (List.ofSeq layer.Bonds) (List.ofArray report.Bonds) "bonds as reported"
            Expect.isTrue (layer.Bonds |> Array.forall (fun d -> d <= 6)) "capped"
            expectClose 1e-9 (frobenius after before) report.ActualError.Value "measured error"
            Expect.isLessThanOrEqual report.ActualError.Value (report.ErrorBound * (1.0 + 1e-9)) "within the bound"
            let live = layer.parameters() |> Array.ofSeq
            for h in handles do
                Expect.isTrue (live |> Array.exists (fun p -> obj.ReferenceEquals(p, h))) "same Parameter objects"
            Expect.equal (layer.Central.shape.[0], layer.Central.shape.[3]) (int64 layer.Bonds.[layer.CentralIndex], int64 layer.Bonds.[layer.CentralIndex + 1]) "shapes follow" }

        test "an SGD optimizer built before truncation updates the truncated tensors" {
            use layer = MpoLinear.FromLinear(denseLinear 11, factors)
            let optimizer = torch.optim.SGD(layer.parameters(), 0.1)
            layer.Truncate(TruncationSpec.MaxBond 4) |> ignore
            use before = layer.Central.detach().clone()
            use x = gaussian 12 [ 4L; 48L ] torch.float64
            layer.forward(x).square().sum().backward()
            optimizer.step() |> ignore
            Expect.equal layer.Central.shape before.shape "shape kept"
            Expect.isFalse ((before).eq(layer.Central).all().item<bool>()) "the optimizer moved the live (truncated) tensor" }

        test "AdamW after an in-place truncation: every re-gauged core starts fresh, also those whose shape did not change" {
            // A 5-core layer cut at one central bond only: the central tensor and aux1 change shape, aux0, aux2 and
            // aux3 keep theirs but are re-gauged (a new basis), so moments kept for them would push in stale directions.
            let f = MpoFactorization([|2;2;3;2;2|], [|2;3;2;2;2|])
            use w = compressible f 0.6 21 torch.float64
            use layer = MpoLinear.FromWeight(w, gaussian 22 [ int64 f.Rows ] torch.float64, f)
            let named () = [ for struct (n, p) in layer.named_parameters () -> n, p ]
            let optimizer = new Mpo.Training.AdamW([ Mpo.Training.ParameterGroup("all", 1e-3, 0.0, [| for n, p in named () -> struct (n, p) |]) ])
            use x = gaussian 23 [ 6L; int64 f.Cols ] torch.float64
            let backward () =
                layer.zero_grad()
                layer.forward(x).sin().sum().backward()
            for _ in 1 .. 3 do
                backward ()
                optimizer.Step()
            let shapes () = [ for n, p in named () -> n, List.ofArray p.shape ]
            let shapesBefore = shapes ()
            use aux0Before = layer.Cores.[0].detach().clone()
            let bonds = layer.Bonds
            let central = layer.CentralIndex
            let cut = [| for b in 1 .. f.CoreCount - 1 -> if b = central then bonds.[b] / 2 else bonds.[b] |]
            layer.Truncate(TruncationSpec.PerBond cut) |> ignore
            let unchanged = [ for (n, before), (_, after) in List.zip shapesBefore (shapes ()) do if before = after && n <> "bias" then yield n ]
            Expect.containsAll unchanged [ "aux0"; "aux2"; "aux3" ] "aux0, aux2, aux3 keep their shapes"
            Expect.isGreaterThan (relativeError layer.Cores.[0] aux0Before) 1e-3 "but aux0 was re-gauged"
            // the trainer's refresh after surgery (same objects, same shapes) must not keep their moments either
            optimizer.Rebind([ Mpo.Training.ParameterGroup("all", 1e-3, 0.0, [| for n, p in named () -> struct (n, p) |]) ]) |> ignore
            // the next update of every core is a first update: equal to a fresh optimizer's from the same values
            let copies = [ for n, p in named () -> n, new Modules.Parameter(p.detach().clone()) ]
            use reference = new Mpo.Training.AdamW([ Mpo.Training.ParameterGroup("all", 1e-3, 0.0, [| for n, p in copies -> struct (n, p) |]) ])
            backward ()
            for (n, p), (_, c) in List.zip (named ()) copies do c.grad <- p.grad.clone()
            optimizer.Step()
            reference.Step()
            for (n, p), (_, c) in List.zip (named ()) copies do
                if n <> "bias" then
                    Expect.equal optimizer.State.[n].Step 1L $"{n}: state restarted"
                    Expect.isTrue (p.eq(c).all().item<bool>()) $"{n}: first-update step, as a fresh optimizer's"
            Expect.equal optimizer.State.["bias"].Step 4L "the bias was not touched by the truncation: its state is kept" }

        test "bias of the wrong shape is refused" {
            use w = gaussian 1 [ 48L; 48L ] torch.float64
            Expect.throwsT<ArgumentException> (fun () -> MpoLinear.FromWeight(w, torch.zeros(47L, dtype = torch.float64), factors) |> ignore) "bias [47]" }

        test "Squeeze (no measurement) cuts one unit of a trained layer at exactly its smallest Schmidt value, as Truncate does" {
            let f = MpoFactorization([| 2; 4; 2 |], [| 4; 2; 3 |])
            use w = compressible f 0.5 21 torch.float64
            use layer = MpoLinear.FromWeight(w, null, f)
            use twin = MpoLinear.FromWeight(w, null, f)
            let train () =
                use _ = torch.no_grad()
                for a, b in Seq.zip layer.Cores twin.Cores do
                    use step = gaussian 22 (List.ofArray a.shape) torch.float64 * 0.05
                    a.add_(step) |> ignore
                    b.add_(step) |> ignore
            train ()
            // re-gauge without cutting, so the stored spectra are the trained matrix's own Schmidt values
            layer.Truncate(TruncationSpec.PerBond(layer.Bonds.[1 .. layer.Bonds.Length - 2])) |> ignore
            twin.Truncate(TruncationSpec.PerBond(twin.Bonds.[1 .. twin.Bonds.Length - 2])) |> ignore
            let bond = layer.CentralIndex   // the bond right of the central tensor
            let smallest = layer.Spectra.[bond - 1] |> Array.last
            use before = layer.Weight()
            let wanted = layer.Bonds.[1 .. layer.Bonds.Length - 2]
            wanted.[bond - 1] <- wanted.[bond - 1] - 1
            layer.Squeeze(TruncationSpec.PerBond wanted)
            let report = twin.Truncate(TruncationSpec.PerBond wanted)
            use after = layer.Weight()
            expectClose 1e-9 (frobenius after before) smallest "one bond, one unit: the error is that bond's dropped Schmidt value"
            Expect.equal layer.Bonds twin.Bonds "same bonds as Truncate"
            Expect.isLessThan (relativeError after (twin.Weight())) 1e-12 "same matrix as Truncate"
            expectClose 1e-9 report.ActualError.Value smallest "Truncate measures the same error" }
    ]
