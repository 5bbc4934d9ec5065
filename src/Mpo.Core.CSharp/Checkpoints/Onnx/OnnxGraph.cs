using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Mpo.Checkpoints.Onnx;

/// <summary>
/// An ONNX model (onnx.proto, read with OnnxSharp's generated classes over Google.Protobuf), indexed for following
/// the graph: which node produces a value, which nodes consume it, and the constant tensors (initializers and
/// <c>Constant</c> nodes). Structural matching (<see cref="BertGraph"/>) is written against this, never against
/// initializer names.
/// </summary>
public sealed class OnnxGraph
{
    readonly Dictionary<string, NodeProto> producers = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<NodeProto>> consumers = new(StringComparer.Ordinal);
    readonly Dictionary<string, TensorProto> initializers = new(StringComparer.Ordinal);

    /// <summary>Where the model came from (a file, or a resource inside a package); errors start with it.</summary>
    public string Source { get; }
    public ModelProto Model { get; }
    public GraphProto Graph => Model.Graph;
    /// <summary>The default-domain opset the graph was exported with.</summary>
    public long Opset => Model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
    /// <summary>Names of the graph's runtime inputs (initializers some exporters also list as inputs left out).</summary>
    public IReadOnlyList<string> Inputs { get; }
    public IReadOnlyList<string> Outputs { get; }
    /// <summary>Every initializer, by name.</summary>
    public IReadOnlyDictionary<string, TensorProto> Initializers => initializers;

