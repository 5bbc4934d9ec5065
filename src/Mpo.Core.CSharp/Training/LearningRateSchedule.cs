using System;

namespace Mpo.Training;

/// <summary>The shape of the learning-rate multiplier over training (Hugging Face <c>SchedulerType</c> names).</summary>
public enum ScheduleKind
{
    /// <summary>Linear warmup, then linear decay to 0 at the last step (<c>get_linear_schedule_with_warmup</c>; MPOP and
    /// MPOE both use it).</summary>
    Linear,
    /// <summary>Linear warmup, then half a cosine period down to 0 (<c>get_cosine_schedule_with_warmup</c>, 0.5 cycles).</summary>
    Cosine,
    /// <summary>Linear warmup, then 1 (<c>get_constant_schedule_with_warmup</c>).</summary>
    Constant,
}

/// <summary>
/// Learning-rate multipliers as pure functions of the step, exactly Hugging Face's <c>lr_lambda</c> functions. As with
/// PyTorch's <c>LambdaLR</c>, the update with 0-based index <c>s</c> (the <c>s</c>-th call of <c>optimizer.step()</c>)
/// uses <c>base_lr · Factor(s)</c>; with warmup the very first update therefore has learning rate 0, as in HF.
/// </summary>
public static class LearningRateSchedule
{
    /// <summary>The multiplier of every group's base learning rate for update <paramref name="step"/> (0-based).</summary>
    /// <param name="kind">The schedule.</param>
    /// <param name="step">Number of optimizer updates already made.</param>
    /// <param name="warmupSteps">Updates over which the multiplier rises linearly from 0 to 1.</param>
    /// <param name="totalSteps">Updates in the whole run; the decaying schedules reach 0 here.</param>
    public static double Factor(ScheduleKind kind, long step, long warmupSteps, long totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        if (step < warmupSteps)
            return (double)step / Math.Max(1, warmupSteps);
        switch (kind)
        {
            case ScheduleKind.Constant:
                return 1.0;
            case ScheduleKind.Linear:
                return Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmupSteps));
            case ScheduleKind.Cosine:
                var progress = (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress)));
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a ScheduleKind value");
        }
    }

    /// <summary>Warmup length from HF's two settings: <paramref name="warmupSteps"/> when positive, otherwise
    /// <c>ceil(warmupRatio · totalSteps)</c> (<c>TrainingArguments.get_warmup_steps</c>).</summary>
    public static long WarmupSteps(long warmupSteps, double warmupRatio, long totalSteps) =>
        warmupSteps > 0 ? warmupSteps : (long)Math.Ceiling(totalSteps * warmupRatio);
}
