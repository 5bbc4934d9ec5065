using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.IO;
using System.IO.MemoryMappedFiles;
using System.Linq;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;

namespace Mpo.Checkpoints;

/// <summary>Element types of the safetensors format that this reader and writer support; names match the header strings.</summary>
public enum SafeDType
{
    /// <summary>IEEE 754 binary64.</summary>
    F64,
    /// <summary>IEEE 754 binary32.</summary>
    F32,
    /// <summary>IEEE 754 binary16.</summary>
    F16,
    /// <summary>bfloat16 (the upper half of a binary32).</summary>
    BF16,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Boolean stored as one byte, 0 or 1.</summary>
    BOOL,
}

/// <summary>One header entry of a safetensors file.</summary>
/// <param name="Name">The tensor's name (the header key).</param>
/// <param name="DType">The stored element type.</param>
/// <param name="Shape">The dimensions; empty for a scalar.</param>
/// <param name="Begin">First byte of the tensor, relative to the start of the data buffer.</param>
/// <param name="End">One past the last byte, relative to the start of the data buffer.</param>
public sealed record SafeTensorInfo(string Name, SafeDType DType, long[] Shape, long Begin, long End);

/// <summary>
/// A safetensors file opened for reading. The file is memory-mapped once and its header validated strictly on
/// <see cref="Open"/>; each <see cref="Load"/> copies one tensor's bytes from the mapping, so a checkpoint larger
/// than memory can be read tensor by tensor. Loads may run concurrently; dispose (which unmaps) only once no
/// load is in flight.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    // Real headers are kilobytes to a few megabytes; a larger length is corruption, not a header worth allocating.
    private const long MaxHeaderBytes = 100L * 1024 * 1024;
    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _data;
    // Load sizes tensors from private shape copies: SafeTensorInfo exposes its array, and a caller editing it must
    // not make a copy run past the tensor's bytes.
    private readonly Dictionary<string, (SafeTensorInfo Info, long[] Shape)> _byName;
    private bool _disposed;

    /// <summary>Full path of the opened file.</summary>
    public string Path { get; }

    /// <summary>The <c>__metadata__</c> string pairs of the header; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every tensor entry, ordered by position in the data buffer.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long fileLength)
    {
        Path = path;
        _map = map;
        _view = view;
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            start += view.PointerOffset;
            var headerLength = ReadHeaderLength(path, start, fileLength);
            _data = start + 8 + headerLength;
            var header = new ReadOnlySpan<byte>(start + 8, (int)headerLength).ToArray();
            (Metadata, Tensors) = ParseHeader(path, header, fileLength - 8 - headerLength);
            _byName = Tensors.ToDictionary(t => t.Name, t => (t, (long[])t.Shape.Clone()), StringComparer.Ordinal);
        }
        catch
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            throw;
        }
    }

    /// <summary>
    /// Maps <paramref name="path"/> and validates its header: lengths, JSON shape and types, dtypes, shapes, and
    /// that every tensor's byte range lies inside the data buffer and matches its shape, and that the ranges tile the
    /// buffer exactly (no overlap, no hole, nothing after the last tensor).
    /// </summary>
    /// <param name="path">The safetensors file.</param>
    /// <returns>The open file; dispose it to unmap.</returns>
    /// <exception cref="CheckpointFormatException">The file is not a well-formed safetensors file.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            var length = stream.Length;
            // Checked before mapping: an empty file cannot be mapped at all.
            if (length < 8)
                throw new CheckpointFormatException(full, $"file is {length} bytes, too short for the 8-byte header length");
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new SafeTensorsFile(full, map, view, length);
        }
        catch
        {
            view?.Dispose();
            if (map is null) stream.Dispose(); else map.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor called <paramref name="name"/>.</summary>
    /// <param name="name">Tensor name, compared ordinally.</param>
    public bool Contains(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.ContainsKey(name);
    }

    /// <summary>The header entry of tensor <paramref name="name"/>.</summary>
    /// <param name="name">Tensor name, compared ordinally.</param>
    /// <exception cref="CheckpointFormatException">No such tensor; the message lists up to five closest names.</exception>
    public SafeTensorInfo Info(string name) => Entry(name).Info;

    /// <summary>
    /// Copies tensor <paramref name="name"/> out of the mapping into a new tensor, then converts it to
    /// <paramref name="dtype"/> and moves it to <paramref name="device"/> when those are given.
    /// </summary>
    /// <param name="name">Tensor name, compared ordinally.</param>
    /// <param name="device">Target device; CPU when omitted.</param>
    /// <param name="dtype">Target element type; the stored one when omitted.</param>
    /// <returns>A new tensor that owns its memory (independent of this file's lifetime).</returns>
    /// <exception cref="CheckpointFormatException">No such tensor, or a BOOL tensor holding a byte other than 0 or 1.</exception>
    public torch.Tensor Load(string name, torch.Device? device = null, torch.ScalarType? dtype = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (info, shape) = Entry(name);
        var source = _data + info.Begin;
        var byteCount = info.End - info.Begin;
        if (info.DType == SafeDType.BOOL)
            CheckBooleans(info.Name, source, byteCount);

        var stored = torch.empty(shape, SafeTensors.ToTorch(info.DType));
        try
        {
            TensorBytes.CopyIn(source, byteCount, stored, SafeTensors.ElementSize(info.DType));
        }
        catch
        {
            stored.Dispose();
            throw;
        }
        var targetType = dtype ?? stored.dtype;
        if (targetType == stored.dtype && (device is null || device.type == DeviceType.CPU))
            return stored;
        using (stored)
            return stored.to(targetType, device ?? torch.CPU);
    }

    /// <summary>Unmaps the file; tensors already loaded stay valid.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private (SafeTensorInfo Info, long[] Shape) Entry(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var entry)) return entry;
        throw new CheckpointFormatException(Path, $"no such tensor among {_byName.Count}; {NameSuggestions.Hint(name, _byName.Keys)}", name);
    }

    private void CheckBooleans(string name, byte* source, long byteCount)
    {
        // Torch assumes bool storage holds only 0 and 1; any other byte gives inconsistent results, not an error.
        for (long done = 0; done < byteCount; done += int.MaxValue)
        {
            var span = new ReadOnlySpan<byte>(source + done, (int)Math.Min(int.MaxValue, byteCount - done));
            var bad = span.IndexOfAnyExcept((byte)0, (byte)1);
            if (bad >= 0)
                throw new CheckpointFormatException(Path, $"BOOL element {done + bad} holds byte {span[bad]}, not 0 or 1", name);
        }
    }

    private static long ReadHeaderLength(string path, byte* start, long fileLength)
    {
        var length = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start, 8));
        if (length > MaxHeaderBytes)
            throw new CheckpointFormatException(path, $"header length {length} exceeds the {MaxHeaderBytes}-byte limit; not a safetensors file or corrupt");
        if ((long)length > fileLength - 8)
            throw new CheckpointFormatException(path, $"header length {length} runs past the end of the {fileLength}-byte file");
        return (long)length;
    }

    private static (IReadOnlyDictionary<string, string>, IReadOnlyList<SafeTensorInfo>) ParseHeader(string path, byte[] header, long bufferLength)
    {
        try
        {
            // JsonDocument only notices bad UTF-8 when a string is read, and then throws InvalidOperationException.
            new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(header);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException(path, "header is not valid UTF-8", inner: e);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"header is not valid JSON: {e.Message}", inner: e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(path, $"header must be a JSON object, found {root.ValueKind}");

            IReadOnlyDictionary<string, string>? metadata = null;
            var tensors = new List<SafeTensorInfo>();
            // JsonDocument keeps repeated keys; a repeated tensor name would make the file ambiguous.
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!names.Add(property.Name))
                    throw new CheckpointFormatException(path, "name appears more than once in the header", property.Name);
                if (property.Name == MetadataKey)
                    metadata = ParseMetadata(path, property.Value);
                else
                    tensors.Add(ParseEntry(path, property.Name, property.Value, bufferLength));
            }

            tensors.Sort((a, b) =>
            {
                var c = a.Begin.CompareTo(b.Begin);
                if (c == 0) c = a.End.CompareTo(b.End);
                return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
            });
            CheckCoverage(path, tensors, bufferLength);
            return (metadata ?? new ReadOnlyDictionary<string, string>(new Dictionary<string, string>()), tensors.AsReadOnly());
        }
    }

    private static IReadOnlyDictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, $"{MetadataKey} must be a JSON object of strings, found {value.ValueKind}");
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in value.EnumerateObject())
        {
            if (pair.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(path, $"{MetadataKey} value of '{pair.Name}' must be a string, found {pair.Value.ValueKind}");
            if (!pairs.TryAdd(pair.Name, pair.Value.GetString()!))
                throw new CheckpointFormatException(path, $"{MetadataKey} key '{pair.Name}' appears more than once");
        }
        return new ReadOnlyDictionary<string, string>(pairs);
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement entry, long bufferLength)
    {
        CheckpointFormatException Bad(string problem) => new(path, problem, name);

        if (entry.ValueKind != JsonValueKind.Object)
            throw Bad($"entry must be a JSON object, found {entry.ValueKind}");
        JsonElement Field(string key, JsonValueKind kind)
        {
            if (!entry.TryGetProperty(key, out var value))
                throw Bad($"entry has no '{key}'");
            if (value.ValueKind != kind)
                throw Bad($"'{key}' must be a JSON {kind}, found {value.ValueKind}");
            return value;
        }
        long NonNegative(JsonElement element, string what)
        {
            // TryGetInt64 also rejects fractions and exponents, so 2.0 or 1e3 do not pass as integers.
            if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var value))
                throw Bad($"{what} must be an integer in the 64-bit range, found {element.GetRawText()}");
            if (value < 0)
                throw Bad($"{what} must not be negative, found {value}");
            return value;
        }

        var dtypeText = Field("dtype", JsonValueKind.String).GetString()!;
        if (!SafeTensors.TryParseDType(dtypeText, out var dtype))
            throw Bad($"unknown or unsupported dtype '{dtypeText}'");

        var shape = Field("shape", JsonValueKind.Array).EnumerateArray()
            .Select((d, i) => NonNegative(d, $"shape[{i}]")).ToArray();

        var offsets = Field("data_offsets", JsonValueKind.Array);
        if (offsets.GetArrayLength() != 2)
            throw Bad($"data_offsets must hold exactly two integers, found {offsets.GetArrayLength()} elements");
        var begin = NonNegative(offsets[0], "data_offsets[0]");
        var end = NonNegative(offsets[1], "data_offsets[1]");
        if (begin > end)
            throw Bad($"data_offsets [{begin}, {end}] begin after they end");
        if (end > bufferLength)
            throw Bad($"data_offsets [{begin}, {end}] run past the {bufferLength}-byte data buffer");

        long expected;
        try
        {
            expected = shape.Aggregate((long)SafeTensors.ElementSize(dtype), (bytes, d) => checked(bytes * d));
        }
        catch (OverflowException)
        {
            throw Bad($"shape [{string.Join(", ", shape)}] overflows 64-bit byte counts");
        }
        if (end - begin != expected)
            throw Bad($"data_offsets [{begin}, {end}] cover {end - begin} bytes but {dtype} [{string.Join(", ", shape)}] needs {expected}");

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static void CheckCoverage(string path, List<SafeTensorInfo> byBegin, long bufferLength)
    {
        // The format's rule (and the reference reader's): sorted by offsets, the tensors tile the data buffer exactly,
        // each starting where the previous one ended, the last ending at the buffer's end. A hole or trailing bytes
        // mean the header length or an offset is wrong: a header length one byte short whose JSON still parses
        // (space padding) shifts every tensor by a byte, which only this check catches.
        long covered = 0;
        SafeTensorInfo? previous = null;
        foreach (var t in byBegin)
        {
            if (t.Begin < covered)
                throw new CheckpointFormatException(path,
                    $"bytes [{t.Begin}, {t.End}) overlap those of tensor '{previous!.Name}' [{previous.Begin}, {previous.End})", t.Name);
            if (t.Begin > covered)
                throw new CheckpointFormatException(path,
                    $"data_offsets [{t.Begin}, {t.End}] leave a hole: the bytes before it end at {covered}" +
                    (previous is null ? "" : $" (tensor '{previous.Name}')") + "; tensors must cover the data buffer without gaps", t.Name);
            covered = t.End;
            previous = t;
        }
        if (covered != bufferLength)
            throw new CheckpointFormatException(path,
                $"the tensors cover {covered} bytes but the data buffer holds {bufferLength}: the header length or the offsets are wrong");
    }
}

