module Mpo.Core.Tests.AdamWTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Mpo.Checkpoints
open Mpo.Training
open Mpo.Core.Tests.Support
open Mpo.Core.Tests.TrainingProblems

let parameter (values: float[]) (shape: int64[]) =
    new Modules.Parameter(torch.tensor(values, dtype = torch.float64).reshape(shape))

let group name lr wd (members: (string * Modules.Parameter) list) =
    ParameterGroup(name, lr, wd, [| for n, p in members -> struct (n, p) |])

let setGrad (p: Modules.Parameter) (values: float[]) =
    p.grad <- torch.tensor(values, dtype = torch.float64).reshape(p.shape)

let values (t: Tensor) = t.detach().``to``(torch.float64).data<float>().ToArray()

/// A fixed sequence of gradients for the save/load and reset tests.
let gradientAt (step: int) (shape: int64[]) =
    (gaussian (100 + step) (List.ofArray shape) torch.float64).data<float>().ToArray()

[<Tests>]
let tests =
    testSequenced <| testList "Training.AdamW" [
        test "two steps match the closed form (decoupled decay, bias correction, ε outside the square root)" {
            let p0 = [| 1.0; -2.0; 0.5; 3.0 |]
            // The last gradient entries are tiny, so ε (1e-8) visibly shares the denominator with √v̂ (1e-9).
            let g1 = [| 0.1; -3.0; 1e-9; 0.0 |]
            let g2 = [| 0.2; 1.0; -1e-9; 0.0 |]
            let lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
            let p = parameter p0 [| 4L |]
            use opt = new AdamW([ group "g" lr wd [ "p", p ] ], b1, b2, eps)
            setGrad p g1
            opt.Step()
            setGrad p g2
            opt.Step(0.5)
            // Loshchilov & Hutter Alg. 2 with PyTorch's ε placement, written from the formulas in float64.
            let mutable expected = Array.copy p0
            let m = Array.zeroCreate 4
            let v = Array.zeroCreate 4
            for t, (g: float[]), rate in [ 1, g1, lr; 2, g2, lr * 0.5 ] do
                for i in 0 .. 3 do
                    m.[i] <- b1 * m.[i] + (1.0 - b1) * g.[i]
                    v.[i] <- b2 * v.[i] + (1.0 - b2) * g.[i] * g.[i]
                    let mHat = m.[i] / (1.0 - b1 ** float t)
                    let vHat = v.[i] / (1.0 - b2 ** float t)
                    expected.[i] <- expected.[i] * (1.0 - rate * wd) - rate * mHat / (sqrt vHat + eps)
            let actual = values p
            for i in 0 .. 3 do
                expectClose 1e-13 actual.[i] expected.[i] $"entry {i}"
            // Entry 2 after step 1 moved by lr/11 (1e-9 / (1e-9 + 1e-8)), not by lr: ε is added after the bias correction.
            Expect.equal opt.State.["p"].Step 2L "two updates counted"
            expectClose 1e-13 (opt.State.["p"].ExpAvg.data<float>().[1]) (0.9 * 0.1 * -3.0 + 0.1 * 1.0) "first moment"
        }

        test "matches PyTorch's AdamW over six steps with three groups, a changing lr and a missing gradient" {
            let path = repoFile "tests/fixtures/adamw_reference.safetensors"
            use file = SafeTensorsFile.Open path
            let cases = JsonNode.Parse(file.Metadata.["cases"]).AsObject()
            for KeyValue(case, spec) in cases do
                let dtype = if spec.["dtype"].GetValue<string>() = "float64" then torch.float64 else torch.float32
                let load name = file.Load($"{case}.{name}")
                let names = [ "w"; "b"; "aux" ]
                let parameters = dict [ for n in names -> n, new Modules.Parameter(load $"init.{n}") ]
                let groups =
                    [ for g in spec.["groups"].AsArray() ->
                        group (g.["name"].GetValue<string>()) (g.["lr"].GetValue<float>()) (g.["weight_decay"].GetValue<float>())
                            [ for n in g.["parameters"].AsArray() -> n.GetValue<string>(), parameters.[n.GetValue<string>()] ] ]
                let betas = spec.["betas"].AsArray()
                use opt = new AdamW(groups, betas.[0].GetValue<float>(), betas.[1].GetValue<float>(), spec.["eps"].GetValue<float>())
                let mutable worst = 0.0
                for t, f in Seq.indexed (spec.["factors"].AsArray()) do
                    opt.ZeroGrad()
                    for n in names do
                        if file.Contains($"{case}.grad{t}.{n}") then parameters.[n].grad <- load $"grad{t}.{n}"
                    opt.Step(f.GetValue<float>())
                    for n in names do
                        let expected = load $"after{t}.{n}"
                        Expect.equal parameters.[n].dtype dtype "dtype kept"
                        worst <- max worst (frobenius parameters.[n] expected / max 1e-30 (expected.``to``(torch.float64).norm().ToDouble()))
                for n in names do
                    let s = opt.State.[n]
                    Expect.equal s.Step (file.Load($"{case}.step.{n}").item<int64>()) $"{case} {n}: step count (aux skipped once)"
                    Expect.isLessThan (relativeError s.ExpAvg (load $"exp_avg.{n}")) 1e-6 $"{case} {n}: exp_avg"
                    Expect.isLessThan (relativeError s.ExpAvgSq (load $"exp_avg_sq.{n}")) 1e-6 $"{case} {n}: exp_avg_sq"
                // PyTorch 1.13 (fixture) and libtorch 2.10 (here) run the same element-wise operations in the same order.
                let tolerance = if dtype = torch.float64 then 1e-15 else 1e-7
                Expect.isLessThan worst tolerance $"{case}: worst relative parameter error over all steps ({worst:E2})"
        }

        test "state saved to safetensors and loaded into a fresh optimizer continues bit for bit" {
            inTemp (fun dir ->
                let make () =
                    let w = new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32)
                    let b = new Modules.Parameter(gaussian 2 [ 4L ] torch.float32)
                    w, b, new AdamW([ group "default" 0.01 0.1 [ "w", w ]; group "default.no_decay" 0.01 0.0 [ "b", b ] ])
                let feed (w: Modules.Parameter, b: Modules.Parameter, opt: AdamW) step =
                    opt.ZeroGrad()
                    w.grad <- gaussian (10 + step) [ 3L; 4L ] torch.float32
                    if step <> 2 then b.grad <- gaussian (20 + step) [ 4L ] torch.float32
                    opt.Step(1.0 / float (step + 1))
                let (w1, b1, opt1) as first = make ()
                for s in 0 .. 2 do feed first s
                let file = Path.Combine(dir, "optimizer.safetensors")
                opt1.Save file
                let (w2, b2, opt2) as second = make ()
                use _ = torch.no_grad()
                w2.copy_(w1) |> ignore
                b2.copy_(b1) |> ignore
                opt2.Load file
                Expect.equal opt2.State.["b"].Step 2L "b skipped once"
                for s in 3 .. 5 do
                    feed first s
                    feed second s
                Expect.isTrue (bitwise w1 w2 && bitwise b1 b2) "identical parameters after three more steps"
                opt1.Dispose()
                opt2.Dispose())
        }

        test "a state file that does not fit is rejected naming the file and the tensor, and nothing is loaded" {
            inTemp (fun dir ->
                let file = Path.Combine(dir, "optimizer.safetensors")
                let w = new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32)
                let a = new Modules.Parameter(gaussian 3 [ 2L ] torch.float32)
                use opt = new AdamW([ group "default" 0.01 0.0 [ "w", w; "a", a ] ])
                w.grad <- torch.ones_like(w)
                a.grad <- torch.ones_like(a)
                opt.Step()
                opt.Save file
                // Same name, another shape.
                let w' = new Modules.Parameter(gaussian 1 [ 4L; 3L ] torch.float32)
                use other = new AdamW([ group "default" 0.01 0.0 [ "w", w'; "a", new Modules.Parameter(gaussian 3 [ 2L ] torch.float32) ] ])
                let e = throwsWith<CheckpointFormatException> [ file; "w.exp_avg"; "[3,4]" ] (fun () -> other.Load file)
                Expect.equal e.Tensor "w.exp_avg" "the tensor is named"
                Expect.equal other.State.Count 0 "nothing loaded"
                // Another learning rate: the groups differ.
                use otherLr = new AdamW([ group "default" 0.02 0.0 [ "w", new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32); "a", new Modules.Parameter(gaussian 3 [ 2L ] torch.float32) ] ])
                throwsWith<CheckpointFormatException> [ file; "group 'default': lr is 0.01 in the file and 0.02 here" ] (fun () -> otherLr.Load file) |> ignore
                // A parameter frozen since: the groups' members differ.
                use fewer = new AdamW([ group "default" 0.01 0.0 [ "w", new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32) ] ])
                throwsWith<CheckpointFormatException> [ file; "the file's parameter 'a' is not in this group" ] (fun () -> fewer.Load file) |> ignore
                // A state entry for a parameter this optimizer does not have (same groups otherwise): written by hand.
                let tensors = SafeTensors.LoadAll file
                tensors.Add("ghost.exp_avg", torch.zeros(2L))
                use meta = SafeTensorsFile.Open file
                let metadata = Dictionary(meta.Metadata)
                meta.Dispose()
                SafeTensors.Save(file, tensors, metadata)
                use same = new AdamW([ group "default" 0.01 0.0 [ "w", new Modules.Parameter(gaussian 1 [ 3L; 4L ] torch.float32); "a", new Modules.Parameter(gaussian 3 [ 2L ] torch.float32) ] ])
                throwsWith<CheckpointFormatException> [ file; "ghost.exp_avg"; "not a trainable parameter" ] (fun () -> same.Load file) |> ignore)
        }

        test "frozen parameters are refused, and a parameter without a gradient is left untouched" {
            let frozen = new Modules.Parameter(torch.ones(3L), requires_grad = false)
            throwsWith<ArgumentException> [ "'c'"; "does not require gradients" ] (fun () ->
                new AdamW([ group "g" 0.1 0.1 [ "c", frozen ] ]) |> ignore) |> ignore
            let p = new Modules.Parameter(torch.ones(3L))
            let before = p.detach().clone()
            use opt = new AdamW([ group "g" 0.1 0.5 [ "p", p ] ])
            opt.Step()
            Expect.isTrue (bitwise p before) "no gradient: no decay, no update"
            Expect.equal opt.State.Count 0 "no state created"
            p.grad <- torch.ones(3L)
            opt.Step(1.0, HashSet [ "p" ])
            Expect.isTrue (bitwise p before) "skipped by name: untouched"
            Expect.equal opt.State.Count 0 "skipping creates no state"
        }

        test "ResetState makes the next update a first update; Rebind keeps state only for the same, unchanged parameter" {
            let make () = new Modules.Parameter(gaussian 5 [ 2L; 3L ] torch.float64)
            let p = make ()
            let q = new Modules.Parameter(gaussian 6 [ 3L ] torch.float64)
            use opt = new AdamW([ group "g" 0.01 0.1 [ "p", p; "q", q ] ])
            for s in 0 .. 2 do
                p.grad <- gaussian (30 + s) [ 2L; 3L ] torch.float64
                q.grad <- gaussian (40 + s) [ 3L ] torch.float64
                opt.Step()
            opt.ResetState [ "p" ]
            Expect.isFalse (opt.State.ContainsKey "p") "p forgotten"
            Expect.equal opt.State.["q"].Step 3L "q kept"
            // p's next update equals a fresh optimizer's first update from the same values.
            let fresh = new Modules.Parameter(p.detach().clone())
            use reference = new AdamW([ group "g" 0.01 0.1 [ "p", fresh ] ])
            let g = gaussian 50 [ 2L; 3L ] torch.float64
            p.grad <- g.clone()
            q.grad <- null
            fresh.grad <- g.clone()
            opt.Step()
            reference.Step()
            Expect.isTrue (bitwise p fresh) "first-update behaviour after reset"
            // Truncation replaces q by a smaller parameter: Rebind drops q's state and keeps p's.
            let q2 = new Modules.Parameter(gaussian 7 [ 2L ] torch.float64)
            let dropped = opt.Rebind([ group "g" 0.01 0.1 [ "p", p; "q", q2 ] ])
            Expect.sequenceEqual dropped [ "q" ] "only q dropped"
            Expect.equal opt.State.["p"].Step 1L "p's state kept"
            // Re-shaping in place without telling the optimizer is caught, naming the parameter.
            using (torch.no_grad()) (fun _ -> p.set_(torch.zeros(3L, 2L, dtype = torch.float64)) |> ignore)
            p.grad <- torch.ones(3L, 2L, dtype = torch.float64)
            throwsWith<InvalidOperationException> [ "'p'"; "ResetState" ] (fun () -> opt.Step()) |> ignore
        }
    ]
