/// Routing as pure functions against a plain-loop oracle, and the MoE bug checklist items that live in the routing
/// arithmetic (padding, f before dropping, priority, z-loss on logits).
module Mpo.Core.Tests.RoutingTests

open System
open Expecto
open TorchSharp
open Mpo.Experts
open Mpo.Core.Tests.Support

type Tensor = torch.Tensor

let floats (t: Tensor) = t.detach().``to``(torch.float64).contiguous().data<float>().ToArray()
let longs (t: Tensor) = t.``to``(torch.int64).contiguous().data<int64>().ToArray()
let bools (t: Tensor) = t.``to``(torch.int64).contiguous().data<int64>().ToArray() |> Array.map (fun v -> v <> 0L)
let rows (n: int) (m: int) (flat: 'a[]) = Array.init n (fun i -> Array.sub flat (i * m) m)

/// GShard/Switch dispatch written as loops over tokens: choices by descending probability (ties to the lower
/// index), a queue per expert filled choice-major in token priority order, kept while the queue is under capacity.
let referenceRoute (probs: float[][]) (valid: bool[]) (k: int) (capacity: int64) (priority: TokenPriority) (mode: GateMode) =
    let n = probs.Length
    let e = probs.[0].Length
    let byProbability (p: float[]) a b = let c = compare p.[b] p.[a] in if c <> 0 then c else compare a b
    let choices = probs |> Array.map (fun p -> [| 0 .. e - 1 |] |> Array.sortWith (byProbability p) |> Array.truncate k)
    let top = Array.init n (fun t -> choices.[t] |> Array.map (fun c -> probs.[t].[c]))
    let order =
        match priority with
        | TokenPriority.Position -> [| 0 .. n - 1 |]
        | _ -> [| 0 .. n - 1 |] |> Array.sortWith (fun a b -> let c = compare top.[b].[0] top.[a].[0] in if c <> 0 then c else compare a b)
    let queue = Array.zeroCreate<int64> e
    let kept = Array.init n (fun _ -> Array.create k false)
    for j in 0 .. k - 1 do
        for t in order do
            if valid.[t] then
                let ex = choices.[t].[j]
                if queue.[ex] < capacity then kept.[t].[j] <- true
                queue.[ex] <- queue.[ex] + 1L
    let gates =
        Array.init n (fun t ->
            let g =
                match mode with
                | GateMode.Normalized -> let s = Array.sum top.[t] in top.[t] |> Array.map (fun p -> p / s)
                | GateMode.StraightThrough -> top.[t] |> Array.map (fun _ -> 1.0)
                | _ -> top.[t]
            Array.init k (fun j -> if kept.[t].[j] then g.[j] else 0.0))
    choices, kept, gates

/// Switch's balance loss and ST-MoE's z-loss as sums over tokens.
let referenceBalance (probs: float[][]) (choices: int[][]) (valid: bool[]) =
    let e = probs.[0].Length
    let real = [| for t in 0 .. probs.Length - 1 do if valid.[t] then yield t |]
    if real.Length = 0 then 0.0
    else
        let k = choices.[0].Length
        let f = Array.init e (fun ex -> float (real |> Array.sumBy (fun t -> choices.[t] |> Array.filter ((=) ex) |> Array.length)) / float (real.Length * k))
        let p = Array.init e (fun ex -> (real |> Array.sumBy (fun t -> probs.[t].[ex])) / float real.Length)
        float e * Array.fold2 (fun acc a b -> acc + a * b) 0.0 f p

let referenceZ (logits: float[][]) (valid: bool[]) =
    let real = [| for t in 0 .. logits.Length - 1 do if valid.[t] then yield logits.[t] |]
    if real.Length = 0 then 0.0
    else
        real |> Array.averageBy (fun l -> let m = Array.max l in let lse = m + log (l |> Array.sumBy (fun v -> exp (v - m))) in lse * lse)

let logitsOf (seed: int) (n: int) (e: int) = gaussian seed [ int64 n; int64 e ] torch.float32 * torch.tensor(2.0f)

let maskOf (seed: int) (n: int) (fraction: float) =
    let rng = Random(seed)
    let m = Array.init n (fun _ -> rng.NextDouble() >= fraction)
    m, torch.tensor(m)

[<Tests>]
let tests =
    testList "Experts.Routing" [
        test "capacity = max(min, ⌈c·k·tokens/n⌉); +∞ drops nothing; bad factors and top-k are errors naming the argument" {
            Expect.equal (Routing.Capacity(100L, 8, 1, 1.25)) 16L "⌈15.625⌉"
            Expect.equal (Routing.Capacity(16L, 8, 1, 1.0)) 2L "balanced batch fits exactly"
            Expect.equal (Routing.Capacity(10L, 4, 2, 1.0)) 5L "top-2 doubles the slots"
            Expect.equal (Routing.Capacity(10L, 4, 2, 1.0, 8)) 8L "minimum capacity"
            Expect.equal (Routing.Capacity(0L, 4, 1, 2.0)) 0L "no tokens"
            Expect.equal (Routing.Capacity(10L, 4, 1, Double.PositiveInfinity)) Int64.MaxValue "dropless"
            for bad in [ 0.0; -1.0; nan ] do
                let e = throwsWith<ArgumentOutOfRangeException> [ "capacity factor" ] (fun () -> Routing.Capacity(10L, 4, 1, bad) |> ignore)
                Expect.equal e.ParamName "capacityFactor" $"names capacityFactor for {bad}"
            let e = throwsWith<ArgumentOutOfRangeException> [ "top-k" ] (fun () -> Routing.Capacity(10L, 4, 5, 1.0) |> ignore)
            Expect.equal e.ParamName "topK" "names topK"
        }

        test "Route equals the loop oracle: choices, kept, gates, for both priorities, top-1/top-2, dropless and tight capacities, with padding" {
            let mutable cases = 0
            for seed in 0 .. 5 do
                for n, e in [ 1, 1; 7, 3; 33, 8; 20, 2 ] do
                    for k in [ 1; 2 ] do
                        if k <= e then
                            for factor in [ 0.5; 1.0; 1.25; Double.PositiveInfinity ] do
                                for priority in [ TokenPriority.Position; TokenPriority.RouterProbability ] do
                                    for mode in [ GateMode.Probability; GateMode.Normalized ] do
                                        use scope = torch.NewDisposeScope()
                                        let logits = logitsOf (seed * 100 + n + e) n e
                                        let validArr, valid = maskOf seed n 0.3
                                        let plan = Routing.Route(logits, k, factor, 0, priority, mode, valid)
                                        let probs = rows n e (floats plan.Probabilities)
                                        // softmax itself, against exp/Σexp in float64
                                        let l = rows n e (floats logits)
                                        for t in 0 .. n - 1 do
                                            let m = Array.max l.[t]
                                            let z = l.[t] |> Array.sumBy (fun v -> exp (v - m))
                                            for x in 0 .. e - 1 do expectClose 1e-6 probs.[t].[x] (exp (l.[t].[x] - m) / z) "softmax"
                                        let real = validArr |> Array.filter id |> Array.length
                                        let capacity = Routing.Capacity(int64 real, e, k, factor)
                                        Expect.equal plan.Capacity capacity "capacity from the real tokens"
                                        let choices, kept, gates = referenceRoute probs validArr k capacity priority mode
                                        Expect.sequenceEqual (longs plan.Experts) (choices |> Array.concat |> Array.map int64) "choices"
                                        Expect.sequenceEqual (bools plan.Kept) (Array.concat kept) $"kept (n={n}, e={e}, k={k}, c={factor}, {priority})"
                                        Array.iter2 (fun a b -> expectClose 1e-6 a b "gate") (floats plan.Gates) (Array.concat gates)
                                        cases <- cases + 1
            Expect.isGreaterThan cases 300 "cases run"
        }

        test "priority really decides who is dropped: by position the earliest, by probability the most confident, first choices before second" {
            // Six tokens all prefer expert 0, increasingly confidently; capacity 2.
            let p0 = [| 0.55; 0.6; 0.65; 0.7; 0.75; 0.8 |]
            let probs = torch.tensor(Array.concat [| for p in p0 -> [| p; 1.0 - p |] |]).reshape(6L, 2L)
            let logits = probs.log()
            let keptOf priority =
                let plan = Routing.Route(logits, 1, 2.0 / 6.0 * 2.0, 0, priority, GateMode.Probability)
                Expect.equal plan.Capacity 2L "capacity 2"
                bools plan.Kept
            Expect.sequenceEqual (keptOf TokenPriority.Position) [| true; true; false; false; false; false |] "the first two tokens"
            Expect.sequenceEqual (keptOf TokenPriority.RouterProbability) [| false; false; false; false; true; true |] "the two most confident"
            // Top-2, two experts, capacity 2: the later tokens' first choices beat the earlier tokens' second choices.
            let plan = Routing.Route(torch.tensor([| 2.0; 0.0; 0.0; 2.0; 2.0; 0.0 |]).reshape(3L, 2L), 2, 2.0 / 3.0, 0, TokenPriority.Position, GateMode.Normalized)
            Expect.equal plan.Capacity 2L "capacity 2"
            // token 0: [e0 kept, e1 kept (slot 1 after token 1's first choice)]; token 1: [e1 kept, e0 dropped: slot 2];
            // token 2: [e0 kept (slot 1), e1 dropped].
            Expect.sequenceEqual (bools plan.Kept) [| true; true; true; false; true; false |] "first choices first"
            Expect.sequenceEqual (longs plan.Slots) [| 0L; 1L; 0L; 2L; 1L; 2L |] "queue places"
        }

        test "the balance loss counts f before capacity dropping (Megatron-LM#1513): all tokens on one expert still read as fully unbalanced" {
            // 8 tokens, 4 experts, every token prefers expert 0; capacity ⌈0.5·8/4⌉ = 1 keeps one of them.
            let logits = torch.tensor(Array.concat [| for t in 0 .. 7 -> [| 3.0 + 0.1 * float t; 0.0; 0.5; -1.0 |] |]).reshape(8L, 4L)
            let plan = Routing.Route(logits, 1, 0.5, 0, TokenPriority.Position, GateMode.Probability)
            Expect.equal plan.Capacity 1L "capacity 1"
            Expect.equal (bools plan.Kept |> Array.filter id |> Array.length) 1 "one token kept"
            let loss = Routing.BalanceLoss(plan.Probabilities, plan.Experts).item<float>()
            let probs = rows 8 4 (floats plan.Probabilities)
            let p0 = probs |> Array.averageBy (fun p -> p.[0])
            expectClose 1e-12 loss (4.0 * 1.0 * p0) "n · f_0 · P_0 with f_0 = 8/8, not 1/8"
            expectClose 1e-12 loss (referenceBalance probs (Array.create 8 [| 0 |]) (Array.create 8 true)) "the loop oracle"
            let afterDropping = 4.0 * (1.0 / 8.0) * p0
            Expect.isGreaterThan loss (7.0 * afterDropping) "f after dropping would read 8× smaller"
        }

        test "padding is excluded from both losses and from the counts (transformers#28505): the loss of the real rows alone, whatever the padded rows hold" {
            for seed in 0 .. 4 do
                for k in [ 1; 2 ] do
                    use scope = torch.NewDisposeScope()
                    let n, e = 24, 5
                    let logits = logitsOf (700 + seed) n e
                    let validArr, valid = maskOf (800 + seed) n 0.4
                    let plan = Routing.Route(logits, k, 1.0, 0, TokenPriority.Position, GateMode.Normalized, valid)
                    let balance = Routing.BalanceLoss(plan.Probabilities, plan.Experts, valid).item<float32>() |> float
                    let z = Routing.ZLoss(logits, valid).item<float32>() |> float
                    let probs = rows n e (floats plan.Probabilities)
                    let choices = rows n k (longs plan.Experts |> Array.map int)
                    expectClose 1e-6 balance (referenceBalance probs choices validArr) "balance vs oracle"
                    expectClose 1e-5 z (referenceZ (rows n e (floats logits)) validArr) "z vs oracle"
                    // The real rows alone give the same losses.
                    let real = torch.tensor([| for t in 0 .. n - 1 do if validArr.[t] then yield int64 t |])
                    let sub = Routing.Route(logits.index_select(0L, real), k, 1.0, 0, TokenPriority.Position, GateMode.Normalized)
                    expectClose 1e-6 (Routing.BalanceLoss(sub.Probabilities, sub.Experts).item<float32>() |> float) balance "balance of the real rows"
                    expectClose 1e-6 (Routing.ZLoss(logits.index_select(0L, real)).item<float32>() |> float) z "z of the real rows"
                    Expect.sequenceEqual (longs (Routing.RoutedCounts(plan.Experts, valid, e))) (longs (Routing.RoutedCounts(sub.Experts, torch.ones([| real.shape.[0] |], dtype = torch.ScalarType.Bool), e))) "loads of the real rows"
                    // Rewriting the padded rows changes nothing.
                    let noise = gaussian (900 + seed) [ int64 n; int64 e ] torch.float32 * torch.tensor(10.0f)
                    let rewritten = torch.where(valid.unsqueeze(1L), logits, noise)
                    let plan2 = Routing.Route(rewritten, k, 1.0, 0, TokenPriority.Position, GateMode.Normalized, valid)
                    Expect.equal (Routing.BalanceLoss(plan2.Probabilities, plan2.Experts, valid).item<float32>() |> float) balance "balance unchanged"
                    Expect.equal (Routing.ZLoss(rewritten, valid).item<float32>() |> float) z "z unchanged"
                    Expect.isFalse ((plan.Kept.logical_and(valid.unsqueeze(1L).logical_not())).any().item<bool>()) "no padded choice is kept"
                    Expect.equal plan.Capacity (Routing.Capacity(int64 (Array.filter id validArr).Length, e, k, 1.0)) "capacity from the real tokens"
        }

        test "balance loss is 1 when perfectly balanced and n when one expert takes everything with certainty; z-loss reads the logits" {
            // Uniform probabilities, round-robin choices: f = P = 1/n.
            let n, e = 12, 4
            let uniform = torch.full([| int64 n; int64 e |], (0.25).ToScalar(), dtype = torch.float64)
            let roundRobin = torch.arange(int64 n).remainder((int64 e).ToScalar()).unsqueeze(1L)
            expectClose 1e-12 (Routing.BalanceLoss(uniform, roundRobin).item<float>()) 1.0 "balanced"
            let certain = torch.zeros([| int64 n; int64 e |], dtype = torch.float64).index_fill(1L, torch.tensor([| 0L |]), (1.0).ToScalar())
            expectClose 1e-12 (Routing.BalanceLoss(certain, torch.zeros([| int64 n; 1L |], dtype = torch.int64)).item<float>()) 4.0 "collapsed"
            // Shifting every logit by c leaves the probabilities, hence routing, alone; z-loss sees it.
            let logits = logitsOf 3 n e
            let shifted = logits + torch.tensor(5.0f)
            let a, b = Routing.Route(logits, 1, 1.0, 0, TokenPriority.Position, GateMode.Probability), Routing.Route(shifted, 1, 1.0, 0, TokenPriority.Position, GateMode.Probability)
            Expect.sequenceEqual (longs a.Experts) (longs b.Experts) "same routing"
            let za, zb = Routing.ZLoss(logits).item<float32>() |> float, Routing.ZLoss(shifted).item<float32>() |> float
            expectClose 1e-4 zb (referenceZ (rows n e (floats shifted)) (Array.create n true)) "z of the shifted logits"
            Expect.isGreaterThan zb (za + 10.0) "z-loss grows with the logits' size"
        }

        test "gates: probability, renormalized top-k (sums to 1), straight-through (value 1, gradient of log p); straight-through refuses top-2" {
            let logits = (logitsOf 11 6 4).requires_grad_(true)
            let probs = logits.softmax(1L)
            let struct (_, top) = Routing.TopK(probs, 2)
            let normalized = Routing.GateValues(top, GateMode.Normalized)
            Array.iter (fun s -> expectClose 1e-6 s 1.0 "sums to 1") (floats (normalized.sum(1L)))
            let struct (_, top1) = Routing.TopK(probs, 1)
            let st = Routing.GateValues(top1, GateMode.StraightThrough)
            Array.iter (fun v -> Expect.equal v 1.0 "value 1") (floats st)
            // p / stopgrad(p) has the gradient ∇p / p = ∇log p.
            let w = gaussian 12 [ 6L; 1L ] torch.float32
            let g1 = torch.autograd.grad([| (st * w).sum() |], [| logits |], retain_graph = true).[0]
            let g2 = torch.autograd.grad([| (top1.log() * w).sum() |], [| logits |], retain_graph = true).[0]
            Expect.isLessThan (relativeError g1 g2) 1e-6 "the gradient of log p"
            throwsWith<ArgumentException> [ "top-1" ] (fun () -> Routing.GateValues(top, GateMode.StraightThrough) |> ignore) |> ignore
            // TopK: most probable first, ties to the lower index.
            let tied = torch.tensor([| 0.25; 0.25; 0.4; 0.1 |]).reshape(1L, 4L)
            let struct (e2, _) = Routing.TopK(tied, 3)
            Expect.sequenceEqual (longs e2) [| 2L; 0L; 1L |] "ties in expert order"
            let struct (e1, _) = Routing.TopK(torch.tensor([| 0.4; 0.4; 0.2 |]).reshape(1L, 3L), 1)
            Expect.sequenceEqual (longs e1) [| 0L |] "argmax tie to the lower index"
        }
    ]