/// <summary>Writing safetensors files and converting between safetensors and TorchSharp element types.</summary>
public static class SafeTensors
{
    private const string MetadataKey = "__metadata__";

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically (see <see cref="AtomicFile"/>).
    /// Like the Hugging Face writer, the header is padded with spaces to a multiple of 8 and tensors are laid out
    /// by descending element size, then name, so each one starts aligned to its element size. Tensors are copied to
    /// contiguous CPU memory and streamed one at a time; the file is never assembled in memory.
    /// </summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="tensors">Name and tensor pairs; any device, any strides.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string pairs.</param>
    /// <exception cref="ArgumentException">A duplicate or reserved name, or an unsupported dtype; nothing is written.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = new List<(string Name, torch.Tensor Tensor, SafeDType DType, long[] Shape)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (name is null) throw new ArgumentException("A tensor name is null.", nameof(tensors));
            if (tensor is null) throw new ArgumentException($"Tensor '{name}' is null.", nameof(tensors));
            if (name == MetadataKey) throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor.", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"Duplicate tensor name '{name}'.", nameof(tensors));
            SafeDType dtype;
            try
            {
                dtype = ToSafe(tensor.dtype);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Tensor '{name}': {e.Message}", nameof(tensors), e);
            }
            entries.Add((name, tensor, dtype, tensor.shape));
        }
        if (metadata is not null)
            foreach (var (key, value) in metadata)
                if (key is null || value is null)
                    throw new ArgumentException("Metadata keys and values must not be null.", nameof(metadata));

        entries.Sort((a, b) =>
        {
            var c = ElementSize(b.DType).CompareTo(ElementSize(a.DType));
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });
        var layout = new List<SafeTensorInfo>(entries.Count);
        long offset = 0;
        foreach (var e in entries)
        {
            var bytes = e.Shape.Aggregate((long)ElementSize(e.DType), (n, d) => checked(n * d));
            layout.Add(new SafeTensorInfo(e.Name, e.DType, e.Shape, offset, offset + bytes));
            offset += bytes;
        }
        var header = Header(layout, metadata);

        AtomicFile.Write(path, stream =>
        {
            var length = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            for (var i = 0; i < entries.Count; i++)
            {
                using var scope = torch.NewDisposeScope();
                var cpu = entries[i].Tensor.detach().cpu().contiguous();
                TensorBytes.CopyOut(cpu, ElementSize(entries[i].DType), stream);
            }
        });
    }

    /// <summary>Loads every tensor of <paramref name="path"/>, in data-buffer order.</summary>
    /// <param name="path">The safetensors file.</param>
    /// <param name="device">Target device; CPU when omitted.</param>
    /// <returns>Name to tensor; the caller owns (and should dispose) the tensors.</returns>
    /// <exception cref="CheckpointFormatException">The file is malformed.</exception>
    public static Dictionary<string, torch.Tensor> LoadAll(string path, torch.Device? device = null)
    {
        using var file = SafeTensorsFile.Open(path);
        var result = new Dictionary<string, torch.Tensor>(file.Tensors.Count, StringComparer.Ordinal);
        try
        {
            foreach (var info in file.Tensors)
                result.Add(info.Name, file.Load(info.Name, device));
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>The safetensors element type of a TorchSharp scalar type.</summary>
    /// <param name="t">A TorchSharp scalar type.</param>
    /// <exception cref="ArgumentException"><paramref name="t"/> has no supported safetensors equivalent.</exception>
    public static SafeDType ToSafe(torch.ScalarType t) => t switch
    {
        torch.ScalarType.Float64 => SafeDType.F64,
        torch.ScalarType.Float32 => SafeDType.F32,
        torch.ScalarType.Float16 => SafeDType.F16,
        torch.ScalarType.BFloat16 => SafeDType.BF16,
        torch.ScalarType.Int64 => SafeDType.I64,
        torch.ScalarType.Int32 => SafeDType.I32,
        torch.ScalarType.Int16 => SafeDType.I16,
        torch.ScalarType.Int8 => SafeDType.I8,
        torch.ScalarType.Byte => SafeDType.U8,
        torch.ScalarType.Bool => SafeDType.BOOL,
        _ => throw new ArgumentException($"dtype {t} cannot be stored in safetensors by this writer.", nameof(t)),
    };

    /// <summary>The TorchSharp scalar type of a safetensors element type.</summary>
    /// <param name="t">A safetensors element type.</param>
    public static torch.ScalarType ToTorch(SafeDType t) => t switch
    {
        SafeDType.F64 => torch.ScalarType.Float64,
        SafeDType.F32 => torch.ScalarType.Float32,
        SafeDType.F16 => torch.ScalarType.Float16,
        SafeDType.BF16 => torch.ScalarType.BFloat16,
        SafeDType.I64 => torch.ScalarType.Int64,
        SafeDType.I32 => torch.ScalarType.Int32,
        SafeDType.I16 => torch.ScalarType.Int16,
        SafeDType.I8 => torch.ScalarType.Int8,
        SafeDType.U8 => torch.ScalarType.Byte,
        SafeDType.BOOL => torch.ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a SafeDType value"),
    };

    /// <summary>Bytes per element of <paramref name="t"/>.</summary>
    /// <param name="t">A safetensors element type.</param>
    public static int ElementSize(SafeDType t) => t switch
    {
        SafeDType.F64 or SafeDType.I64 => 8,
        SafeDType.F32 or SafeDType.I32 => 4,
        SafeDType.F16 or SafeDType.BF16 or SafeDType.I16 => 2,
        SafeDType.I8 or SafeDType.U8 or SafeDType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a SafeDType value"),
    };

    /// <summary>Parses a header dtype string; exact, case-sensitive names only (no numeric enum values).</summary>
    internal static bool TryParseDType(string text, out SafeDType dtype)
    {
        SafeDType? parsed = text switch
        {
            "F64" => SafeDType.F64,
            "F32" => SafeDType.F32,
            "F16" => SafeDType.F16,
            "BF16" => SafeDType.BF16,
            "I64" => SafeDType.I64,
            "I32" => SafeDType.I32,
            "I16" => SafeDType.I16,
            "I8" => SafeDType.I8,
            "U8" => SafeDType.U8,
            "BOOL" => SafeDType.BOOL,
            _ => null,
        };
        dtype = parsed.GetValueOrDefault();
        return parsed.HasValue;
    }

    private static byte[] Header(List<SafeTensorInfo> layout, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable; the header is never embedded in HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            foreach (var t in layout)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DType.ToString());
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(t.Begin);
                json.WriteNumberValue(t.End);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Padding to 8 puts the data buffer on an 8-byte boundary, so with the layout order every tensor is aligned.
        var padded = new byte[(buffer.WrittenCount + 7) & ~7];
        buffer.WrittenSpan.CopyTo(padded);
        padded.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return padded;
    }
}

