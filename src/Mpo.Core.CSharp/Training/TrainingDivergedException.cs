using System;

namespace Mpo.Training;

/// <summary>
/// The loss or the gradient norm became NaN or infinite. Raised before the optimizer update of that step, so the
/// model still holds the previous step's parameters and no checkpoint is written after the last good one.
/// </summary>
public sealed class TrainingDivergedException : Exception
{
    public TrainingDivergedException(string quantity, double value, long step, int epoch, int? batch, string? lastCheckpoint)
        : base(Describe(quantity, value, step, epoch, batch, lastCheckpoint))
    {
        Quantity = quantity;
        Value = value;
        Step = step;
        Epoch = epoch;
        Batch = batch;
        LastCheckpoint = lastCheckpoint;
    }

    /// <summary>"loss" or "gradient norm".</summary>
    public string Quantity { get; }
    public double Value { get; }
    /// <summary>The update (1-based global step) that failed.</summary>
    public long Step { get; }
    public int Epoch { get; }
    /// <summary>The batch index within the epoch whose loss failed; null for the gradient norm (all batches of the step).</summary>
    public int? Batch { get; }
    /// <summary>The last checkpoint written before the failure (intact), or null.</summary>
    public string? LastCheckpoint { get; }

    static string Describe(string quantity, double value, long step, int epoch, int? batch, string? lastCheckpoint) =>
        $"Training diverged: {quantity} is {value} at step {step} (epoch {epoch}{(batch is { } b ? $", batch {b}" : "")}); " +
        "the parameters were not updated by this step. " +
        (lastCheckpoint is null ? "No checkpoint was written before it." : $"The last good checkpoint is {lastCheckpoint}.");
}
