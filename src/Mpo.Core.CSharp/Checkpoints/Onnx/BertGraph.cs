using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Models;
using Onnx;

namespace Mpo.Checkpoints.Onnx;

/// <summary>One Hugging Face tensor found in an ONNX graph: its HF name, the initializer holding it, and whether the
/// initializer is stored <c>[in, out]</c> (a MatMul's right operand) and so must be transposed to HF's <c>[out, in]</c>.</summary>
public sealed record MappedTensor(string Name, TensorProto Source, bool Transposed);

/// <summary>
/// The BERT encoder (Devlin et al. 2019; HF <c>BertModel</c>) recognized in an exported ONNX graph by its structure
/// alone: the token, position and segment tables are the Gathers summed before the first LayerNorm; from each
/// layer's input the three MatMuls with a weight are query, key and value by where their outputs enter attention
/// (left and right operand of the scores MatMul, right operand of the context MatMul); the attention output, FFN in
/// and FFN out projections are the MatMuls that consume the context, the post-attention LayerNorm and the
/// activation. Heads come from the Reshape targets, ε from the LayerNorm pattern, the activation from the ops
/// between the FFN projections (Erf: exact GELU), the pooler from a Tanh after a Gather of position 0.
/// Initializer names are never consulted; every float initializer must be accounted for.
/// </summary>
public sealed class BertGraph
{
    readonly OnnxGraph g;
    readonly List<MappedTensor> tensors = new();
    readonly List<double> epsilons = new();
    int heads = -1, headSize = -1, intermediate = -1;
    string? activation;

    public BertConfig Config { get; private set; } = new();
    public bool HasPooler { get; private set; }
    /// <summary>Every tensor of the HF checkpoint, embeddings first, in layer order.</summary>
    public IReadOnlyList<MappedTensor> Tensors => tensors;

    BertGraph(OnnxGraph graph) { g = graph; }

    /// <summary>Recognizes a BERT encoder in <paramref name="graph"/>.</summary>
    /// <exception cref="CheckpointFormatException">The graph is not BERT-shaped; the message names the node or value
    /// where the structure departs from BERT's.</exception>
    public static BertGraph Match(OnnxGraph graph)
    {
        var match = new BertGraph(graph);
        match.Run();
        return match;
    }

    void Run()
    {
        var (hidden, vocab, positions, types, h0) = Embeddings();
        int layers = 0;
        var h = h0;
        while (true)
        {
            var qkv = g.DataConsumers(h).Select(n => LinearAt(n, h)).Where(l => l is not null).Select(l => l!).ToList();
            bool residualOnly = qkv.Count == 0;
            if (residualOnly) break;
            if (qkv.Count != 3)
                throw g.Error($"layer {layers}: the hidden state '{h}' feeds {qkv.Count} projections with a weight ({string.Join(", ", qkv.Select(l => $"'{l.Node.Name}'"))}); a BERT layer has 3 (query, key, value)");
            h = Layer(layers, h, hidden, qkv);
            layers++;
        }
        if (layers == 0)
            throw g.Error($"the embedding output '{h0}' feeds no query/key/value projections: not a BERT encoder");
        if (!g.Outputs.Contains(h))
            throw g.Error($"the last layer's output '{h}' is not a graph output (outputs: {string.Join(", ", g.Outputs)})");
        Pooler(h, hidden);

        if (epsilons.Distinct().Count() != 1)
            throw g.Error($"the LayerNorms use different epsilons ({string.Join(", ", epsilons.Distinct())}); BERT's config has one layer_norm_eps");
        var mapped = tensors.Select(t => t.Source.Name).ToHashSet(StringComparer.Ordinal);
        var leftOver = g.Initializers.Values
            .Where(t => t.DataType == (int)TensorProto.Types.DataType.Float && OnnxGraph.Elements(t) > 1 && !mapped.Contains(t.Name))
            .Select(t => $"'{t.Name}' [{string.Join(",", t.Dims)}]").ToList();
        if (leftOver.Count > 0)
            throw g.Error($"float initializers outside the BERT structure: {string.Join(", ", leftOver.Take(10))}{(leftOver.Count > 10 ? $" and {leftOver.Count - 10} more" : "")}");

        Config = new BertConfig
        {
            VocabSize = vocab,
            HiddenSize = hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            IntermediateSize = intermediate,
            HiddenAct = activation!,
            MaxPositionEmbeddings = positions,
            TypeVocabSize = types,
            // float32 constant → the decimal it was written as (1e-12, not 9.999999960041972e-13)
            LayerNormEps = double.Parse(((float)epsilons[0]).ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture),
            PadTokenId = 0,
        };
        Config.Validate(g.Source);
    }