/// <summary>
/// Moves raw bytes between tensors and memory or streams in bounded chunks. <see cref="torch.Tensor.bytes"/> is a
/// Span (int-sized), so a tensor over 2 GB is handled through narrowed views of its flattened data.
/// </summary>
internal static unsafe class TensorBytes
{
    private const long ChunkBytes = 64L << 20;

    /// <summary>Fills contiguous CPU tensor <paramref name="destination"/> from <paramref name="byteCount"/> bytes at <paramref name="source"/>.</summary>
    public static void CopyIn(byte* source, long byteCount, torch.Tensor destination, int elementSize)
    {
        if (byteCount == 0) return;
        using var flat = destination.view(-1);
        // Shapes are validated to match the byte count; this guards the raw copy against any future mismatch.
        if (flat.shape[0] * elementSize != byteCount)
            throw new InvalidOperationException($"Tensor holds {flat.shape[0] * elementSize} bytes, source has {byteCount}.");
        ForEachChunk(flat, elementSize, (part, byteOffset) =>
            new ReadOnlySpan<byte>(source + byteOffset, part.Length).CopyTo(part));
    }

    /// <summary>Writes the bytes of contiguous CPU tensor <paramref name="source"/> to <paramref name="stream"/>.</summary>
    public static void CopyOut(torch.Tensor source, int elementSize, Stream stream)
    {
        if (source.numel() == 0) return;
        using var flat = source.view(-1);
        ForEachChunk(flat, elementSize, (part, _) => stream.Write(part));
    }

    private delegate void ChunkAction(Span<byte> part, long byteOffset);

    private static void ForEachChunk(torch.Tensor flat, int elementSize, ChunkAction action)
    {
        var elements = flat.shape[0];
        var perChunk = ChunkBytes / elementSize;
        for (long start = 0; start < elements; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, elements - start));
            action(part.bytes, start * elementSize);
        }
    }
}
