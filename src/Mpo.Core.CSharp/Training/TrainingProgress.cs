using System;
using System.Collections.Generic;

namespace Mpo.Training;

/// <summary>What a <see cref="TrainingProgress"/> report announces.</summary>
public enum TrainingEvent
{
    /// <summary>An optimizer update finished.</summary>
    Step,
    /// <summary>An evaluation finished; <see cref="TrainingProgress.Metrics"/> holds its results.</summary>
    Evaluation,
    /// <summary>A checkpoint was written; <see cref="TrainingProgress.Checkpoint"/> is its folder.</summary>
    Checkpoint,
}

/// <summary>
/// One progress report, sent synchronously through <see cref="IProgress{T}"/> so that the core stays free of any
/// console library (the F# CLI draws its bars from these).
/// </summary>
/// <param name="Step">Updates done so far.</param>
/// <param name="Epoch">Epoch of the last update (0-based).</param>
/// <param name="Loss">Loss of the last update (mean over its accumulated batches).</param>
/// <param name="LearningRate">Learning rate of the default group at the last update.</param>
/// <param name="GradNorm">Global gradient norm of the last update, before clipping.</param>
/// <param name="TokensPerSecond">Throughput since the previous report, when the loss function counts tokens.</param>
/// <param name="Elapsed">Training time, including the time before a resume.</param>
public sealed record TrainingProgress(
    TrainingEvent Event,
    long Step,
    long TotalSteps,
    int Epoch,
    double Loss,
    double LearningRate,
    double GradNorm,
    double? TokensPerSecond,
    TimeSpan Elapsed,
    IReadOnlyDictionary<string, double>? Metrics = null,
    string? Checkpoint = null);
