using System.Collections.Generic;

namespace Mpo.Data.Batching;

/// <summary>
/// Turns the items of one batch into a <see cref="TokenBatch"/> (Hugging Face calls this a data collator). Any
/// randomness (masking, span corruption) comes from <see cref="BatchKey.Random"/>, so a batch is a pure function of
/// its items and its key.
/// </summary>
/// <typeparam name="TItem">What one example is: an encoded text pair, a block of token ids.</typeparam>
public interface IBatchCollator<in TItem>
{
    /// <summary>The batch of <paramref name="items"/>, which the schedule gave the key <paramref name="key"/>.</summary>
    TokenBatch Collate(IReadOnlyList<TItem> items, BatchKey key);
}
