using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Layers;
using Mpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>How MPOE's gradient mask drops the shared central tensors' update (spec §5.3; the paper leaves it open).</summary>
public enum GradientMaskMode
{
    /// <summary>One Bernoulli(p_b) coin per central tensor per step; on heads its whole update is skipped: no moment
    /// update, no weight decay, no step count (<see cref="TrainingStepContext.SkipUpdate"/>). With AdamW a zeroed
    /// gradient would still move the tensor through momentum and decay; this does not. The default.</summary>
    SkipStep,
    /// <summary>An element-wise Bernoulli(p_b) mask, C ← C − α·∇C ⊙ (1 − b) taken literally (MPOE Algorithm 1): the
    /// gradient is masked before clipping and the optimizer, and masked elements are restored after the step —
    /// parameter and AdamW moments — so they do not move at all. The tensor's AdamW step count still advances.</summary>
    MaskUpdate,
    /// <summary>Child-Tuning's element-wise mask (Xu et al. 2021; the authors' <c>ChildTuningOptimizer</c>): the
    /// gradient's masked elements are zeroed before the optimizer, which then updates every element — masked ones
    /// still move through AdamW's momentum and weight decay. At p_b = 1 nothing of the gradient is left and the update
    /// is skipped.</summary>
    MaskGradient,
}

/// <summary>The masking probability p_b by update (1-based): from <see cref="Start"/> at update 1 linearly to
/// <see cref="End"/> at update <see cref="Steps"/> + 1, then constant (<see cref="Constant"/> for a fixed p_b).</summary>
public sealed record GradientMaskSchedule
{
    public GradientMaskSchedule(double start, double end, long steps)
    {
        if (!(start >= 0 && start <= 1)) throw new ArgumentOutOfRangeException(nameof(start), start, "p_b must be in [0, 1]");
        if (!(end >= 0 && end <= 1)) throw new ArgumentOutOfRangeException(nameof(end), end, "p_b must be in [0, 1]");
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps), steps, "the ramp length must be non-negative");
        Start = start;
        End = end;
        Steps = steps;
    }

    public double Start { get; }
    public double End { get; }
    public long Steps { get; }

    public static GradientMaskSchedule Constant(double probability) => new(probability, probability, 0);
    public static GradientMaskSchedule Linear(double start, double end, long steps) => new(start, end, steps);

    /// <summary>p_b at update <paramref name="step"/> (1-based).</summary>
    public double At(long step) =>
        Steps == 0 ? End : Start + (End - Start) * Math.Clamp((step - 1) / (double)Steps, 0.0, 1.0);
}

/// <summary>
/// MPOE's gradient mask against unbalanced optimization (P2 §3.2, spec §5.3): every routed token updates the shared
/// central tensor but only its own expert's auxiliary tensors, so at each update the central tensors' update is
/// dropped with probability p_b. p_b = 1 is freezing them (MPOE's <c>--tensor_learn</c>), p_b = 0 is plain training,
/// both exactly. Randomness comes from a generator seeded with the trainer's <see cref="TrainingStepContext.StepSeed"/>
/// and the tensor's name, so a resumed run draws the same masks, and nothing else's random stream moves.
/// <para>Targets: by default the shared central tensors of the model's <see cref="MpoExpertMatrices"/> (not the
/// central tensors of plain MPO layers); <c>select</c> chooses other parameters by name.</para>
/// </summary>
public sealed class GradientMaskCallback : TrainerCallback
{
    readonly GradientMaskSchedule schedule;
    readonly Func<string, bool>? select;
    readonly List<(string Name, Parameter Parameter, Tensor Keep, Tensor Before, Tensor? ExpAvg, Tensor? ExpAvgSq)> pending = new();
    readonly Dictionary<string, double> lastStep = new(StringComparer.Ordinal);
    HashSet<string>? sharedCentrals;

    /// <param name="probability">p_b by update.</param>
    /// <param name="mode">How the update is dropped.</param>
    /// <param name="rescale">Divide the kept gradient by 1 − p_b, as Child-Tuning-F does, so its expectation is the
    /// unmasked gradient (element-wise modes; a skipped step has nothing to rescale).</param>
    /// <param name="select">Which parameters (by dotted name) to mask; default the shared central tensors of MPO experts.</param>
    public GradientMaskCallback(GradientMaskSchedule probability, GradientMaskMode mode = GradientMaskMode.SkipStep, bool rescale = false,
                                Func<string, bool>? select = null)
    {
        schedule = probability ?? throw new ArgumentNullException(nameof(probability));
        if (rescale && mode == GradientMaskMode.SkipStep)
            throw new ArgumentException("rescaling applies to the element-wise modes; a skipped step has no gradient left to rescale", nameof(rescale));
        Mode = mode;
        Rescale = rescale;
        this.select = select;
    }

    public GradientMaskMode Mode { get; }
    public bool Rescale { get; }
    public GradientMaskSchedule Schedule => schedule;
    /// <summary>Tensor-updates skipped entirely so far (all modes; counted across resumes).</summary>
    public long SkippedUpdates { get; private set; }
    /// <summary>Masked gradient elements so far (element-wise modes).</summary>
    public long MaskedElements { get; private set; }
    /// <summary>Gradient elements of the targets seen so far.</summary>
    public long SeenElements { get; private set; }
    /// <summary>The last update's masked fraction per target tensor (1 = skipped).</summary>
    public IReadOnlyDictionary<string, double> LastStep => lastStep;