    // ---- embeddings -------------------------------------------------------------------------------------------

    (int Hidden, int Vocab, int Positions, int Types, string Output) Embeddings()
    {
        const string ids = "input_ids";
        if (!g.Inputs.Contains(ids))
            throw g.Error($"the graph has no input '{ids}' (inputs: {string.Join(", ", g.Inputs)}); not an exported BERT encoder");
        var wordGathers = g.Consumers(ids).Where(n => n.OpType == "Gather" && n.Input[1] == ids && g.Initializer(n.Input[0]) is { Dims.Count: 2 }).ToList();
        if (wordGathers.Count != 1)
            throw g.Error($"expected one Gather of a 2-D table by '{ids}' (the token embedding), found {wordGathers.Count}");
        var word = wordGathers[0];
        var wordTable = g.Initializer(word.Input[0])!;
        int vocab = (int)wordTable.Dims[0], hidden = (int)wordTable.Dims[1];

        // the sum of the tables: follow Adds forward to the LayerNorm, then collect the Gathers feeding that Add tree
        var sum = word.Output[0];
        while (g.OnlyConsumer(sum) is { OpType: "Add" } add) sum = add.Output[0];
        var leaves = new List<NodeProto>();
        void Collect(string value)
        {
            var p = g.Producer(value) ?? throw g.Error($"the embedding sum has an operand '{value}' that no node produces");
            if (p.OpType == "Add") { Collect(p.Input[0]); Collect(p.Input[1]); }
            else if (p.OpType == "Gather" && g.Initializer(p.Input[0]) is { Dims.Count: 2 } table && table.Dims[1] == hidden
                     && OnnxGraph.IntAttribute(p, "axis", 0) == 0) leaves.Add(p);
            else throw g.Error(p, $"the embedding sum before the first LayerNorm should add only table lookups; this operand is a {p.OpType}");
        }
        Collect(sum);
        NodeProto? type = null, position = null;
        foreach (var leaf in leaves.Where(l => l != word))
        {
            if (leaf.Input[1] == "token_type_ids")
            {
                if (type is not null) throw g.Error(leaf, "a second segment (token_type_ids) table");
                type = leaf;
            }
            else
            {
                if (position is not null) throw g.Error(leaf, $"a fourth embedding table (position table already '{position.Name}')");
                CheckPositionIndices(leaf);
                position = leaf;
            }
        }
        if (type is null) throw g.Error($"no Gather by 'token_type_ids' among the embeddings (the segment table); inputs: {string.Join(", ", g.Inputs)}");
        if (position is null) throw g.Error("no position table among the embeddings summed before the first LayerNorm");
        var positionTable = g.Initializer(position.Input[0])!;
        var typeTable = g.Initializer(type.Input[0])!;
        var norm = MatchNorm(sum, "embeddings");
        Add("embeddings.word_embeddings.weight", wordTable);
        Add("embeddings.position_embeddings.weight", positionTable);
        Add("embeddings.token_type_embeddings.weight", typeTable);
        AddNorm("embeddings.LayerNorm", norm, hidden);
        return (hidden, vocab, (int)positionTable.Dims[0], (int)typeTable.Dims[0], norm.Output);
    }

    /// <summary>BERT looks positions up as 0, 1, …, n−1: a Slice from 0 of a constant arange (the position_ids buffer),
    /// or such a constant itself.</summary>
    void CheckPositionIndices(NodeProto gather)
    {
        var source = gather.Input[1];
        var slice = g.Producer(source);
        TensorProto? data = g.Constant(source);
        if (data is null && slice is { OpType: "Slice" })
        {
            data = g.Constant(slice.Input[0]);
            var start = slice.Input.Count > 1 ? g.Scalar(slice.Input[1]) : OnnxGraph.IntsAttribute(slice, "starts")?.FirstOrDefault();
            if (start is not 0.0)
                throw g.Error(slice, $"position indices are sliced from {start?.ToString() ?? "a computed start"}; BERT's start at 0");
        }
        if (data is null)
            throw g.Error(gather, $"the position indices '{source}' are neither a constant nor a Slice of one; BERT's are 0..n−1");
        var values = g.Integers(data);
        for (int i = 0; i < values.Length; i++)
            if (values[i] != i)
                throw g.Error(gather, $"position index {i} is {values[i]}; BERT's positions are 0..n−1");
    }

