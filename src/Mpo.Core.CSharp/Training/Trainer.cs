using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using System.Threading;
using Mpo.Checkpoints;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// Trains any module on any objective, Hugging Face <c>Trainer</c>-style: AdamW with HF's weight-decay groups and
/// caller rules, a warmup/decay schedule, gradient accumulation and clipping, evaluation every N updates with
/// best-checkpoint tracking and early stopping, JSON-lines metrics, progress reports, and atomic checkpoints from which
/// a run resumes bit for bit (CPU).
/// <para>The model and data are the caller's: <c>loss</c> maps a batch to a <see cref="LossOutput"/> (any head:
/// classification, regression, masked/causal LM, text-to-text), <c>evaluate</c> returns named metrics, and batches
/// come from an <see cref="IBatchSource{TBatch}"/> addressed by (epoch, index). Update <c>s</c> (0-based) of a run
/// with <c>B</c> batches per epoch and accumulation <c>k</c> uses batches <c>[g·k, min(g·k + k, B))</c> of epoch
/// <c>s / ⌈B/k⌉</c>, with <c>g = s mod ⌈B/k⌉</c>; the last update of an epoch may take fewer batches.</para>
/// <para>Each update: drop gradients → for each batch, loss (checked finite) divided by the number of batches, backward
/// → <see cref="TrainerCallback.OnAfterBackward"/> → clip → AdamW with the schedule's learning rate →
/// <see cref="TrainerCallback.OnStepEnd"/> → log → evaluate → checkpoint → progress. Everything an update allocates
/// lives in one dispose scope, so memory does not grow with the number of updates.</para>
/// </summary>
/// <typeparam name="TBatch">The batch type the loss function takes.</typeparam>
public sealed class Trainer<TBatch> : IDisposable
{
    const string OptimizerFile = "optimizer.safetensors";
    const string RandomFile = "rng.safetensors";

    readonly IBatchSource<TBatch> batches;
    readonly Func<TBatch, LossOutput> loss;
    readonly Func<IReadOnlyDictionary<string, double>>? evaluate;
    readonly IReadOnlyList<TrainerCallback> callbacks;
    readonly IProgress<TrainingProgress>? progress;
    readonly EarlyStopping? tracker;
    readonly CheckpointStore? store;
    bool started;
    string? lastCheckpoint;
    long lastSavedStep = -1;
    double elapsedBefore;

    /// <summary>Sets up training; nothing runs until <see cref="Run"/>, <see cref="Resume"/> or <see cref="RunOrResume"/>.</summary>
    /// <param name="model">The module to train; its parameters with <c>requires_grad = false</c> are never touched.</param>
    /// <param name="options">Hyperparameters and output settings; validated here.</param>
    /// <param name="batches">Training batches by (epoch, index).</param>
    /// <param name="loss">Forward pass and loss of one batch, in training mode.</param>
    /// <param name="evaluate">Metrics on held-out data; called in eval mode under <c>no_grad</c>. Needed when
    /// <see cref="TrainerOptions.EvalSteps"/> is positive.</param>
    /// <param name="callbacks">Hooks into each update (gradient masks, squeezing schedules).</param>
    /// <param name="progress">Receives a report after each update, evaluation and checkpoint, synchronously.</param>
    /// <exception cref="ArgumentException">An invalid option (named), or a missing evaluation function.</exception>
    public Trainer(nn.Module model, TrainerOptions options, IBatchSource<TBatch> batches, Func<TBatch, LossOutput> loss,
                   Func<IReadOnlyDictionary<string, double>>? evaluate = null, IEnumerable<TrainerCallback>? callbacks = null,
                   IProgress<TrainingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentNullException.ThrowIfNull(loss);
        options.Validate();
        if (batches.BatchesPerEpoch < 1)
            throw new ArgumentException($"The batch source has {batches.BatchesPerEpoch} batches per epoch; it needs at least one.", nameof(batches));
        if (options.EvalSteps > 0 && evaluate is null)
            throw new ArgumentException("TrainerOptions.EvalSteps is positive but no evaluation function was given.", nameof(evaluate));
        this.callbacks = callbacks?.ToList() ?? new List<TrainerCallback>();
        var duplicate = this.callbacks.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Two callbacks are called '{duplicate.Key}'; their checkpoint states would collide.", nameof(callbacks));

        Model = model;
        Options = options;
        this.batches = batches;
        this.loss = loss;
        this.evaluate = evaluate;
        this.progress = progress;
        var k = options.GradientAccumulationSteps;
        StepsPerEpoch = (batches.BatchesPerEpoch + k - 1) / k;
        TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : (long)options.Epochs * StepsPerEpoch;
        WarmupSteps = LearningRateSchedule.WarmupSteps(options.WarmupSteps, options.WarmupRatio, TotalSteps);
        Optimizer = new AdamW(ParameterGroups.Build(model, options.LearningRate, options.WeightDecay, options.ParameterGroups),
                              options.AdamBeta1, options.AdamBeta2, options.AdamEpsilon);
        if (Optimizer.Groups.Count == 0)
            throw new ArgumentException("The model has no parameter that requires gradients; there is nothing to train.", nameof(model));
        if (options.BestMetric is { } metric)
            tracker = new EarlyStopping(metric, options.BestMetricMode, options.EarlyStoppingPatience, options.EarlyStoppingThreshold);
        if (options.OutputFolder is { } folder) store = new CheckpointStore(folder);
    }

