using System;

namespace Mpo.Training;

/// <summary>
/// Training batches addressed by (epoch, index) rather than drawn from an iterator, so that a resumed run asks for
/// exactly the batches an uninterrupted run would have seen next, without replaying the data or saving a
/// data-loader state. A source that shuffles derives each epoch's order from its own seed and the epoch number.
/// <para>The trainer calls <see cref="Batch"/> inside the step's dispose scope: tensors made there are freed after the
/// step; a batch that is <see cref="IDisposable"/> is disposed after its loss has been back-propagated.</para>
/// </summary>
/// <typeparam name="TBatch">Whatever the loss function takes: <c>ModelInputs</c>, a tuple of tensors, …</typeparam>
public interface IBatchSource<out TBatch>
{
    /// <summary>Batches in one epoch, the same for every epoch.</summary>
    int BatchesPerEpoch { get; }

    /// <summary>Batch <paramref name="index"/> (0-based, below <see cref="BatchesPerEpoch"/>) of epoch <paramref name="epoch"/>.</summary>
    TBatch Batch(int epoch, int index);
}

/// <summary>Builds an <see cref="IBatchSource{TBatch}"/> from a function.</summary>
public static class BatchSource
{
    /// <summary>A source of <paramref name="batchesPerEpoch"/> batches per epoch made by <paramref name="batch"/>(epoch, index).</summary>
    public static IBatchSource<TBatch> Create<TBatch>(int batchesPerEpoch, Func<int, int, TBatch> batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchesPerEpoch);
        ArgumentNullException.ThrowIfNull(batch);
        return new FunctionSource<TBatch>(batchesPerEpoch, batch);
    }

    sealed class FunctionSource<TBatch>(int batchesPerEpoch, Func<int, int, TBatch> batch) : IBatchSource<TBatch>
    {
        public int BatchesPerEpoch => batchesPerEpoch;
        public TBatch Batch(int epoch, int index) => batch(epoch, index);
    }
}