    // ---- one layer ----------------------------------------------------------------------------------------------

    string Layer(int index, string h, int hidden, List<Linear> qkv)
    {
        string prefix = $"encoder.layer.{index}.";
        Linear? query = null, key = null, value = null;
        NodeProto? scores = null, context = null;
        var reshapes = new List<NodeProto>();
        foreach (var l in qkv)
        {
            RequireShape(l, hidden, hidden, $"layer {index} attention projection");
            var path = Through(l.Output);
            reshapes.AddRange(path.Reshapes);
            if (path.Node.OpType != "MatMul")
                throw g.Error(path.Node, $"layer {index}: projection '{l.Node.Name}' should reach an attention MatMul through Reshape/Transpose");
            if (path.Input == 0 && Same(path.Perm, 0, 2, 1, 3)) { query = Assign(query, l, "query"); scores = Assign(scores, path.Node, "scores"); }
            else if (path.Input == 1 && Same(path.Perm, 0, 2, 3, 1)) { key = Assign(key, l, "key"); scores = Assign(scores, path.Node, "scores"); }
            else if (path.Input == 1 && Same(path.Perm, 0, 2, 1, 3)) { value = Assign(value, l, "value"); context = Assign(context, path.Node, "context"); }
            else
                throw g.Error(path.Node, $"layer {index}: projection '{l.Node.Name}' enters as operand {path.Input} with layout [{string.Join(",", path.Perm ?? Array.Empty<int>())}], neither query, key nor value");
        }
        if (query is null || key is null || value is null || scores is null || context is null)
            throw g.Error($"layer {index}: the projections of '{h}' are not one query, one key and one value");

        // heads from the Reshape targets [batch, seq, heads, head_size]
        foreach (var r in reshapes)
        {
            var (h_, d_) = HeadShape(r);
            if (h_ * d_ != hidden) throw g.Error(r, $"layer {index}: reshapes to {h_} heads of {d_}, which is not the hidden size {hidden}");
            if (heads >= 0 && (h_ != heads || d_ != headSize))
                throw g.Error(r, $"layer {index}: {h_} heads of {d_}, but elsewhere {heads} of {headSize}");
            heads = h_;
            headSize = d_;
        }
        if (heads < 0) throw g.Error(scores, $"layer {index}: no Reshape into heads on the way to attention");

        // scores → scale by 1/√d → + mask → softmax → context
        var scale = g.OnlyConsumer(scores.Output[0]) ?? throw g.Error(scores, "the attention scores should feed one scaling node");
        var factor = scale.OpType switch
        {
            "Div" when scale.Input[0] == scores.Output[0] => g.Scalar(scale.Input[1]) is { } c ? 1 / c : (double?)null,
            "Mul" => g.Scalar(Other(scale, scores.Output[0])),
            _ => null,
        } ?? throw g.Error(scale, "expected the attention scores divided by a constant √head_size");
        if (Math.Abs(factor * Math.Sqrt(headSize) - 1) > 1e-4)
            throw g.Error(scale, $"scales attention by {factor:G6}; BERT uses 1/√{headSize} = {1 / Math.Sqrt(headSize):G6}");
        var masked = g.OnlyConsumer(scale.Output[0]);
        if (masked is not { OpType: "Add" } || !DependsOn(Other(masked, scale.Output[0]), "attention_mask"))
            throw g.Error(masked ?? scale, "the scaled scores should get the padding bias computed from 'attention_mask' added");
        var softmax = g.OnlyConsumer(masked.Output[0]);
        if (softmax is not { OpType: "Softmax" } || OnnxGraph.IntAttribute(softmax, "axis", -1) is not (-1 or 3))
            throw g.Error(softmax ?? masked, "the masked scores should go through a Softmax over the keys");
        if (g.OnlyConsumer(softmax.Output[0]) != context || context.Input[0] != softmax.Output[0])
            throw g.Error(softmax, "the attention weights should be the left operand of the MatMul with the values");

        // context → [batch, seq, hidden] → output projection → + h → LayerNorm
        var merge = Through(context.Output[0]);
        if (!Same(merge.Perm, 0, 2, 1, 3) || LinearAt(merge.Node, merge.Value) is not { } output)
            throw g.Error(merge.Node, $"layer {index}: the attention context should be transposed back and projected by a MatMul with a weight");
        RequireShape(output, hidden, hidden, $"layer {index} attention output");
        var h1 = MatchNorm(Residual(output, h, $"layer {index} attention output"), $"layer {index} attention output");

        // feed-forward: intermediate → activation → output → + h1 → LayerNorm
        var ffnIn = g.DataConsumers(h1.Output).Select(n => LinearAt(n, h1.Output)).Where(l => l is not null).ToList();
        if (ffnIn.Count != 1)
            throw g.Error($"layer {index}: the attention LayerNorm output '{h1.Output}' feeds {ffnIn.Count} projections; BERT's feed-forward has one");
        var inter = ffnIn[0]!;
        int width = (int)(inter.StoredInOut ? inter.Weight.Dims[1] : inter.Weight.Dims[0]);
        RequireShape(inter, width, hidden, $"layer {index} intermediate");
        if (intermediate >= 0 && width != intermediate)
            throw g.Error(inter.Node, $"layer {index}: feed-forward width {width}, earlier layers {intermediate}");
        intermediate = width;
        var (ffnOut, act) = Activation(inter, hidden, index);
        if (activation is not null && act != activation)
            throw g.Error(ffnOut.Node, $"layer {index}: activation {act}, earlier layers {activation}");
        activation = act;
        var h2 = MatchNorm(Residual(ffnOut, h1.Output, $"layer {index} output"), $"layer {index} output");

        AddLinear(prefix + "attention.self.query", query);
        AddLinear(prefix + "attention.self.key", key);
        AddLinear(prefix + "attention.self.value", value);
        AddLinear(prefix + "attention.output.dense", output);
        AddNorm(prefix + "attention.output.LayerNorm", h1, hidden);
        AddLinear(prefix + "intermediate.dense", inter);
        AddLinear(prefix + "output.dense", ffnOut);
        AddNorm(prefix + "output.LayerNorm", h2, hidden);
        return h2.Output;
    }

