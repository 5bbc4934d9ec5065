using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Contraction;

/// <summary>
/// A dense weight contracted from MPO cores, kept between inference calls while the cores are unchanged. Inference
/// would otherwise rebuild W from its cores on every forward — as costly as the matrix product itself for a
/// Linear, and far more for an embedding table looked up by a handful of tokens — while the weight only changes when
/// the cores do.
/// <para>Validity is decided by libtorch's own version counter, the one PyTorch exposes as <c>tensor._version</c>:
/// every in-place write to a tensor (an optimizer step, <c>copy_</c>, <c>set_</c>, <c>load_state_dict</c>, a
/// truncation swapping a core's storage) bumps it, whoever makes the write. The cache also remembers which tensor
/// objects it was built from, so a module moved by <c>.to(dtype/device)</c> (new parameter objects) rebuilds. Where
/// the counter cannot be read (a libtorch build without the symbol) nothing is cached: correctness never depends on
/// callers invalidating.</para>
/// </summary>
public sealed class WeightCache : IDisposable
{
    Tensor? weight;
    Tensor[] sources = Array.Empty<Tensor>();
    IntPtr[] handles = Array.Empty<IntPtr>();
    long[] versions = Array.Empty<long>();

    /// <summary>Whether this process can read tensor versions (and so caches at all).</summary>
    public static bool Supported => TensorVersion.Supported;

    /// <summary>Whether a call on <paramref name="cores"/> may be served a cached weight: versions are readable and no
    /// gradient is wanted through any core (grad mode off, or every core frozen).</summary>
    public static bool Serves(IReadOnlyList<Tensor> cores)
    {
        if (!Supported || !is_grad_enabled()) return Supported;
        for (int k = 0; k < cores.Count; k++)
            if (cores[k].requires_grad) return false;
        return true;
    }

    /// <summary>Whether a call now would be served from the cache for <paramref name="cores"/>.</summary>
    public bool IsValidFor(IReadOnlyList<Tensor> cores)
    {
        if (weight is null || weight.IsInvalid || cores.Count != sources.Length) return false;
        for (int k = 0; k < cores.Count; k++)
        {
            var c = cores[k];
            if (!ReferenceEquals(c, sources[k]) || c.IsInvalid || c.Handle != handles[k] || TensorVersion.Of(c) != versions[k])
                return false;
        }
        return true;
    }

    /// <summary>
    /// The weight for <paramref name="cores"/>: the cached one while the cores are unchanged, otherwise
    /// <paramref name="build"/>'s result, built without gradient and kept. The returned tensor belongs to the cache
    /// (do not dispose it; it lives outside every dispose scope).
    /// </summary>
    public Tensor Get(IReadOnlyList<Tensor> cores, Func<Tensor> build)
    {
        ArgumentNullException.ThrowIfNull(cores);
        ArgumentNullException.ThrowIfNull(build);
        if (!Supported)
            throw new InvalidOperationException("tensor versions cannot be read in this process, so no weight is cached (check WeightCache.Supported)");
        if (IsValidFor(cores)) return weight!;
        Clear();
        Tensor built;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            built = build().detach().MoveToOuterDisposeScope();
        }
        built.DetachFromDisposeScope();
        weight = built;
        sources = new Tensor[cores.Count];
        handles = new IntPtr[cores.Count];
        versions = new long[cores.Count];
        for (int k = 0; k < cores.Count; k++)
        {
            sources[k] = cores[k];
            handles[k] = cores[k].Handle;
            versions[k] = TensorVersion.Of(cores[k]);
        }
        return built;
    }

    /// <summary>Drops the cached weight (a training forward does, so a stale copy does not hold memory).</summary>
    public void Clear()
    {
        weight?.Dispose();
        weight = null;
        sources = Array.Empty<Tensor>();
        handles = Array.Empty<IntPtr>();
        versions = Array.Empty<long>();
    }

    public void Dispose() => Clear();
}

/// <summary>
/// libtorch's per-tensor version counter (PyTorch's <c>Tensor._version</c>), which TorchSharp does not bind: the
/// exported operator <c>at::_ops::_version::call(const at::Tensor&amp;)</c>, called with TorchSharp's handle (an
/// <c>at::Tensor*</c>). Looked up once; where the symbol is missing, <see cref="Supported"/> is false.
/// </summary>
public static class TensorVersion
{
    // Itanium (Linux, macOS) and MSVC manglings of at::_ops::_version::call(at::Tensor const&).
    const string ItaniumName = "_ZN2at4_ops8_version4callERKNS_6TensorE";
    const string MsvcName = "?call@_version@_ops@at@@SA_JAEBVTensor@3@@Z";

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate long VersionCall(IntPtr tensor);

    static readonly VersionCall? call = Resolve();

    static VersionCall? Resolve()
    {
        torch.InitializeDeviceType(DeviceType.CPU);  // loads libtorch
        foreach (var library in new[] { "libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll", "libtorch_cpu", "torch_cpu" })
        {
            if (!NativeLibrary.TryLoad(library, typeof(torch).Assembly, null, out var handle)) continue;
            foreach (var symbol in new[] { ItaniumName, MsvcName })
                if (NativeLibrary.TryGetExport(handle, symbol, out var address))
                    return Marshal.GetDelegateForFunctionPointer<VersionCall>(address);
        }
        return null;
    }

    /// <summary>Whether versions can be read in this process.</summary>
    public static bool Supported => call is not null;

    /// <summary>The tensor's version: it increases with every in-place write. −1 where unsupported.</summary>
    public static long Of(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return call is null ? -1 : call(tensor.Handle);
    }
}
