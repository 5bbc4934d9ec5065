using System.Threading;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// Marks parameters whose values were replaced wholesale in place, keeping the same <c>Parameter</c> object (an MPO
/// layer's truncation swaps every core's storage for a re-gauged one, spec §3.4). State an optimizer keeps per
/// parameter belongs to the old values: Adam's moments of a re-gauged auxiliary tensor point along the old basis even
/// when its shape is unchanged. <see cref="AdamW"/> compares the generation it saw when it made a parameter's state
/// with the current one and starts that parameter afresh when they differ.
/// </summary>
public static class ParameterReplacement
{
    static readonly ConditionalWeakTable<Tensor, StrongBox<long>> generations = new();

    /// <summary>How many times <paramref name="parameter"/>'s values were replaced (0 for one never replaced).</summary>
    public static long Generation(Tensor parameter) =>
        generations.TryGetValue(parameter, out var g) ? Volatile.Read(ref g.Value) : 0;

    /// <summary>Records that <paramref name="parameter"/> now holds unrelated values (same object, new contents).</summary>
    public static void MarkReplaced(Tensor parameter) =>
        Interlocked.Increment(ref generations.GetValue(parameter, _ => new StrongBox<long>()).Value);
}
