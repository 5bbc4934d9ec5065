using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Data.Batching;

/// <summary>
/// The batches a trainer consumes: a <see cref="BatchSchedule"/> over a list of items, each batch made by an
/// <see cref="IBatchCollator{TItem}"/>. Resuming at step <c>s</c> with <see cref="From"/> yields exactly the batches an
/// uninterrupted run sees from step <c>s</c>, masks and corruption included.
/// </summary>
/// <typeparam name="TItem">What one example is.</typeparam>
public sealed class BatchStream<TItem>
{
    private readonly IReadOnlyList<TItem> items;
    private readonly IBatchCollator<TItem> collator;

    /// <summary>Pairs a schedule with the items it indexes and the collator that makes their batches.</summary>
    /// <exception cref="ArgumentException">The schedule is for a different number of items.</exception>
    public BatchStream(IReadOnlyList<TItem> items, BatchSchedule schedule, IBatchCollator<TItem> collator)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(collator);
        if (schedule.ExampleCount != items.Count)
            throw new ArgumentException($"The schedule is for {schedule.ExampleCount} examples but there are {items.Count}.", nameof(schedule));
        this.items = items;
        this.collator = collator;
        Schedule = schedule;
    }

    /// <summary>Which items form each batch.</summary>
    public BatchSchedule Schedule { get; }

    /// <summary>The batch of one scheduled step.</summary>
    public TokenBatch Collate(ScheduledBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return collator.Collate(batch.Examples.Select(i => items[i]).ToArray(), batch.Key);
    }

    /// <summary>The batches from step <paramref name="step"/> on, without end.</summary>
    public IEnumerable<(ScheduledBatch Batch, TokenBatch Tokens)> From(long step) =>
        Schedule.From(step).Select(b => (b, Collate(b)));

    /// <summary>The batches of one epoch (an evaluation pass over a dev split, for instance).</summary>
    public IEnumerable<(ScheduledBatch Batch, TokenBatch Tokens)> Epoch(int epoch) =>
        Schedule.Epoch(epoch).Select(b => (b, Collate(b)));
}