    T Assign<T>(T? slot, T value, string role) where T : class =>
        slot is null || ReferenceEquals(slot, value) ? value
        : throw g.Error($"two candidates for the attention {role}");

    /// <summary>The ops from the intermediate projection's output to the next projection: the activation.</summary>
    (Linear Output, string Activation) Activation(Linear inter, int hidden, int index)
    {
        var seen = new HashSet<string>();
        var ops = new List<NodeProto>();
        var frontier = new Queue<string>();
        frontier.Enqueue(inter.Output);
        Linear? next = null;
        while (frontier.Count > 0)
        {
            var v = frontier.Dequeue();
            foreach (var n in g.DataConsumers(v))
            {
                if (LinearAt(n, v) is { } l) { if (next is not null && next.Node != l.Node) throw g.Error(n, $"layer {index}: two projections after the intermediate one"); next = l; continue; }
                if (!seen.Add(n.Name + "|" + n.Output[0])) continue;
                if (n.OpType is not ("Div" or "Mul" or "Add" or "Sub" or "Erf" or "Tanh" or "Pow" or "Sigmoid" or "Relu"))
                    throw g.Error(n, $"layer {index}: {n.OpType} between the feed-forward projections; BERT has only its activation there");
                ops.Add(n);
                frontier.Enqueue(n.Output[0]);
            }
        }
        if (next is null) throw g.Error(inter.Node, $"layer {index}: the intermediate projection is not followed by the output projection");
        RequireShape(next, hidden, intermediate, $"layer {index} output");
        var types = ops.Select(o => o.OpType).ToHashSet();
        string act = types.Contains("Erf") ? "gelu"
            : types.Contains("Tanh") && types.Contains("Pow") ? "gelu_new"
            : types.Contains("Sigmoid") ? "silu"
            : types.SetEquals(new[] { "Relu" }) ? "relu"
            : throw g.Error(inter.Node, $"layer {index}: unrecognized activation ({string.Join(", ", ops.Select(o => o.OpType))})");
        if (act == "gelu")
        {
            // x·½·(1 + erf(x/√2)): the argument of Erf is x scaled by 1/√2
            var erf = ops.First(o => o.OpType == "Erf");
            var arg = g.Producer(erf.Input[0]);
            double? s = arg?.OpType switch
            {
                "Div" => g.Scalar(arg.Input[1]) is { } c ? 1 / c : null,
                "Mul" => g.Scalar(Other(arg, inter.Output)),
                _ => null,
            };
            if (s is null || Math.Abs(s.Value * Math.Sqrt(2) - 1) > 1e-5)
                throw g.Error(erf, $"layer {index}: Erf of x·{s?.ToString("G6") ?? "?"}; exact GELU takes erf(x/√2)");
        }
        return (next, act);
    }

