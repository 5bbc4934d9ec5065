using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data.Batching;

/// <summary>
/// Names one batch of a run: the run's seed, the epoch and the batch's position in the epoch. Everything random about
/// the batch (which examples, which tokens are masked or corrupted) is derived from it.
/// </summary>
/// <param name="Seed">The run's seed.</param>
/// <param name="Epoch">The epoch, from 0.</param>
/// <param name="Index">The batch's position within the epoch, from 0.</param>
public readonly record struct BatchKey(long Seed, int Epoch, int Index)
{
    /// <summary>The generator of this batch for <paramref name="purpose"/>.</summary>
    public SeededRandom Random(RandomPurpose purpose) => SeededRandom.For(Seed, purpose, Epoch, Index);
}

/// <summary>One batch of a schedule: its global step, its key and the indices of its examples.</summary>
/// <param name="Step">The optimizer step that consumes it: epoch × batches per epoch + index.</param>
/// <param name="Key">Seed, epoch and index.</param>
/// <param name="Examples">Indices into the example list, in batch order.</param>
public sealed record ScheduledBatch(long Step, BatchKey Key, int[] Examples);

/// <summary>
/// Which examples form each batch of each epoch: a pure function of (seed, epoch), so the batches from step
/// <c>s</c> onward are the same whether a run went straight through or was stopped and resumed at <c>s</c>.
/// Each epoch visits every example once, in an order shuffled by <see cref="SeededRandom"/> keyed by
/// (seed, <see cref="RandomPurpose.Order"/>, epoch), or in file order for evaluation.
/// </summary>
public sealed class BatchSchedule
{
    /// <summary>Describes the batches of <paramref name="exampleCount"/> examples.</summary>
    /// <param name="exampleCount">How many examples there are (at least one).</param>
    /// <param name="batchSize">Examples per batch (at least one).</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="shuffle">Shuffle each epoch (training); false keeps file order (evaluation).</param>
    /// <param name="dropLast">Leave out an epoch's last, smaller batch, so every batch has <paramref name="batchSize"/> examples.</param>
    /// <exception cref="ArgumentOutOfRangeException">A count is not positive, or <paramref name="dropLast"/> leaves no batch.</exception>
    public BatchSchedule(int exampleCount, int batchSize, long seed, bool shuffle = true, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(exampleCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (dropLast && exampleCount < batchSize)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize,
                $"dropping the last batch of {exampleCount} examples in batches of {batchSize} leaves no batch.");
        ExampleCount = exampleCount;
        BatchSize = batchSize;
        Seed = seed;
        Shuffle = shuffle;
        DropLast = dropLast;
    }

    /// <summary>How many examples there are.</summary>
    public int ExampleCount { get; }

    /// <summary>Examples per batch (the last batch of an epoch may have fewer unless <see cref="DropLast"/>).</summary>
    public int BatchSize { get; }

    /// <summary>The run's seed.</summary>
    public long Seed { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Whether an epoch's smaller last batch is left out.</summary>
    public bool DropLast { get; }

    /// <summary>Batches in one epoch.</summary>
    public int BatchesPerEpoch => DropLast ? ExampleCount / BatchSize : (ExampleCount + BatchSize - 1) / BatchSize;

    /// <summary>The order in which epoch <paramref name="epoch"/> visits the examples: a permutation of 0..n−1.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epoch"/> is negative.</exception>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var order = Enumerable.Range(0, ExampleCount).ToArray();
        if (Shuffle)
            SeededRandom.For(Seed, RandomPurpose.Order, epoch, 0).Shuffle(order.AsSpan());
        return order;
    }

    /// <summary>The batch that optimizer step <paramref name="step"/> consumes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> is negative.</exception>
    public ScheduledBatch At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        var (epoch, index) = Math.DivRem(step, BatchesPerEpoch);
        return Slice(Order(checked((int)epoch)), (int)epoch, (int)index);
    }

    /// <summary>
    /// The batches from step <paramref name="step"/> on, without end (a trainer stops when it has taken enough).
    /// Each epoch's order is computed once, when the stream reaches it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> is negative.</exception>
    public IEnumerable<ScheduledBatch> From(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return Enumerate(step);
    }

    /// <summary>The batches of one epoch, in order: an evaluation pass, or one epoch of training.</summary>
    public IEnumerable<ScheduledBatch> Epoch(int epoch) => From((long)epoch * BatchesPerEpoch).Take(BatchesPerEpoch);

    private IEnumerable<ScheduledBatch> Enumerate(long step)
    {
        var (epoch, index) = Math.DivRem(step, BatchesPerEpoch);
        for (var e = checked((int)epoch); ; e++, index = 0)
        {
            var order = Order(e);
            for (var i = (int)index; i < BatchesPerEpoch; i++)
                yield return Slice(order, e, i);
        }
    }

    private ScheduledBatch Slice(int[] order, int epoch, int index)
    {
        var start = index * BatchSize;
        var examples = order[start..Math.Min(start + BatchSize, ExampleCount)];
        return new ScheduledBatch((long)epoch * BatchesPerEpoch + index, new BatchKey(Seed, epoch, index), examples);
    }
}