    public override void OnAfterBackward(TrainingStepContext context)
    {
        lastStep.Clear();
        DisposePending();
        double p = schedule.At(context.Step);
        using var _ = no_grad();
        foreach (var (name, parameter) in Targets(context))
        {
            if (parameter.grad is not { } grad) continue;   // not reached by the loss: AdamW skips it anyway
            long size = grad.numel();
            SeenElements += size;
            using var generator = new Generator((ulong)Seed(context.StepSeed, name), grad.device);
            if (Mode == GradientMaskMode.SkipStep || p >= 1)
            {
                bool skip = p >= 1 || (p > 0 && rand(new long[] { 1 }, generator: generator, device: grad.device).item<float>() < p);
                if (skip)
                {
                    context.SkipUpdate(name);
                    SkippedUpdates++;
                    MaskedElements += Mode == GradientMaskMode.SkipStep ? 0 : size;
                }
                lastStep[name] = skip ? 1.0 : 0.0;
                continue;
            }
            if (p <= 0) { lastStep[name] = 0.0; continue; }   // bit for bit plain training
            using var scope = NewDisposeScope();
            var keep = rand(grad.shape, generator: generator, dtype: ScalarType.Float32, device: grad.device).ge(p);
            long masked = size - keep.sum().item<long>();
            MaskedElements += masked;
            lastStep[name] = (double)masked / size;
            var factor = keep.to(grad.dtype);
            if (Rescale) factor = factor.div(1.0 - p);
            grad.mul_(factor);
            if (Mode == GradientMaskMode.MaskUpdate)
            {
                var state = context.Optimizer.State.TryGetValue(name, out var s) ? s : null;
                pending.Add((name, parameter, keep.DetachFromDisposeScope(), parameter.detach().clone().DetachFromDisposeScope(),
                             state?.ExpAvg.clone().DetachFromDisposeScope(), state?.ExpAvgSq.clone().DetachFromDisposeScope()));
            }
        }
    }

    public override void OnStepEnd(TrainingStepContext context)
    {
        using var _ = no_grad();
        foreach (var (name, parameter, keep, before, expAvg, expAvgSq) in pending)
        {
            using var scope = NewDisposeScope();
            parameter.copy_(where(keep, parameter, before));
            if (context.Optimizer.State.TryGetValue(name, out var s))
            {
                // Masked elements keep the moments they had (zero when this was the tensor's first update).
                s.ExpAvg.copy_(where(keep, s.ExpAvg, expAvg ?? zeros_like(s.ExpAvg)));
                s.ExpAvgSq.copy_(where(keep, s.ExpAvgSq, expAvgSq ?? zeros_like(s.ExpAvgSq)));
            }
        }
        DisposePending();
    }

    public override JsonNode? SaveState() => new JsonObject
    {
        ["skipped_updates"] = SkippedUpdates,
        ["masked_elements"] = MaskedElements,
        ["seen_elements"] = SeenElements,
    };

    public override void LoadState(JsonNode state)
    {
        ArgumentNullException.ThrowIfNull(state);
        long Read(string key) => state[key]?.GetValue<long>() ?? throw new FormatException($"gradient mask state lacks '{key}'");
        SkippedUpdates = Read("skipped_updates");
        MaskedElements = Read("masked_elements");
        SeenElements = Read("seen_elements");
    }

    IEnumerable<(string Name, Parameter Parameter)> Targets(TrainingStepContext context)
    {
        if (select is not null) return context.TrainableParameters.Where(t => select(t.Name));
        // Experts that own their central tensors (share_central false) have no shared tensor, hence no imbalance to
        // correct (P2 §3.2); their centrals are not targets (MoeTunerConfig refuses the mask with them).
        sharedCentrals ??= context.Model.named_modules().Where(m => m.module is MpoExpertMatrices { SharesCentral: true })
                                  .Select(m => m.name + "." + MpoLayer.CentralName).ToHashSet(StringComparer.Ordinal);
        if (sharedCentrals.Count == 0)
            throw new InvalidOperationException("the gradient mask found no shared central tensor (no MPO experts in the model); pass `select` to mask other parameters");
        return context.TrainableParameters.Where(t => sharedCentrals.Contains(t.Name));
    }

    /// <summary>SplitMix64 of the step's seed and the name's FNV-1a hash: one independent stream per tensor per step.</summary>
    static long Seed(long stepSeed, string name)
    {
        unchecked
        {
            ulong h = 14695981039346656037UL;
            foreach (char ch in name) { h ^= ch; h *= 1099511628211UL; }
            ulong z = (ulong)stepSeed ^ h;
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)(z ^ (z >> 31));
        }
    }

    void DisposePending()
    {
        foreach (var (_, _, keep, before, expAvg, expAvgSq) in pending)
        {
            keep.Dispose();
            before.Dispose();
            expAvg?.Dispose();
            expAvgSq?.Dispose();
        }
        pending.Clear();
    }
}