    // ---- pooler -------------------------------------------------------------------------------------------------

    void Pooler(string h, int hidden)
    {
        foreach (var gather in g.DataConsumers(h).Where(n => n.OpType == "Gather" && n.Input[0] == h))
        {
            if (OnnxGraph.IntAttribute(gather, "axis", 0) != 1 || g.Scalar(gather.Input[1]) is not 0.0)
                throw g.Error(gather, "gathers from the last hidden state, but not position 0 along the sequence (BERT's pooler reads [CLS])");
            var dense = g.DataConsumers(gather.Output[0]).Select(n => LinearAt(n, gather.Output[0])).SingleOrDefault(l => l is not null)
                ?? throw g.Error(gather, "the [CLS] vector is not projected (BERT's pooler is dense + tanh)");
            RequireShape(dense, hidden, hidden, "pooler");
            if (g.OnlyConsumer(dense.Output) is not { OpType: "Tanh" })
                throw g.Error(dense.Node, "the pooler projection is not followed by Tanh");
            AddLinear("pooler.dense", dense);
            HasPooler = true;
        }
    }

    // ---- pieces -------------------------------------------------------------------------------------------------

    /// <summary>A linear layer: MatMul(x, W) + b (W an initializer stored [in, out]) or Gemm(x, W, b).</summary>
    sealed record Linear(NodeProto Node, TensorProto Weight, bool StoredInOut, TensorProto Bias, string Output);

    /// <summary>The linear layer <paramref name="node"/> computes on <paramref name="x"/>, or null when it is none.</summary>
    Linear? LinearAt(NodeProto node, string x)
    {
        if (node.OpType == "MatMul" && node.Input[0] == x && g.Initializer(node.Input[1]) is { Dims.Count: 2 } w)
        {
            var add = g.OnlyConsumer(node.Output[0]);
            var bias = add is { OpType: "Add" } ? g.Initializer(Other(add, node.Output[0])) : null;
            if (bias is null || bias.Dims.Count != 1 || bias.Dims[0] != w.Dims[1])
                throw g.Error(node, "a projection without its bias (BERT's linear layers all have one)");
            return new Linear(node, w, true, bias, add!.Output[0]);
        }
        if (node.OpType == "Gemm" && node.Input[0] == x && g.Initializer(node.Input[1]) is { Dims.Count: 2 } gw)
        {
            bool transB = OnnxGraph.IntAttribute(node, "transB", 0) == 1;
            if (OnnxGraph.IntAttribute(node, "transA", 0) != 0 || OnnxGraph.FloatAttribute(node, "alpha", 1) != 1 || OnnxGraph.FloatAttribute(node, "beta", 1) != 1)
                throw g.Error(node, "a Gemm with transA, alpha or beta set is not a plain linear layer");
            var bias = node.Input.Count > 2 ? g.Initializer(node.Input[2]) : null;
            long outFeatures = transB ? gw.Dims[0] : gw.Dims[1];
            if (bias is null || bias.Dims.Count != 1 || bias.Dims[0] != outFeatures)
                throw g.Error(node, "a projection without its bias (BERT's linear layers all have one)");
            return new Linear(node, gw, !transB, bias, node.Output[0]);
        }
        return null;
    }

