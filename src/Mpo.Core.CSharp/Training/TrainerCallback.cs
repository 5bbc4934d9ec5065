using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// A hook into each update, for methods that need more than a loss: MPOE's gradient mask on the shared central tensor
/// (<see cref="OnAfterBackward"/>, spec §5.3), MPOP's dimension-squeezing schedule that truncates bonds when the loss
/// has converged (<see cref="OnStepEnd"/>, spec §4.4). A callback with state across steps (counters, a loss window)
/// returns it from <see cref="SaveState"/> so that checkpoints carry it and a resumed run behaves identically.
/// </summary>
public abstract class TrainerCallback
{
    /// <summary>Key of this callback's state in a checkpoint; unique among a trainer's callbacks.</summary>
    public virtual string Name => GetType().Name;

    /// <summary>After every accumulated batch has been back-propagated, before clipping and the optimizer update:
    /// gradients may be masked or scaled here, and updates skipped (<see cref="TrainingStepContext.SkipUpdate"/>).</summary>
    public virtual void OnAfterBackward(TrainingStepContext context) { }

    /// <summary>After the optimizer update of <see cref="TrainingStepContext.Step"/>, before logging, evaluation and
    /// checkpointing: parameters may be truncated here (then call <see cref="TrainingStepContext.RefreshParameters"/>
    /// or reset their optimizer state), a checkpoint or a stop requested.</summary>
    public virtual void OnStepEnd(TrainingStepContext context) { }

    /// <summary>State to store in a checkpoint; null when the callback has none.</summary>
    public virtual JsonNode? SaveState() => null;

    /// <summary>Restores what <see cref="SaveState"/> returned, when resuming. Runs before the checkpoint's weights
    /// are loaded: a callback that changed the model's structure during the run (truncated bonds) re-applies that
    /// change here, and the trainer then re-reads the parameters, so the checkpoint's shapes fit.</summary>
    public virtual void LoadState(JsonNode state) { }
}

/// <summary>What a <see cref="TrainerCallback"/> sees of the update in progress, and what it may ask of the trainer.</summary>
public sealed class TrainingStepContext
{
    readonly HashSet<string> skipped = new(StringComparer.Ordinal);
    readonly Func<IReadOnlyList<string>> refresh;

    internal TrainingStepContext(nn.Module model, AdamW optimizer, long step, int epoch, int firstBatch, int batchCount, double loss, double learningRateFactor,
                                 long stepSeed, Func<IReadOnlyList<string>> refresh)
    {
        Model = model;
        Optimizer = optimizer;
        Step = step;
        Epoch = epoch;
        FirstBatch = firstBatch;
        BatchCount = batchCount;
        Loss = loss;
        LearningRateFactor = learningRateFactor;
        StepSeed = stepSeed;
        this.refresh = refresh;
    }

    public nn.Module Model { get; }
    public AdamW Optimizer { get; }
    /// <summary>Parameters the optimizer updates, by name (frozen ones are not among them).</summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableParameters => Optimizer.Groups.SelectMany(g => g.Parameters);
    /// <summary>The update in progress, 1-based: equal to the global step once the update is made.</summary>
    public long Step { get; }
    public int Epoch { get; }
    /// <summary>Index within the epoch of the first batch accumulated into this update.</summary>
    public int FirstBatch { get; }
    /// <summary>Batches accumulated into this update.</summary>
    public int BatchCount { get; }
    /// <summary>Mean loss of the accumulated batches.</summary>
    public double Loss { get; }
    /// <summary>The schedule's multiplier for this update.</summary>
    public double LearningRateFactor { get; }
    /// <summary>Global gradient norm before clipping; set once clipping has run (null in <see cref="TrainerCallback.OnAfterBackward"/>).</summary>
    public double? GradNorm { get; internal set; }
    /// <summary>A seed that depends only on the run's seed and <see cref="Step"/>: randomness a callback draws from a
    /// <c>torch.Generator</c> seeded with it is reproduced exactly on resume (e.g. MPOE's Bernoulli mask).</summary>
    public long StepSeed { get; }

    /// <summary>Names whose update this step is skipped.</summary>
    public IReadOnlySet<string> Skipped => skipped;
    internal bool CheckpointRequested { get; private set; }
    internal bool StopRequested { get; private set; }

    /// <summary>Leaves parameter <paramref name="name"/> out of this update entirely (no decay, moments or step
    /// count), MPOE's "discard the central tensor's update with probability p_b" (spec §5.3).</summary>
    public void SkipUpdate(string name) => skipped.Add(name);

    /// <summary>Asks for a checkpoint after this update (MPOP saved whenever a bond cap crossed a multiple of 10).</summary>
    public void RequestCheckpoint() => CheckpointRequested = true;

    /// <summary>Asks the trainer to stop after this update; it writes a checkpoint and returns <see cref="StopReason.StopRequested"/>.</summary>
    public void RequestStop() => StopRequested = true;

    /// <summary>Re-reads the model's trainable parameters into the optimizer's groups after surgery (a replaced or
    /// re-shaped parameter, a changed <c>requires_grad</c>); state is dropped for parameters that changed.</summary>
    /// <returns>Names whose optimizer state was dropped.</returns>
    public IReadOnlyList<string> RefreshParameters() => refresh();
}
