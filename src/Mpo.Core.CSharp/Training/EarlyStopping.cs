using System;
using System.Text.Json.Nodes;

namespace Mpo.Training;

/// <summary>Whether a smaller or a larger value of the tracked metric is better (HF <c>greater_is_better</c>).</summary>
public enum MetricMode
{
    /// <summary>Smaller is better (a loss, a perplexity).</summary>
    Min,
    /// <summary>Larger is better (accuracy, F1, Matthews, Pearson).</summary>
    Max,
}

/// <summary>
/// Tracks the best value of one evaluation metric and counts evaluations without improvement, as Hugging Face's
/// <c>EarlyStoppingCallback</c>: an evaluation improves when it beats the best by more than
/// <see cref="Threshold"/>; training stops once <see cref="Patience"/> evaluations in a row have not improved.
/// Pure state over a sequence of (step, value) observations, saved in checkpoints so a resumed run stops where an
/// uninterrupted one would.
/// </summary>
public sealed class EarlyStopping
{
    /// <summary>Creates the tracker.</summary>
    /// <param name="metric">Name of the metric, as the evaluation function returns it.</param>
    /// <param name="mode">Whether smaller or larger is better.</param>
    /// <param name="patience">Evaluations without improvement that stop training; 0 tracks the best without stopping.</param>
    /// <param name="threshold">How much better than the best a value must be to count as an improvement.</param>
    public EarlyStopping(string metric, MetricMode mode, int patience = 0, double threshold = 0.0)
    {
        ArgumentException.ThrowIfNullOrEmpty(metric);
        ArgumentOutOfRangeException.ThrowIfNegative(patience);
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold must be non-negative.");
        Metric = metric;
        Mode = mode;
        Patience = patience;
        Threshold = threshold;
    }

    public string Metric { get; }
    public MetricMode Mode { get; }
    public int Patience { get; }
    public double Threshold { get; }

    /// <summary>The best value seen, or null before the first evaluation.</summary>
    public double? Best { get; private set; }
    /// <summary>The step of the best value.</summary>
    public long BestStep { get; private set; }
    /// <summary>Evaluations since the last improvement.</summary>
    public int EvaluationsWithoutImprovement { get; private set; }
    /// <summary>Whether patience is exhausted.</summary>
    public bool ShouldStop => Patience > 0 && EvaluationsWithoutImprovement >= Patience;

    /// <summary>Records the value of <see cref="Metric"/> at <paramref name="step"/>; returns whether it is a new best.</summary>
    /// <exception cref="ArgumentException">The value is NaN (it can be neither better nor worse).</exception>
    public bool Observe(long step, double value)
    {
        if (double.IsNaN(value))
            throw new ArgumentException($"Evaluation metric '{Metric}' is NaN at step {step}.", nameof(value));
        var improved = Best is not { } best
                       || (Mode == MetricMode.Min ? value < best : value > best) && Math.Abs(value - best) > Threshold;
        if (improved)
        {
            Best = value;
            BestStep = step;
            EvaluationsWithoutImprovement = 0;
        }
        else
        {
            EvaluationsWithoutImprovement++;
        }
        return improved;
    }

    /// <summary>The counters, for a checkpoint.</summary>
    public JsonObject Save() => new()
    {
        ["metric"] = Metric,
        ["best"] = Best,
        ["best_step"] = BestStep,
        ["evaluations_without_improvement"] = EvaluationsWithoutImprovement,
    };

    /// <summary>Restores counters written by <see cref="Save"/>.</summary>
    /// <exception cref="FormatException">The object is not such a record or tracks another metric.</exception>
    public void Load(JsonObject saved)
    {
        ArgumentNullException.ThrowIfNull(saved);
        try
        {
            var metric = saved["metric"]!.GetValue<string>();
            if (metric != Metric)
                throw new FormatException($"it tracks metric '{metric}', this run tracks '{Metric}'");
            Best = saved["best"]?.GetValue<double>();
            BestStep = saved["best_step"]!.GetValue<long>();
            EvaluationsWithoutImprovement = saved["evaluations_without_improvement"]!.GetValue<int>();
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException)
        {
            throw new FormatException($"not an early-stopping record: {saved.ToJsonString()}", e);
        }
    }
}
