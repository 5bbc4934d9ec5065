using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Checkpoints;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// The state of torch's global CPU generator, the one dropout draws from (<c>torch.get_rng_state</c> /
/// <c>set_rng_state</c>). The trainer saves it in each checkpoint so that a resumed run draws the same dropout masks
/// as an uninterrupted one, and forks it around evaluation so that evaluating (or not) never shifts the training
/// stream. The trainer itself uses no .NET <see cref="Random"/>: batches are addressed by (epoch, index), so a batch
/// source reproduces its order from the epoch alone. TorchSharp 0.107 exposes no CUDA generator state, so exact
/// resume is a CPU guarantee.
/// </summary>
public static class RandomState
{
    /// <summary>The tensor name used in a checkpoint's <c>rng.safetensors</c>.</summary>
    public const string CpuGeneratorName = "torch.cpu";

    /// <summary>A copy of the global CPU generator's state (a uint8 tensor; the caller disposes it).</summary>
    public static Tensor Capture()
    {
        using var generator = Generator.Default;
        return generator.get_state();
    }

    /// <summary>Sets the global CPU generator's state to <paramref name="state"/>.</summary>
    public static void Restore(Tensor state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var generator = Generator.Default;
        generator.set_state(state);
    }

    /// <summary>Seeds the global CPU generator (<c>torch.manual_seed</c>).</summary>
    public static void Seed(long seed)
    {
        using var generator = random.manual_seed(seed);
    }

    /// <summary>Runs <paramref name="action"/> and puts the generator back as it was before, so the action's random
    /// draws do not shift what comes after.</summary>
    public static T Fork<T>(Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        using var saved = Capture();
        try
        {
            return action();
        }
        finally
        {
            Restore(saved);
        }
    }

    /// <summary>Writes the generator's state to a safetensors file.</summary>
    public static void Save(string path)
    {
        using var state = Capture();
        SafeTensors.Save(path, new[] { KeyValuePair.Create(CpuGeneratorName, state) });
    }

    /// <summary>Restores the generator from a file written by <see cref="Save"/>.</summary>
    /// <exception cref="CheckpointFormatException">The file lacks the state or holds one of another size or type.</exception>
    public static void Load(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        var info = file.Info(CpuGeneratorName);
        using var current = Capture();
        if (info.DType != SafeDType.U8 || !info.Shape.SequenceEqual(current.shape))
            throw new CheckpointFormatException(file.Path,
                $"{info.DType} [{string.Join(",", info.Shape)}] is not a CPU generator state of this libtorch (U8 [{string.Join(",", current.shape)}])",
                CpuGeneratorName);
        using var state = file.Load(CpuGeneratorName);
        Restore(state);
    }
}