    public nn.Module Model { get; }
    public TrainerOptions Options { get; }
    public AdamW Optimizer { get; }
    /// <summary>Updates made so far (including those before a resume).</summary>
    public long GlobalStep { get; private set; }
    /// <summary>Updates the run is planned for.</summary>
    public long TotalSteps { get; }
    /// <summary>Updates per epoch, ⌈batches per epoch / accumulation⌉.</summary>
    public int StepsPerEpoch { get; }
    /// <summary>Warmup updates of the schedule.</summary>
    public long WarmupSteps { get; }
    /// <summary>Path of <c>metrics.jsonl</c>, or null without an output folder.</summary>
    public string? MetricsPath => store is null ? null : Path.Combine(store.Folder, MetricsLog.FileName);

    /// <summary>Starts a fresh run: seeds torch's generator (<see cref="TrainerOptions.Seed"/>) and trains.</summary>
    /// <exception cref="InvalidOperationException">The output folder already holds checkpoints (use <see cref="Resume"/>).</exception>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        Start();
        if (store?.ReadManifest() is { } manifest)
            throw new InvalidOperationException(
                $"{store.Folder} already holds checkpoints of a run (latest {manifest.Latest}); resume it or choose another OutputFolder.");
        store?.RemoveIncomplete();
        if (MetricsPath is { } metrics) MetricsLog.TruncateAfter(metrics, -1);
        if (Options.Seed is { } seed) RandomState.Seed(seed);
        return Train(null, cancellationToken);
    }

    /// <summary>
    /// Resumes from <paramref name="checkpoint"/>, or from the latest checkpoint of the output folder: restores the
    /// parameters, optimizer state, generator state, counters and callback states, cuts <c>metrics.jsonl</c> back to
    /// the checkpoint's step, and trains on as the uninterrupted run would have.
    /// </summary>
    /// <exception cref="CheckpointFormatException">A checkpoint file is corrupt, or was written with different
    /// options, optimizer groups or batch source; names the file and the tensor or key.</exception>
    /// <exception cref="CheckpointMismatchException">The checkpoint's tensors do not fit the model; names them.</exception>
    public TrainingResult Resume(string? checkpoint = null, CancellationToken cancellationToken = default)
    {
        Start();
        store?.RemoveIncomplete();
        var folder = checkpoint ?? store?.Latest
                     ?? throw new InvalidOperationException(store is null
                         ? "No checkpoint to resume from: TrainerOptions.OutputFolder is not set and no checkpoint folder was given."
                         : $"No checkpoint to resume from in {store.Folder}.");
        Restore(Path.GetFullPath(folder));
        return Train(GlobalStep, cancellationToken);
    }

    /// <summary><see cref="Resume"/> when the output folder holds a checkpoint, <see cref="Run"/> otherwise: what a
    /// job that may have been killed runs every time it starts.</summary>
    public TrainingResult RunOrResume(CancellationToken cancellationToken = default) =>
        store?.Latest is not null ? Resume(null, cancellationToken) : Run(cancellationToken);

    /// <summary>Re-reads the model's trainable parameters into the optimizer (after model surgery); optimizer state is
    /// dropped for parameters that were replaced or changed shape. Returns their names.</summary>
    public IReadOnlyList<string> RefreshParameters() =>
        Optimizer.Rebind(ParameterGroups.Build(Model, Options.LearningRate, Options.WeightDecay, Options.ParameterGroups));

    void Start()
    {
        if (started) throw new InvalidOperationException("A Trainer runs once; make a new one to resume or to train again.");
        started = true;
    }

    TrainingResult Train(long? resumedFrom, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        double Elapsed() => elapsedBefore + clock.Elapsed.TotalSeconds;
        using var metrics = MetricsPath is { } path ? MetricsLog.Append(path) : null;
        var losses = new List<double>();
        var evaluations = new List<EvaluationRecord>();
        var firstStep = GlobalStep + 1;
        var reason = StopReason.Completed;
        var interval = new Interval(elapsedBefore);
        Model.train();

        while (GlobalStep < TotalSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                reason = StopReason.Cancelled;
                break;
            }
            var stepStart = Elapsed();
            var outcome = Step();
            losses.Add(outcome.Loss);
            interval.Add(outcome);
            var stepSeconds = Elapsed() - stepStart;
            double? tokensPerSecond = outcome.Tokens > 0 && stepSeconds > 0 ? outcome.Tokens / stepSeconds : null;

            if (GlobalStep % Options.LoggingSteps == 0 || GlobalStep == TotalSteps)
                metrics?.Write(interval.Flush(GlobalStep, EpochFraction(), Elapsed()));

            var improved = false;
            if (Options.EvalSteps > 0 && GlobalStep % Options.EvalSteps == 0)
            {
                var results = Evaluate();
                evaluations.Add(new EvaluationRecord(GlobalStep, results));
                var line = new JsonObject { ["step"] = GlobalStep, ["epoch"] = EpochFraction() };
                foreach (var (name, value) in results) line["eval_" + name] = value;
                line["wall_time"] = Elapsed();
                metrics?.Write(line);
                if (tracker is not null)
                {
                    if (!results.TryGetValue(tracker.Metric, out var value))
                        throw new InvalidOperationException(
                            $"TrainerOptions.BestMetric is '{tracker.Metric}', but the evaluation at step {GlobalStep} returned only: {string.Join(", ", results.Keys)}.");
                    improved = tracker.Observe(GlobalStep, value);
                    if (tracker.ShouldStop) reason = StopReason.EarlyStopped;
                }
                progress?.Report(Report(TrainingEvent.Evaluation, outcome, null, Elapsed(), results));
            }
            if (outcome.StopRequested) reason = StopReason.StopRequested;

            var stopping = reason != StopReason.Completed;
            var due = Options.SaveSteps > 0 && GlobalStep % Options.SaveSteps == 0;
            if (store is not null && (due || improved || outcome.CheckpointRequested || stopping || GlobalStep == TotalSteps))
                SaveCheckpoint(Elapsed(), outcome);
            progress?.Report(Report(TrainingEvent.Step, outcome, tokensPerSecond, Elapsed()));
            if (stopping) break;
        }

        if (store is not null && lastSavedStep != GlobalStep)
            SaveCheckpoint(Elapsed(), null);
        string? bestCheckpoint = null;
        if (tracker?.Best is not null && store is not null && Directory.Exists(store.PathOf(tracker.BestStep)))
        {
            bestCheckpoint = store.PathOf(tracker.BestStep);
            if (Options.LoadBestAtEnd) LoadModel(bestCheckpoint);
        }
        return new TrainingResult(reason, GlobalStep, TotalSteps, resumedFrom, losses, firstStep, evaluations,
                                  tracker?.Best, tracker?.Best is null ? null : tracker.BestStep, bestCheckpoint, lastCheckpoint);
    }

    /// <summary>One optimizer update: the accumulated batches' losses and gradients, the hooks, clipping and AdamW.</summary>
    StepOutcome Step()
    {
        using var scope = NewDisposeScope();
        var (epoch, first, count) = Position(GlobalStep);
        var step = GlobalStep + 1;
        Optimizer.ZeroGrad();
        double lossSum = 0;
        long tokens = 0;
        var components = new Dictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            using var batchScope = NewDisposeScope();
            var batch = batches.Batch(epoch, first + i);
            try
            {
                var output = loss(batch) ?? throw new InvalidOperationException($"The loss function returned null for batch {first + i} of epoch {epoch}.");
                var value = output.Loss.ToDouble();
                if (!double.IsFinite(value))
                    throw new TrainingDivergedException("loss", value, step, epoch, first + i, lastCheckpoint);
                // Dividing by the batch count makes k accumulated mean losses one mean over all k batches.
                (count == 1 ? output.Loss : output.Loss / count).backward();
                lossSum += value;
                tokens += output.Tokens;
                if (output.Components is not null)
                    foreach (var (name, part) in output.Components)
                        components[name] = components.GetValueOrDefault(name) + part.ToDouble() / count;
            }
            finally
            {
                (batch as IDisposable)?.Dispose();
            }
        }

        var factor = LearningRateSchedule.Factor(Options.Schedule, GlobalStep, WarmupSteps, TotalSteps);
        var context = new TrainingStepContext(Model, Optimizer, step, epoch, first, count, lossSum / count, factor,
                                              StepSeed(step), RefreshParameters);
        foreach (var callback in callbacks) callback.OnAfterBackward(context);

        var gradients = new List<Tensor>();
        foreach (var (name, parameter) in context.TrainableParameters)
            if (!context.Skipped.Contains(name) && parameter.grad is { } grad)
                gradients.Add(grad);
        var gradNorm = GradientClipping.ClipByGlobalNorm(gradients, Options.MaxGradNorm);
        if (!double.IsFinite(gradNorm))
            throw new TrainingDivergedException("gradient norm", gradNorm, step, epoch, null, lastCheckpoint);
        context.GradNorm = gradNorm;

        Optimizer.Step(factor, context.Skipped);
        GlobalStep = step;
        foreach (var callback in callbacks) callback.OnStepEnd(context);
        return new StepOutcome(epoch, context.Loss, Options.LearningRate * factor, gradNorm, tokens, components,
                               context.CheckpointRequested, context.StopRequested);
    }

    (int Epoch, int First, int Count) Position(long step)
    {
        var epoch = (int)(step / StepsPerEpoch);
        var first = (int)(step % StepsPerEpoch) * Options.GradientAccumulationSteps;
        return (epoch, first, Math.Min(Options.GradientAccumulationSteps, batches.BatchesPerEpoch - first));
    }

    double EpochFraction() => (double)GlobalStep / StepsPerEpoch;

    IReadOnlyDictionary<string, double> Evaluate()
    {
        Model.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            // Forked: evaluating (or evaluating more often) never shifts the dropout masks of later updates.
            var results = RandomState.Fork(evaluate!) ?? throw new InvalidOperationException("The evaluation function returned null.");
            return new Dictionary<string, double>(results, StringComparer.Ordinal);
        }
        finally
        {
            Model.train();
        }
    }

    void SaveCheckpoint(double elapsed, StepOutcome? outcome)
    {
        var (epoch, batchIndex, _) = Position(GlobalStep);
        var state = new TrainerState(GlobalStep, epoch, batchIndex, batches.BatchesPerEpoch, TotalSteps, elapsed,
                                     tracker?.Save(), SaveCallbacks(), Options.ToJson());
        lastCheckpoint = store!.Save(GlobalStep, tracker?.Best is null ? null : tracker.BestStep, Options.SaveTotalLimit, folder =>
        {
            if (Model is PretrainedModel pretrained) pretrained.Save(folder);
            else CheckpointFolder.Save(folder, Model.state_dict());
            Optimizer.Save(Path.Combine(folder, OptimizerFile));
            RandomState.Save(Path.Combine(folder, RandomFile));
            state.Write(folder);
        });
        lastSavedStep = GlobalStep;
        if (outcome is not null)
            progress?.Report(Report(TrainingEvent.Checkpoint, outcome, null, elapsed, checkpoint: lastCheckpoint));
    }

    JsonObject SaveCallbacks()
    {
        var states = new JsonObject();
        foreach (var callback in callbacks)
            if (callback.SaveState() is { } s) states[callback.Name] = s;
        return states;
    }

    void Restore(string folder)
    {
        var state = TrainerState.Read(folder);
        var stateFile = Path.Combine(folder, TrainerState.FileName);
        var current = Options.ToJson();
        foreach (var key in current.Select(kv => kv.Key).Union(state.Options.Select(kv => kv.Key)))
        {
            if (TrainerOptions.ResumeNeutral.Contains(key)) continue;
            var was = state.Options[key];
            var now = current[key];
            if (!JsonNode.DeepEquals(was, now))
                throw new CheckpointFormatException(stateFile,
                    $"option '{key}' was {was?.ToJsonString() ?? "absent"} when the checkpoint was written and is {now?.ToJsonString() ?? "absent"} now; an exact resume needs the same value");
        }
        if (state.BatchesPerEpoch != batches.BatchesPerEpoch)
            throw new CheckpointFormatException(stateFile,
                $"key 'batches_per_epoch' is {state.BatchesPerEpoch}, but the batch source has {batches.BatchesPerEpoch} batches per epoch");
        if (state.GlobalStep > TotalSteps)
            throw new CheckpointFormatException(stateFile, $"key 'global_step' is {state.GlobalStep}, beyond this run's {TotalSteps} updates");
        if (tracker is not null)
        {
            if (state.EarlyStopping is null)
                throw new CheckpointFormatException(stateFile, $"key 'early_stopping' is missing, but this run tracks '{tracker.Metric}'");
            try { tracker.Load(state.EarlyStopping); }
            catch (FormatException e) { throw new CheckpointFormatException(stateFile, $"key 'early_stopping': {e.Message}", inner: e); }
        }
        var names = callbacks.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, _) in state.Callbacks)
            if (!names.Contains(name))
                throw new CheckpointFormatException(stateFile, $"key 'callbacks' holds the state of callback '{name}', which this run does not have");

        // Callback state first: a callback that changed the model's structure (bonds truncated by squeezing) restores
        // that structure here, so the parameters are re-read before the checkpoint's weights are loaded into them.
        foreach (var callback in callbacks)
            if (state.Callbacks[callback.Name] is { } saved)
                callback.LoadState(saved.DeepClone());
        RefreshParameters();
        LoadModel(folder);
        Optimizer.Load(Path.Combine(folder, OptimizerFile));
        RandomState.Load(Path.Combine(folder, RandomFile));
        GlobalStep = state.GlobalStep;
        elapsedBefore = state.ElapsedSeconds;
        lastCheckpoint = folder;
        lastSavedStep = GlobalStep;
        if (MetricsPath is { } metrics) MetricsLog.TruncateAfter(metrics, GlobalStep);
    }

    void LoadModel(string folder)
    {
        using var checkpoint = CheckpointFolder.Open(folder);
        if (Model is PretrainedModel pretrained) pretrained.LoadWeights(checkpoint);
        else checkpoint.LoadInto(Model);
    }

    TrainingProgress Report(TrainingEvent kind, StepOutcome outcome, double? tokensPerSecond, double elapsed,
                            IReadOnlyDictionary<string, double>? metrics = null, string? checkpoint = null) =>
        new(kind, GlobalStep, TotalSteps, outcome.Epoch, outcome.Loss, outcome.LearningRate, outcome.GradNorm, tokensPerSecond,
            TimeSpan.FromSeconds(elapsed), metrics, checkpoint);

    /// <summary>SplitMix64 of (seed, step): well-mixed, and a function of the run's seed and the step only.</summary>
    long StepSeed(long step)
    {
        unchecked
        {
            var z = (ulong)(Options.Seed ?? 0) + (ulong)step * 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)(z ^ (z >> 31));
        }
    }

    public void Dispose() => Optimizer.Dispose();

    sealed record StepOutcome(int Epoch, double Loss, double LearningRate, double GradNorm, long Tokens,
                              IReadOnlyDictionary<string, double> Components, bool CheckpointRequested, bool StopRequested);

    /// <summary>Sums over the updates since the last metrics line; a line holds their mean loss (as HF logs it).</summary>
    sealed class Interval(double start)
    {
        double lossSum;
        int steps;
        long tokens;
        StepOutcome? last;
        readonly Dictionary<string, double> components = new(StringComparer.Ordinal);

        public void Add(StepOutcome outcome)
        {
            lossSum += outcome.Loss;
            steps++;
            tokens += outcome.Tokens;
            foreach (var (name, value) in outcome.Components)
                components[name] = components.GetValueOrDefault(name) + value;
            last = outcome;
        }

        public JsonObject Flush(long step, double epoch, double wallTime)
        {
            var line = new JsonObject
            {
                ["step"] = step,
                ["epoch"] = epoch,
                ["loss"] = lossSum / steps,
                ["learning_rate"] = last!.LearningRate,
                ["grad_norm"] = last.GradNorm,
            };
            foreach (var (name, sum) in components) line[name] = sum / steps;
            if (tokens > 0 && wallTime > start) line["tokens_per_second"] = tokens / (wallTime - start);
            line["wall_time"] = wallTime;
            lossSum = 0;
            steps = 0;
            tokens = 0;
            components.Clear();
            start = wallTime;
            return line;
        }
    }
}