    void RequireShape(Linear l, long outFeatures, long inFeatures, string what)
    {
        long o = l.StoredInOut ? l.Weight.Dims[1] : l.Weight.Dims[0], i = l.StoredInOut ? l.Weight.Dims[0] : l.Weight.Dims[1];
        if (o != outFeatures || i != inFeatures)
            throw g.Error(l.Node, $"{what}: weight maps {i} → {o} features, expected {inFeatures} → {outFeatures}");
    }

    /// <summary>x + sublayer(x): the Add of <paramref name="sub"/>'s output and <paramref name="residual"/>.</summary>
    string Residual(Linear sub, string residual, string what)
    {
        var add = g.OnlyConsumer(sub.Output);
        if (add is not { OpType: "Add" } || Other(add, sub.Output) != residual)
            throw g.Error(add ?? sub.Node, $"{what}: the projection should be added to the sublayer's input '{residual}' (residual connection)");
        return add.Output[0];
    }

    sealed record Norm(TensorProto Gamma, TensorProto Beta, double Epsilon, string Output);

    /// <summary>LayerNorm over the last axis: one LayerNormalization node, or the pattern opset-11/13 exporters write
    /// (x − mean) / √(mean((x − mean)²) + ε) · γ + β.</summary>
    Norm MatchNorm(string x, string what)
    {
        var consumers = g.DataConsumers(x);
        if (consumers.FirstOrDefault(n => n.OpType == "LayerNormalization" && n.Input[0] == x) is { } ln)
        {
            if (OnnxGraph.IntAttribute(ln, "axis", -1) != -1) throw g.Error(ln, $"{what}: normalizes axis {OnnxGraph.IntAttribute(ln, "axis", -1)}, not the last one");
            var gamma = ln.Input.Count > 1 ? g.Initializer(ln.Input[1]) : null;
            var beta = ln.Input.Count > 2 ? g.Initializer(ln.Input[2]) : null;
            if (gamma is null || beta is null) throw g.Error(ln, $"{what}: LayerNormalization without constant scale and bias");
            epsilons.Add(OnnxGraph.FloatAttribute(ln, "epsilon", 1e-5f));
            return new Norm(gamma, beta, epsilons[^1], ln.Output[0]);
        }
        NodeProto Expect(NodeProto? node, string op, string step) =>
            node is not null && node.OpType == op ? node : throw g.Error(node ?? g.Producer(x) ?? consumers.FirstOrDefault() ?? g.Model.Graph.Node[0],
                $"{what}: expected {op} ({step}) of the LayerNorm pattern, found {node?.OpType ?? "nothing"}");
        var mean = Expect(consumers.FirstOrDefault(n => n.OpType == "ReduceMean" && n.Input[0] == x), "ReduceMean", "the mean");
        RequireLastAxis(mean, what);
        var centered = Expect(consumers.FirstOrDefault(n => n.OpType == "Sub" && n.Input[0] == x && n.Input[1] == mean.Output[0]), "Sub", "x − mean");
        var uses = g.DataConsumers(centered.Output[0]);
        var square = Expect(uses.FirstOrDefault(n => n.OpType == "Pow"), "Pow", "squared deviation");
        if (g.Scalar(square.Input[1]) is not 2.0) throw g.Error(square, $"{what}: the deviation is raised to {g.Scalar(square.Input[1])}, not 2");
        var variance = Expect(g.OnlyConsumer(square.Output[0]), "ReduceMean", "the variance");
        RequireLastAxis(variance, what);
        var plusEps = Expect(g.OnlyConsumer(variance.Output[0]), "Add", "variance + ε");
        var eps = g.Scalar(Other(plusEps, variance.Output[0])) ?? throw g.Error(plusEps, $"{what}: ε is not a constant");
        var root = Expect(g.OnlyConsumer(plusEps.Output[0]), "Sqrt", "the standard deviation");
        var divide = Expect(uses.FirstOrDefault(n => n.OpType == "Div" && n.Input[1] == root.Output[0]), "Div", "the normalization");
        var scale = Expect(g.OnlyConsumer(divide.Output[0]), "Mul", "γ");
        var shift = Expect(g.OnlyConsumer(scale.Output[0]), "Add", "β");
        var gammaT = g.Initializer(Other(scale, divide.Output[0])) ?? throw g.Error(scale, $"{what}: γ is not an initializer");
        var betaT = g.Initializer(Other(shift, scale.Output[0])) ?? throw g.Error(shift, $"{what}: β is not an initializer");
        epsilons.Add(eps);
        return new Norm(gammaT, betaT, eps, shift.Output[0]);
    }