    OnnxGraph(string source, ModelProto model)
    {
        Source = source;
        Model = model;
        foreach (var t in model.Graph.Initializer)
            if (!initializers.TryAdd(t.Name, t))
                throw Error($"initializer '{t.Name}' is defined twice");
        foreach (var node in model.Graph.Node)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
                if (!producers.TryAdd(output, node))
                    throw Error($"value '{output}' is produced by two nodes ('{producers[output].Name}' and '{node.Name}')");
            foreach (var input in node.Input.Where(i => i.Length > 0))
            {
                if (!consumers.TryGetValue(input, out var list)) consumers[input] = list = new List<NodeProto>();
                list.Add(node);
            }
        }
        Inputs = model.Graph.Input.Select(i => i.Name).Where(n => !initializers.ContainsKey(n)).ToList();
        Outputs = model.Graph.Output.Select(o => o.Name).ToList();
    }

    /// <summary>Reads an ONNX model file.</summary>
    /// <exception cref="CheckpointFormatException">The file is not a complete ONNX model (e.g. truncated).</exception>
    public static OnnxGraph Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such ONNX file", path);
        return Parse(File.ReadAllBytes(path), Path.GetFullPath(path));
    }

    /// <summary>Parses an ONNX model from its bytes; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="CheckpointFormatException">The bytes are not a complete ONNX model.</exception>
    public static OnnxGraph Parse(byte[] bytes, string source)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new CheckpointFormatException(source, $"not a complete ONNX model ({bytes.Length:N0} bytes; truncated or not ONNX): {e.Message}", inner: e);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new CheckpointFormatException(source, $"not an ONNX model: no graph nodes in {bytes.Length:N0} bytes");
        return new OnnxGraph(source, model);
    }

    /// <summary>An error naming the model's source.</summary>
    public CheckpointFormatException Error(string problem, string? tensor = null) => new(Source, problem, tensor);

    /// <summary>An error naming the model's source and a node.</summary>
    public CheckpointFormatException Error(NodeProto node, string problem) => new(Source, $"node '{node.Name}' ({node.OpType}): {problem}");

    public NodeProto? Producer(string value) => producers.TryGetValue(value, out var node) ? node : null;

    public IReadOnlyList<NodeProto> Consumers(string value) =>
        consumers.TryGetValue(value, out var list) ? list : (IReadOnlyList<NodeProto>)Array.Empty<NodeProto>();

    /// <summary>Consumers other than the <c>Shape</c> nodes exporters hang off values to compute reshape targets.</summary>
    public IReadOnlyList<NodeProto> DataConsumers(string value) => Consumers(value).Where(n => n.OpType != "Shape").ToList();

    /// <summary>The one data consumer of <paramref name="value"/>, or null when it has none or several.</summary>
    public NodeProto? OnlyConsumer(string value)
    {
        var list = DataConsumers(value);
        return list.Count == 1 ? list[0] : null;
    }

    /// <summary>The constant tensor behind a value: an initializer or the output of a <c>Constant</c> node.</summary>
    public TensorProto? Constant(string value)
    {
        if (initializers.TryGetValue(value, out var t)) return t;
        if (Producer(value) is { OpType: "Constant" } node)
            return node.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
        return null;
    }

    /// <summary>The initializer behind a value (not a <c>Constant</c> node), or null.</summary>
    public TensorProto? Initializer(string value) => initializers.TryGetValue(value, out var t) ? t : null;

    /// <summary>A constant's float32 elements (raw little-endian bytes or the <c>float_data</c> field).</summary>
    public float[] Floats(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw Error($"expected float32 data, found ONNX data type {t.DataType}", t.Name);
        var count = Elements(t);
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw Error("stored as external data; re-export with the weights inside the model file", t.Name);
        float[] values;
        if (t.RawData.Length > 0)
        {
            RequireLittleEndian();
            if (t.RawData.Length != count * 4)
                throw Error($"raw data holds {t.RawData.Length:N0} bytes, shape [{string.Join(",", t.Dims)}] needs {count * 4:N0}", t.Name);
            values = MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        }
        else
        {
            if (t.FloatData.Count != count)
                throw Error($"holds {t.FloatData.Count:N0} floats, shape [{string.Join(",", t.Dims)}] needs {count:N0}", t.Name);
            values = t.FloatData.ToArray();
        }
        return values;
    }

    /// <summary>A constant's integer elements (int64 or int32, raw or typed fields), widened to long.</summary>
    public long[] Integers(TensorProto t)
    {
        var count = Elements(t);
        RequireLittleEndian();
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Int64:
                if (t.RawData.Length > 0)
                {
                    if (t.RawData.Length != count * 8) throw Error($"raw data holds {t.RawData.Length} bytes, needs {count * 8}", t.Name);
                    return MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();
                }
                if (t.Int64Data.Count != count) throw Error($"holds {t.Int64Data.Count} integers, needs {count}", t.Name);
                return t.Int64Data.ToArray();
            case TensorProto.Types.DataType.Int32:
                if (t.RawData.Length > 0)
                {
                    if (t.RawData.Length != count * 4) throw Error($"raw data holds {t.RawData.Length} bytes, needs {count * 4}", t.Name);
                    return MemoryMarshal.Cast<byte, int>(t.RawData.Span).ToArray().Select(v => (long)v).ToArray();
                }
                if (t.Int32Data.Count != count) throw Error($"holds {t.Int32Data.Count} integers, needs {count}", t.Name);
                return t.Int32Data.Select(v => (long)v).ToArray();
            default:
                throw Error($"expected integer data, found ONNX data type {t.DataType}", t.Name);
        }
    }

    /// <summary>The single number held by a constant value (a scalar or a one-element tensor), or null.</summary>
    public double? Scalar(string value)
    {
        if (Constant(value) is not { } t || Elements(t) != 1) return null;
        return t.DataType switch
        {
            (int)TensorProto.Types.DataType.Float => Floats(t)[0],
            (int)TensorProto.Types.DataType.Int64 or (int)TensorProto.Types.DataType.Int32 => Integers(t)[0],
            _ => null,
        };
    }

    /// <summary>An integer attribute, or <paramref name="fallback"/> when the node does not set it.</summary>
    public static long IntAttribute(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    public static float FloatAttribute(NodeProto node, string name, float fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;

    public static long[]? IntsAttribute(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : null;

    /// <summary>Number of elements of a tensor's shape (1 for a scalar).</summary>
    public static long Elements(TensorProto t) => t.Dims.Aggregate(1L, (n, d) => n * d);

    static void RequireLittleEndian()
    {
        // ONNX raw_data is little-endian; reinterpreting it is only correct on a little-endian host.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("reading ONNX raw tensor data needs a little-endian machine");
    }
}
