using System.Collections.Generic;

namespace Mpo.Training;

/// <summary>Why a run ended.</summary>
public enum StopReason
{
    /// <summary>All updates were made.</summary>
    Completed,
    /// <summary>The best metric stopped improving for <c>EarlyStoppingPatience</c> evaluations.</summary>
    EarlyStopped,
    /// <summary>The cancellation token fired; a checkpoint was written at the last finished update.</summary>
    Cancelled,
    /// <summary>A callback asked to stop (e.g. MPOP's squeezing schedule when the loss no longer converges).</summary>
    StopRequested,
}

/// <summary>One evaluation: the update after which it ran and the metrics the evaluation function returned.</summary>
public sealed record EvaluationRecord(long Step, IReadOnlyDictionary<string, double> Metrics);

/// <summary>The outcome of <see cref="Trainer{TBatch}.Run"/> or <see cref="Trainer{TBatch}.Resume"/>.</summary>
/// <param name="GlobalStep">Updates done, counting those before a resume.</param>
/// <param name="ResumedFromStep">The checkpoint step this run started from; null for a fresh run.</param>
/// <param name="Losses">Loss of every update this run made, in order; the first is update <see cref="FirstStep"/>.</param>
/// <param name="FirstStep">The 1-based global step of <c>Losses[0]</c>.</param>
/// <param name="Evaluations">Evaluations this run made.</param>
/// <param name="BestStep">Step of the best evaluation so far (counting before a resume); null without a best metric or evaluation.</param>
/// <param name="BestCheckpoint">Folder of the best checkpoint, when one was written.</param>
/// <param name="LastCheckpoint">Folder of the last checkpoint written, when any.</param>
public sealed record TrainingResult(
    StopReason Reason,
    long GlobalStep,
    long TotalSteps,
    long? ResumedFromStep,
    IReadOnlyList<double> Losses,
    long FirstStep,
    IReadOnlyList<EvaluationRecord> Evaluations,
    double? BestMetric,
    long? BestStep,
    string? BestCheckpoint,
    string? LastCheckpoint);
