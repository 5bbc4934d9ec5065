module Mpo.Core.Tests.SafeTensorsTests

open System
open System.Buffers.Binary
open System.Collections.Generic
open System.IO
open System.Text
open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints

let private allDTypes =
    [ SafeDType.F64; SafeDType.F32; SafeDType.F16; SafeDType.BF16; SafeDType.I64
      SafeDType.I32; SafeDType.I16; SafeDType.I8; SafeDType.U8; SafeDType.BOOL ]

/// Runs `body` with a fresh folder under the system temp path and removes it afterwards, pass or fail.
let private withTempDir (body: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "mpo-safetensors-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try body dir finally Directory.Delete(dir, true)

let private bytesOf (t: torch.Tensor) : byte[] =
    use c = t.contiguous()
    c.bytes.ToArray()

/// A tensor of `dtype` whose raw bytes are seeded random: for floats that includes NaNs with payloads, infinities
/// and negative zeros, which a value-based comparison would let slip. Booleans are restricted to 0 and 1.
let private randomTensor (rng: Random) (dtype: SafeDType) (shape: int64[]) =
    let t = torch.empty(shape, SafeTensors.ToTorch dtype)
    let raw = Array.zeroCreate<byte> (int (t.numel() * int64 (SafeTensors.ElementSize dtype)))
    rng.NextBytes raw
    if dtype = SafeDType.BOOL then
        for i in 0 .. raw.Length - 1 do raw[i] <- raw[i] &&& 1uy
    if raw.Length > 0 then ReadOnlySpan<byte>(raw).CopyTo(t.bytes)
    t

/// A safetensors file as another writer might produce it: u64 length, the header exactly as given, then data.
let private rawFile (header: string) (data: byte[]) =
    let h = Encoding.UTF8.GetBytes header
    let length = Array.zeroCreate<byte> 8
    BinaryPrimitives.WriteUInt64LittleEndian(Span<byte>(length), uint64 h.Length)
    Array.concat [ length; h; data ]

let private openFails (path: string) =
    try
        (SafeTensorsFile.Open path).Dispose()
        failtestf "expected CheckpointFormatException from %s" path
    with :? CheckpointFormatException as e -> e

let private pairs (items: (string * torch.Tensor) list) = items |> List.map KeyValuePair.Create

/// (case, file bytes, tensor the error must name, a fragment proving which check fired)
let private malformed : (string * byte[] * string option * string) list =
    let entry dtype shape (b: int) (e: int) = sprintf """{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}""" dtype shape b e
    [ "empty file", [||], None, "too short"
      "shorter than 8 bytes", [| 1uy; 2uy; 3uy |], None, "too short"
      "header length past end of file",
          (let f = rawFile "{}" [||] in BinaryPrimitives.WriteUInt64LittleEndian(Span<byte>(f, 0, 8), 100UL); f), None, "past the end"
      "absurd header length",
          (let f = rawFile "{}" (Array.zeroCreate 16) in BinaryPrimitives.WriteUInt64LittleEndian(Span<byte>(f, 0, 8), 1UL <<< 40); f), None, "exceeds"
      "header not JSON", rawFile """{"w": {"dtype":""" [||], None, "not valid JSON"
      "header not an object", rawFile "[1, 2]" [||], None, "must be a JSON object"
      "header not UTF-8", Array.concat [ rawFile "{\"" [||] |> Array.take 9; [| 0xFFuy |]; Encoding.UTF8.GetBytes "\":1}" ]
                           |> fun f -> BinaryPrimitives.WriteUInt64LittleEndian(Span<byte>(f, 0, 8), uint64 (f.Length - 8)); f
                         , None, "UTF-8"
      "entry not an object", rawFile """{"w": 5}""" [||], Some "w", "entry must be a JSON object"
      "missing dtype", rawFile """{"w":{"shape":[1],"data_offsets":[0,4]}}""" (Array.zeroCreate 4), Some "w", "no 'dtype'"
      "missing shape", rawFile """{"w":{"dtype":"F32","data_offsets":[0,4]}}""" (Array.zeroCreate 4), Some "w", "no 'shape'"
      "missing data_offsets", rawFile """{"w":{"dtype":"F32","shape":[1]}}""" (Array.zeroCreate 4), Some "w", "no 'data_offsets'"
      "dtype not a string", rawFile """{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}""" (Array.zeroCreate 4), Some "w", "'dtype' must be"
      "shape not an array", rawFile """{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}""" (Array.zeroCreate 4), Some "w", "'shape' must be"
      "fractional dimension", rawFile (sprintf """{"w":%s}""" (entry "F32" "[1.5]" 0 4)) (Array.zeroCreate 4), Some "w", "shape[0] must be an integer"
      "offsets as strings", rawFile """{"w":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}""" (Array.zeroCreate 4), Some "w", "data_offsets[0] must be an integer"
      "three offsets", rawFile """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}""" (Array.zeroCreate 4), Some "w", "exactly two"
      "unknown dtype", rawFile (sprintf """{"w":%s}""" (entry "F8_E4M3" "[4]" 0 4)) (Array.zeroCreate 4), Some "w", "dtype 'F8_E4M3'"
      "lower-case dtype", rawFile (sprintf """{"w":%s}""" (entry "f32" "[1]" 0 4)) (Array.zeroCreate 4), Some "w", "dtype 'f32'"
      "negative dimension", rawFile (sprintf """{"w":%s}""" (entry "F32" "[-1]" 0 4)) (Array.zeroCreate 4), Some "w", "must not be negative"
      "negative offset", rawFile (sprintf """{"w":%s}""" (entry "U8" "[0]" -1 -1)) (Array.zeroCreate 4), Some "w", "must not be negative"
      "begin after end", rawFile (sprintf """{"w":%s}""" (entry "F32" "[1]" 4 0)) (Array.zeroCreate 4), Some "w", "begin after"
      "offsets past the buffer", rawFile (sprintf """{"w":%s}""" (entry "F32" "[2]" 0 8)) (Array.zeroCreate 4), Some "w", "run past the 4-byte data buffer"
      "byte count disagrees with shape", rawFile (sprintf """{"w":%s}""" (entry "F32" "[3]" 0 8)) (Array.zeroCreate 12), Some "w", "needs 12"
      "shape overflows", rawFile (sprintf """{"w":%s}""" (entry "F32" "[4611686018427387904,4]" 0 4)) (Array.zeroCreate 4), Some "w", "overflows"
      "overlapping tensors",
          rawFile (sprintf """{"a":%s,"b":%s}""" (entry "F32" "[2]" 0 8) (entry "F32" "[2]" 4 12)) (Array.zeroCreate 12), Some "b", "overlap those of tensor 'a'"
      "duplicate tensor name",
          rawFile (sprintf """{"w":%s,"w":%s}""" (entry "U8" "[1]" 0 1) (entry "U8" "[1]" 1 2)) (Array.zeroCreate 2), Some "w", "more than once"
      "a hole between tensors",
          rawFile (sprintf """{"a":%s,"b":%s}""" (entry "U8" "[2]" 0 2) (entry "U8" "[1]" 5 6)) (Array.zeroCreate 6), Some "b", "leave a hole"
      "an empty tensor inside another",
          rawFile (sprintf """{"a":%s,"z":%s}""" (entry "U8" "[2]" 0 2) (entry "U8" "[0]" 1 1)) (Array.zeroCreate 2), Some "z", "overlap those of tensor 'a'"
      "bytes after the last tensor", rawFile (sprintf """{"w":%s}""" (entry "F32" "[1]" 0 4)) (Array.zeroCreate 5), None, "cover 4 bytes but the data buffer holds 5"
      "header length one byte short of a space-padded header",
          // The JSON still parses without its last padding space, and the data buffer then starts a byte early:
          // every tensor would be read one byte off.
          (let header = (sprintf """{"w":%s}""" (entry "F32" "[1]" 0 4)).PadRight(64)
           let f = rawFile header [| 0uy; 0uy; 0xC0uy; 0x3Fuy |]
           BinaryPrimitives.WriteUInt64LittleEndian(Span<byte>(f, 0, 8), 63UL)
           f), None, "cover 4 bytes but the data buffer holds 5"
      "metadata value not a string", rawFile """{"__metadata__":{"k":1}}""" [||], None, "value of 'k' must be a string"
      "metadata not an object", rawFile """{"__metadata__":"pt"}""" [||], None, "__metadata__ must be a JSON object" ]

[<Tests>]
let tests =
    testList "Checkpoints.SafeTensors" [
        testCase "every dtype round-trips bit for bit, scalars and empty tensors included" (fun () ->
            use _scope = torch.NewDisposeScope()
            let rng = Random 20240611
            let shapes = [ [||]; [| 0L |]; [| 2L; 0L; 3L |]; [| 7L |]; [| 3L; 5L |]; [| 2L; 3L; 4L |] ]
            let originals =
                [ for dtype in allDTypes do
                    for shape in shapes do
                        yield sprintf "%A/%s" dtype (String.Join("x", shape)), randomTensor rng dtype shape
                    // Strided input must be written in logical order.
                    yield sprintf "%A/transposed" dtype, (randomTensor rng dtype [| 4L; 6L |]).t() ]
            let metadata = readOnlyDict [ "format", "pt"; "note", "ünïcode ✓"; "empty", "" ]
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "all.safetensors")
                SafeTensors.Save(path, pairs originals, metadata)
                use file = SafeTensorsFile.Open path
                Expect.equal file.Path path "Path is the full path"
                Expect.equal (file.Metadata |> Seq.map (fun kv -> kv.Key, kv.Value) |> Set.ofSeq)
                             (metadata |> Seq.map (fun kv -> kv.Key, kv.Value) |> Set.ofSeq) "metadata preserved"
                Expect.equal file.Tensors.Count originals.Length "one entry per tensor"
                for name, original in originals do
                    let info = file.Info name
                    Expect.equal info.DType (SafeTensors.ToSafe original.dtype) $"{name}: dtype in header"
                    Expect.equal info.Shape original.shape $"{name}: shape in header"
                    let loaded = file.Load name
                    Expect.equal loaded.dtype original.dtype $"{name}: dtype"
                    Expect.equal loaded.shape original.shape $"{name}: shape"
                    Expect.equal (bytesOf loaded) (bytesOf original) $"{name}: bytes identical"))

        testCase "layout matches the spec when parsed independently" (fun () ->
            use _scope = torch.NewDisposeScope()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "layout.safetensors")
                let tensors = [ "a", torch.tensor([| 1.0f; -2.5f |]); "b", torch.tensor([| 3L |]); "c", torch.tensor([| 7uy |]) ]
                SafeTensors.Save(path, pairs tensors, readOnlyDict [ "k", "v" ])
                let bytes = File.ReadAllBytes path
                let n = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan<byte>(bytes, 0, 8)) |> int
                Expect.equal (n % 8) 0 "header length is a multiple of 8"
                let header = bytes[8 .. 8 + n - 1]
                let jsonEnd = Array.LastIndexOf(header, byte '}')
                Expect.all header[jsonEnd + 1 ..] (fun b -> b = byte ' ') "header padded with spaces"
                use json = JsonDocument.Parse(ReadOnlyMemory<byte>(header))
                let root = json.RootElement
                Expect.equal (root.GetProperty("__metadata__").GetProperty("k").GetString()) "v" "metadata"
                let span (name: string) =
                    let e = root.GetProperty name
                    let o = e.GetProperty "data_offsets"
                    e.GetProperty("dtype").GetString(), [ for d in e.GetProperty("shape").EnumerateArray() -> d.GetInt64() ],
                    o[0].GetInt32(), o[1].GetInt32()
                let dtypeA, shapeA, beginA, endA = span "a"
                Expect.equal (dtypeA, shapeA) ("F32", [ 2L ]) "a header"
                Expect.equal bytes[8 + n + beginA .. 8 + n + endA - 1] [| 0x00uy; 0x00uy; 0x80uy; 0x3Fuy; 0x00uy; 0x00uy; 0x20uy; 0xC0uy |] "a little-endian floats"
                let dtypeB, shapeB, beginB, endB = span "b"
                Expect.equal (dtypeB, shapeB) ("I64", [ 1L ]) "b header"
                Expect.equal bytes[8 + n + beginB .. 8 + n + endB - 1] [| 3uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy |] "b little-endian int64"
                let dtypeC, _, beginC, endC = span "c"
                Expect.equal dtypeC "U8" "c header"
                Expect.equal bytes[8 + n + beginC .. 8 + n + endC - 1] [| 7uy |] "c byte"
                Expect.equal (beginB % 8, beginA % 4) (0, 0) "tensors aligned to their element size"
                Expect.equal bytes.Length (8 + n + List.max [ endA; endB; endC ]) "data buffer ends with the last tensor"))

        testCase "a hand-written file with reversed entries and no padding loads" (fun () ->
            use _scope = torch.NewDisposeScope()
            // Entries listed against data order; the unpadded header leaves the F32 data unaligned in the file. The
            // empty tensor sits at the running offset, where writers put it.
            let header =
                """{"second":{"dtype":"I16","shape":[3],"data_offsets":[4,10]},""" +
                """"first":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"empty":{"dtype":"F64","shape":[0,2],"data_offsets":[4,4]},""" +
                """"__metadata__":{"format":"pt"}}"""
            Expect.notEqual (Encoding.UTF8.GetByteCount header % 4) 0 "header length leaves data unaligned"
            let data = [| 0x00uy; 0x00uy; 0xC0uy; 0x3Fuy; 0x01uy; 0x00uy; 0xFEuy; 0xFFuy; 0x2Cuy; 0x01uy |]
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "foreign.safetensors")
                File.WriteAllBytes(path, rawFile header data)
                use file = SafeTensorsFile.Open path
                Expect.equal [ for t in file.Tensors -> t.Name ] [ "first"; "empty"; "second" ] "ordered by data offset"
                Expect.equal file.Metadata["format"] "pt" "metadata"
                let first = file.Load "first"
                Expect.equal first.shape [| 1L; 1L |] "first shape"
                Expect.equal (first.data<float32>().ToArray()) [| 1.5f |] "first value"
                Expect.equal (file.Load("second").data<int16>().ToArray()) [| 1s; -2s; 300s |] "second values"
                let empty = file.Load "empty"
                Expect.equal (empty.shape, empty.dtype) ([| 0L; 2L |], torch.float64) "empty tensor"))

        testCase "Load converts dtype on request" (fun () ->
            use _scope = torch.NewDisposeScope()
            // All exactly representable in binary16, so the widened values must be exact.
            let values = [| 0.5f; -1.25f; 65504.0f; 5.9604645e-8f; 0.0f |]
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "half.safetensors")
                SafeTensors.Save(path, pairs [ "h", torch.tensor(values).``to``(torch.float16) ])
                use file = SafeTensorsFile.Open path
                Expect.equal (file.Info "h").DType SafeDType.F16 "stored as F16"
                let wide = file.Load("h", dtype = torch.float32)
                Expect.equal wide.dtype torch.float32 "converted"
                Expect.equal (wide.data<float32>().ToArray()) values "values exact"
                let onCpu = file.Load("h", device = torch.CPU)
                Expect.equal onCpu.dtype torch.float16 "stored dtype kept when only a device is given"))

        testCase "LoadAll returns every tensor in data order" (fun () ->
            use _scope = torch.NewDisposeScope()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "all.safetensors")
                let rng = Random 7
                let originals = [ "w", randomTensor rng SafeDType.F32 [| 3L; 2L |]; "b", randomTensor rng SafeDType.F64 [| 3L |]; "m", randomTensor rng SafeDType.BOOL [| 4L |] ]
                SafeTensors.Save(path, pairs originals)
                let loaded = SafeTensors.LoadAll path
                // Save lays out wider elements first, then by name.
                Expect.equal (List.ofSeq loaded.Keys) [ "b"; "w"; "m" ] "data order"
                for name, original in originals do
                    Expect.equal (bytesOf loaded[name]) (bytesOf original) $"{name} bytes"))

        testCase "a tensor spanning several 64 MB copy chunks round-trips" (fun () ->
            use _scope = torch.NewDisposeScope()
            // 70M int16 = 140 MB: two full chunks and a partial one, each way, so chunk offsets are exercised.
            use generator = new torch.Generator(11UL)
            let original = torch.randint(-32768L, 32767L, [| 7L; 10_000_000L |], dtype = torch.int16, generator = generator)
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "big.safetensors")
                SafeTensors.Save(path, pairs [ "small", torch.tensor([| 1uy |]); "big", original ])
                use file = SafeTensorsFile.Open path
                let loaded = file.Load "big"
                Expect.equal loaded.shape original.shape "shape"
                Expect.isTrue (loaded.eq(original).all().item<bool>()) "values identical"
                Expect.equal (file.Load("small").item<byte>()) 1uy "neighbour intact"))

        testCase "Save replaces an existing file" (fun () ->
            use _scope = torch.NewDisposeScope()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "twice.safetensors")
                SafeTensors.Save(path, pairs [ "old", torch.zeros(1000L) ])
                SafeTensors.Save(path, pairs [ "new", torch.tensor([| 42 |]) ])
                use file = SafeTensorsFile.Open path
                Expect.equal [ for t in file.Tensors -> t.Name ] [ "new" ] "only the new tensor"
                Expect.equal (file.Load("new").item<int>()) 42 "new value"
                Expect.equal (Directory.GetFiles dir) [| path |] "no temporary files left"))

        testList "malformed files are rejected naming file and tensor" [
            for case, bytes, tensor, fragment in malformed ->
                testCase case (fun () ->
                    withTempDir (fun dir ->
                        let path = Path.Combine(dir, "bad.safetensors")
                        File.WriteAllBytes(path, bytes)
                        let e = openFails path
                        Expect.stringStarts e.Message path "message starts with the file path"
                        Expect.equal e.File path "File property"
                        Expect.equal (Option.ofObj e.Tensor) tensor "Tensor property"
                        tensor |> Option.iter (fun t -> Expect.stringContains e.Message $"'{t}'" "message names the tensor")
                        Expect.stringContains e.Message fragment "the intended check fired"))
        ]

        testCase "a BOOL byte other than 0 or 1 is rejected on load" (fun () ->
            let header = """{"ok":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[2,5]}}"""
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "bool.safetensors")
                File.WriteAllBytes(path, rawFile header [| 1uy; 0uy; 0uy; 1uy; 2uy |])
                use file = SafeTensorsFile.Open path
                use ok = file.Load "ok"
                Expect.equal (ok.data<bool>().ToArray()) [| true; false |] "valid booleans load"
                let e = try file.Load "mask" |> ignore; failtest "expected an error" with :? CheckpointFormatException as e -> e
                Expect.stringStarts e.Message path "file path first"
                Expect.equal e.Tensor "mask" "Tensor property"
                Expect.stringContains e.Message "element 2 holds byte 2" "offending element named"))

        testCase "a missing tensor name lists close names" (fun () ->
            use _scope = torch.NewDisposeScope()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "names.safetensors")
                let names = [ "layer.0.weight"; "layer.0.bias"; "layer.1.weight"; "embed.weight"; "head.weight"; "norm.scale"; "x" ]
                SafeTensors.Save(path, pairs [ for n in names -> n, torch.zeros(1L) ])
                use file = SafeTensorsFile.Open path
                Expect.isTrue (file.Contains "layer.0.weight") "present"
                Expect.isFalse (file.Contains "layer.0.wieght") "absent"
                Expect.throwsT<CheckpointFormatException> (fun () -> file.Load "layer.0.wieght" |> ignore) "Load of a missing name"
                let e = try file.Info "layer.0.wieght" |> ignore; failtest "expected an error" with :? CheckpointFormatException as e -> e
                Expect.stringStarts e.Message path "file path first"
                Expect.equal e.Tensor "layer.0.wieght" "Tensor property"
                for close in [ "layer.0.weight"; "layer.1.weight"; "layer.0.bias" ] do
                    Expect.stringContains e.Message $"'{close}'" "close names listed"
                Expect.isFalse (e.Message.Contains "'x'") "at most five, the closest ones"))

        testCase "Save rejects duplicate names and unsupported dtypes before touching the disk" (fun () ->
            use _scope = torch.NewDisposeScope()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "bad.safetensors")
                let e = try SafeTensors.Save(path, pairs [ "w", torch.zeros(1L); "v", torch.zeros(1L); "w", torch.ones(1L) ]); failtest "expected an error" with :? ArgumentException as e -> e
                Expect.stringContains e.Message "'w'" "duplicate named"
                let e = try SafeTensors.Save(path, pairs [ "c", torch.zeros(2L, dtype = torch.complex64) ]); failtest "expected an error" with :? ArgumentException as e -> e
                Expect.stringContains e.Message "'c'" "tensor named"
                Expect.stringContains e.Message "ComplexFloat32" "dtype named"
                Expect.isEmpty (Directory.GetFileSystemEntries dir) "nothing written"))

        testCase "dtype mapping is a bijection and rejects unsupported types" (fun () ->
            for d in allDTypes do
                Expect.equal (SafeTensors.ToSafe(SafeTensors.ToTorch d)) d $"{d} round-trips"
                use t = torch.empty(1L, dtype = SafeTensors.ToTorch d)
                Expect.equal (int64 (SafeTensors.ElementSize d)) (t.element_size()) $"{d} element size agrees with torch"
            let e = try SafeTensors.ToSafe torch.ScalarType.ComplexFloat64 |> ignore; failtest "expected an error" with :? ArgumentException as e -> e
            Expect.stringContains e.Message "ComplexFloat64" "dtype named")

        testCase "a disposed file refuses to load" (fun () ->
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "d.safetensors")
                SafeTensors.Save(path, pairs [ "w", torch.zeros(1L) ])
                let file = SafeTensorsFile.Open path
                use kept = file.Load "w"
                file.Dispose()
                Expect.throwsT<ObjectDisposedException> (fun () -> file.Load "w" |> ignore) "disposed"
                Expect.equal (kept.item<float32>()) 0.0f "loaded tensors outlive the file"))

        testCase "an atomic write that fails leaves the old file and no temporary" (fun () ->
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "state.json")
                AtomicFile.WriteAllText(path, "old content")
                let failing (s: Stream) =
                    s.Write(Array.create 100_000 0xABuy, 0, 100_000)
                    failwith "writer crashed"
                let e = try AtomicFile.Write(path, Action<Stream> failing); failtest "expected an error" with e -> e
                Expect.equal e.Message "writer crashed" "the writer's exception propagates"
                Expect.equal (File.ReadAllText path) "old content" "old content intact"
                Expect.equal (Directory.GetFileSystemEntries dir) [| path |] "no temporary file left"
                AtomicFile.WriteAllText(path, "new ✓")
                Expect.equal (File.ReadAllBytes path) (Encoding.UTF8.GetBytes "new ✓") "UTF-8 without BOM replaces the file"))
    ]
