using System;

namespace Mpo.Data.Batching;

/// <summary>What a stream of random numbers is for; each purpose gets its own independent stream.</summary>
public enum RandomPurpose
{
    /// <summary>The order of the examples in an epoch.</summary>
    Order = 1,
    /// <summary>BERT-style masking of a batch.</summary>
    Masking = 2,
    /// <summary>T5-style span corruption of a batch.</summary>
    SpanCorruption = 3,
}

/// <summary>
/// A small deterministic random generator (SplitMix64, Steele, Lea &amp; Flood, OOPSLA 2014) whose stream is a pure
/// function of a key such as (seed, purpose, epoch, batch). Batching never touches a global or shared generator, so
/// a batch's order and masking can be recomputed from its key alone, which is what resuming a run needs, and the
/// numbers are the same on every platform and .NET version (unlike <see cref="Random"/>'s unspecified algorithm).
/// </summary>
public sealed class SeededRandom
{
    private const ulong Golden = 0x9E3779B97F4A7C15;
    private ulong state;

    /// <summary>A generator whose stream starts from <paramref name="state"/>.</summary>
    public SeededRandom(ulong state) => this.state = state;

    /// <summary>
    /// The generator of a key: each part goes through SplitMix64's bijective finalizer in turn, so keys that differ
    /// in any part (or in the order of their parts) start unrelated streams.
    /// </summary>
    public static SeededRandom For(params ReadOnlySpan<long> key)
    {
        var h = 0x6A09E667F3BCC909UL; // √2's fraction bits: any fixed odd constant
        foreach (var part in key)
            h = Mix(h ^ Mix(unchecked((ulong)part + Golden)));
        return new SeededRandom(h);
    }

    /// <summary>The generator of one batch's <paramref name="purpose"/> in a run with <paramref name="seed"/>.</summary>
    public static SeededRandom For(long seed, RandomPurpose purpose, int epoch, int batch) =>
        For([seed, (long)purpose, epoch, batch]);

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        state = unchecked(state + Golden);
        return Mix(state);
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>), without modulo bias (rejection).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxExclusive"/> is not positive.</exception>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        var bound = (ulong)maxExclusive;
        var limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong r;
        do r = NextUInt64(); while (r >= limit);
        return (int)(r % bound);
    }

    /// <summary>True with probability <paramref name="p"/>.</summary>
    public bool NextBernoulli(double p) => NextDouble() < p;

    /// <summary>Shuffles in place (Fisher–Yates): every permutation equally likely.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong Mix(ulong z)
    {
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EB);
        return z ^ (z >> 31);
    }
}