    void RequireLastAxis(NodeProto reduce, string what)
    {
        var axes = OnnxGraph.IntsAttribute(reduce, "axes")
                   ?? (reduce.Input.Count > 1 && g.Constant(reduce.Input[1]) is { } t ? g.Integers(t) : null);
        if (axes is not [-1]) throw g.Error(reduce, $"{what}: reduces axes [{string.Join(",", axes ?? Array.Empty<long>())}], a LayerNorm reduces the last one");
    }

    /// <summary>The path from <paramref name="value"/> through Reshape and Transpose nodes: where it ends (node and
    /// operand index, and the value entering it), the composed permutation, and the Reshapes passed.</summary>
    (NodeProto Node, int Input, string Value, int[]? Perm, List<NodeProto> Reshapes) Through(string value)
    {
        int[]? perm = null;
        var reshapes = new List<NodeProto>();
        while (true)
        {
            var next = g.OnlyConsumer(value) ?? throw g.Error($"value '{value}' feeds {g.DataConsumers(value).Count} nodes where one was expected");
            if (next.OpType == "Reshape" && next.Input[0] == value) { reshapes.Add(next); value = next.Output[0]; continue; }
            if (next.OpType == "Transpose")
            {
                var p = OnnxGraph.IntsAttribute(next, "perm")?.Select(i => (int)i).ToArray() ?? throw g.Error(next, "Transpose without perm");
                perm = perm is null ? p : p.Select(i => perm[i]).ToArray();
                value = next.Output[0];
                continue;
            }
            return (next, next.Input.IndexOf(value), value, perm, reshapes);
        }
    }

    (int Heads, int Size) HeadShape(NodeProto reshape)
    {
        var target = reshape.Input[1];
        if (g.Constant(target) is { } t)
        {
            var dims = g.Integers(t);
            if (dims.Length == 4) return ((int)dims[2], (int)dims[3]);
        }
        else if (g.Producer(target) is { OpType: "Concat" } concat)
        {
            var parts = concat.Input.Select(i => g.Scalar(i)).ToList();
            if (parts.Count == 4 && parts[2] is { } heads && parts[3] is { } size) return ((int)heads, (int)size);
        }
        throw g.Error(reshape, "cannot read [batch, seq, heads, head_size] from the Reshape target");
    }

    bool DependsOn(string value, string input)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>();
        stack.Push(value);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (v == input) return true;
            if (!seen.Add(v) || g.Producer(v) is not { } p) continue;
            foreach (var i in p.Input) stack.Push(i);
        }
        return false;
    }

    static string Other(NodeProto binary, string operand) =>
        binary.Input[0] == operand ? binary.Input[1] : binary.Input[0];

    static bool Same(int[]? perm, params int[] expected) => perm is not null && perm.SequenceEqual(expected);

    void Add(string name, TensorProto t, bool transposed = false)
    {
        if (tensors.Any(m => m.Source.Name == t.Name))
            throw g.Error($"initializer '{t.Name}' would be both {tensors.First(m => m.Source.Name == t.Name).Name} and {name}");
        tensors.Add(new MappedTensor(name, t, transposed));
    }

    void AddLinear(string prefix, Linear l)
    {
        Add(prefix + ".weight", l.Weight, l.StoredInOut);
        Add(prefix + ".bias", l.Bias);
    }

    void AddNorm(string prefix, Norm n, int hidden)
    {
        if (n.Gamma.Dims.Count != 1 || n.Gamma.Dims[0] != hidden || n.Beta.Dims.Count != 1 || n.Beta.Dims[0] != hidden)
            throw g.Error($"{prefix}: γ [{string.Join(",", n.Gamma.Dims)}] and β [{string.Join(",", n.Beta.Dims)}] should both be [{hidden}]");
        Add(prefix + ".weight", n.Gamma);
        Add(prefix + ".bias", n.Beta);
    }
}
