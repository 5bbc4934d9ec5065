using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Linq;

namespace Mpo.Data;

/// <summary>The metrics the tasks report; <see cref="TextTask.Metrics"/> says which belong to a task.</summary>
public enum TaskMetric
{
    /// <summary>Fraction of predictions equal to the label.</summary>
    Accuracy,
    /// <summary>F1 of the positive class 1: the harmonic mean of its precision and recall.</summary>
    F1,
    /// <summary>Matthews correlation coefficient, from −1 (inverted) through 0 (chance) to 1 (perfect).</summary>
    Matthews,
    /// <summary>Pearson's linear correlation of predicted and gold scores.</summary>
    Pearson,
    /// <summary>Spearman's rank correlation: Pearson's of the ranks, ties given their average rank.</summary>
    Spearman,
    /// <summary>exp of the mean negative log-likelihood per predicted token: a language model's held-out score.</summary>
    Perplexity,
}

/// <summary>
/// The tasks' metrics: GLUE's with the semantics of the scikit-learn and SciPy functions the GLUE baselines and the
/// Hugging Face <c>glue</c> metric call (<c>accuracy_score</c>, <c>f1_score</c>, <c>matthews_corrcoef</c>,
/// <c>pearsonr</c>, <c>spearmanr</c>), including their conventions for degenerate input, and perplexity. All sums are
/// in double precision, or exact integers for counts, whatever the split size.
/// </summary>
public static class TaskMetrics
{
    /// <summary>The fraction of positions where the prediction equals the label.</summary>
    /// <param name="predictions">Predicted class indices.</param>
    /// <param name="labels">Gold class indices, as many as predictions.</param>
    /// <exception cref="ArgumentException">The lists are empty or differ in length.</exception>
    public static double Accuracy(IReadOnlyList<int> predictions, IReadOnlyList<int> labels)
    {
        CheckPair(predictions, labels);
        var correct = 0L;
        for (var i = 0; i < labels.Count; i++)
            correct += predictions[i] == labels[i] ? 1 : 0;
        return (double)correct / labels.Count;
    }

    /// <summary>
    /// Binary F1 of class 1, 2·TP / (2·TP + FP + FN), equal to 2PR / (P + R). When there is no positive among
    /// predictions or labels it is 0, as <c>f1_score</c> returns by default.
    /// </summary>
    /// <param name="predictions">Predicted classes, each 0 or 1.</param>
    /// <param name="labels">Gold classes, each 0 or 1, as many as predictions.</param>
    /// <exception cref="ArgumentException">The lists are empty, differ in length, or hold a value other than 0 and 1.</exception>
    public static double F1(IReadOnlyList<int> predictions, IReadOnlyList<int> labels)
    {
        CheckPair(predictions, labels);
        CheckBinary(predictions, nameof(predictions));
        CheckBinary(labels, nameof(labels));
        long truePositive = 0, falsePositive = 0, falseNegative = 0;
        for (var i = 0; i < labels.Count; i++)
        {
            truePositive += predictions[i] == 1 && labels[i] == 1 ? 1 : 0;
            falsePositive += predictions[i] == 1 && labels[i] == 0 ? 1 : 0;
            falseNegative += predictions[i] == 0 && labels[i] == 1 ? 1 : 0;
        }
        var denominator = 2 * truePositive + falsePositive + falseNegative;
        return denominator == 0 ? 0.0 : 2.0 * truePositive / denominator;
    }

    /// <summary>
    /// Matthews correlation coefficient in the multiclass form <c>matthews_corrcoef</c> uses (Gorodkin 2004), which
    /// for two classes is (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)). It is 0 when undefined, that is when
    /// the predictions or the labels are all one class.
    /// </summary>
    /// <param name="predictions">Predicted class indices.</param>
    /// <param name="labels">Gold class indices, as many as predictions.</param>
    /// <exception cref="ArgumentException">The lists are empty or differ in length.</exception>
    public static double Matthews(IReadOnlyList<int> predictions, IReadOnlyList<int> labels)
    {
        CheckPair(predictions, labels);
        // Per class: how often it is the gold label (t_k) and how often it is predicted (p_k).
        var counts = new Dictionary<int, (long Gold, long Predicted)>();
        void Count(int label, long gold, long predicted)
        {
            var (g, p) = counts.GetValueOrDefault(label);
            counts[label] = (g + gold, p + predicted);
        }
        long correct = 0;
        for (var i = 0; i < labels.Count; i++)
        {
            Count(labels[i], 1, 0);
            Count(predictions[i], 0, 1);
            correct += predictions[i] == labels[i] ? 1 : 0;
        }
        long n = labels.Count, goldDotPredicted = 0, goldSquares = 0, predictedSquares = 0;
        foreach (var (gold, predicted) in counts.Values)
        {
            goldDotPredicted += gold * predicted;
            goldSquares += gold * gold;
            predictedSquares += predicted * predicted;
        }
        // Exact in 64-bit integers for n up to ~3·10^9; only the final product and root are floating point.
        var covariance = correct * n - goldDotPredicted;
        var goldVariance = n * n - goldSquares;
        var predictedVariance = n * n - predictedSquares;
        if (goldVariance == 0 || predictedVariance == 0)
            return 0.0;
        // One root of the product, as scikit-learn: √(fl(v²)) is exactly v, so perfect and inverted predictions give
        // exactly ±1, which a product of two roots need not.
        return covariance / Math.Sqrt((double)goldVariance * predictedVariance);
    }

    /// <summary>
    /// Pearson correlation coefficient, clamped to [−1, 1] against rounding. <see cref="double.NaN"/> when either
    /// list is constant, where the correlation is undefined (SciPy's <c>pearsonr</c> returns NaN there too).
    /// </summary>
    /// <param name="predictions">Predicted scores, finite.</param>
    /// <param name="labels">Gold scores, finite, as many as predictions.</param>
    /// <exception cref="ArgumentException">
    /// The lists differ in length, have fewer than two entries, or hold a NaN or an infinity.
    /// </exception>
    public static double Pearson(IReadOnlyList<double> predictions, IReadOnlyList<double> labels)
    {
        CheckScores(predictions, labels);
        return Correlation(predictions, labels);
    }

    /// <summary>
    /// Spearman rank correlation: the Pearson correlation of the ranks, tied values sharing their average rank
    /// (SciPy's <c>spearmanr</c>). <see cref="double.NaN"/> when either list is constant.
    /// </summary>
    /// <param name="predictions">Predicted scores, finite.</param>
    /// <param name="labels">Gold scores, finite, as many as predictions.</param>
    /// <exception cref="ArgumentException">
    /// The lists differ in length, have fewer than two entries, or hold a NaN or an infinity.
    /// </exception>
    public static double Spearman(IReadOnlyList<double> predictions, IReadOnlyList<double> labels)
    {
        CheckScores(predictions, labels);
        return Correlation(Ranks(predictions), Ranks(labels));
    }

    /// <summary>
    /// Perplexity, exp(Σ −log p / N): the exponent of the mean negative log-likelihood (in nats) of the
    /// <paramref name="tokens"/> predicted tokens. Hugging Face's <c>run_clm</c> reports exp of the mean loss, the
    /// same number when every batch has as many predicted tokens.
    /// </summary>
    /// <param name="negativeLogLikelihood">The summed negative log-likelihood, in nats, finite and not negative.</param>
    /// <param name="tokens">How many tokens were predicted, at least one.</param>
    /// <exception cref="ArgumentException">No token, or a negative or non-finite sum.</exception>
    public static double Perplexity(double negativeLogLikelihood, long tokens)
    {
        if (tokens < 1)
            throw new ArgumentException($"tokens is {tokens}; perplexity needs at least one predicted token.", nameof(tokens));
        if (!double.IsFinite(negativeLogLikelihood) || negativeLogLikelihood < 0)
            throw new ArgumentException(
                $"negativeLogLikelihood is {negativeLogLikelihood.ToString(CultureInfo.InvariantCulture)}; it must be finite and not negative.",
                nameof(negativeLogLikelihood));
        return Math.Exp(negativeLogLikelihood / tokens);
    }

    /// <summary>
    /// The official metrics of a classification task (<see cref="TextTask.Metrics"/>), keyed and enumerated in that
    /// order.
    /// </summary>
    /// <param name="task">A classification task.</param>
    /// <param name="predictions">Predicted class indices, each in [0, <see cref="TextTask.NumLabels"/>).</param>
    /// <param name="labels">Gold class indices, as many as predictions, each in the same range.</param>
    /// <exception cref="ArgumentException">
    /// <paramref name="task"/> is not a classification task, the lists are empty or differ in length, or a class is
    /// out of range.
    /// </exception>
    public static IReadOnlyDictionary<TaskMetric, double> Compute(TextTask task, IReadOnlyList<int> predictions, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.Kind != TaskKind.Classification)
            throw new ArgumentException($"{task.Name} is {Describe(task.Kind)}; {Hint(task.Kind)}.", nameof(task));
        CheckPair(predictions, labels);
        var classes = task.NumLabels;
        CheckRange(predictions, classes, task, nameof(predictions));
        CheckRange(labels, classes, task, nameof(labels));
        return Table(task, metric => metric switch
        {
            TaskMetric.Accuracy => Accuracy(predictions, labels),
            TaskMetric.F1 => F1(predictions, labels),
            TaskMetric.Matthews => Matthews(predictions, labels),
            _ => throw new InvalidOperationException($"{metric} is not a classification metric."),
        });
    }

    /// <summary>The official metrics of a regression task (STS-B: Pearson and Spearman correlation).</summary>
    /// <param name="task">A regression task.</param>
    /// <param name="predictions">Predicted scores, finite.</param>
    /// <param name="scores">Gold scores, finite, as many as predictions.</param>
    /// <exception cref="ArgumentException">
    /// <paramref name="task"/> is not a regression task, or the lists are not valid for <see cref="Pearson"/>.
    /// </exception>
    public static IReadOnlyDictionary<TaskMetric, double> Compute(TextTask task, IReadOnlyList<double> predictions, IReadOnlyList<double> scores)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.Kind != TaskKind.Regression)
            throw new ArgumentException($"{task.Name} is {Describe(task.Kind)}; {Hint(task.Kind)}.", nameof(task));
        CheckScores(predictions, scores, nameof(scores));
        return Table(task, metric => metric switch
        {
            TaskMetric.Pearson => Pearson(predictions, scores),
            TaskMetric.Spearman => Spearman(predictions, scores),
            _ => throw new InvalidOperationException($"{metric} is not a regression metric."),
        });
    }

    private static string Describe(TaskKind kind) => kind switch
    {
        TaskKind.Classification => "a classification task",
        TaskKind.Regression => "scored by regression",
        _ => "a language-modelling task",
    };

    private static string Hint(TaskKind kind) => kind switch
    {
        TaskKind.Classification => "pass class indices as ints",
        TaskKind.Regression => "pass scores as doubles",
        _ => "its metric is Perplexity",
    };

    private static ReadOnlyDictionary<TaskMetric, double> Table(TextTask task, Func<TaskMetric, double> compute) =>
        new(task.Metrics.ToDictionary(metric => metric, compute));

    private static double Correlation(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        // Tested exactly rather than through a zero variance: the mean of equal values can round away from them.
        if (IsConstant(x) || IsConstant(y))
            return double.NaN;
        double meanX = 0, meanY = 0;
        for (var i = 0; i < x.Count; i++)
        {
            meanX += x[i];
            meanY += y[i];
        }
        meanX /= x.Count;
        meanY /= y.Count;
        // Two passes (centre, then sum products) rather than Σxy − n·x̄ȳ, which cancels catastrophically.
        double xy = 0, xx = 0, yy = 0;
        for (var i = 0; i < x.Count; i++)
        {
            var dx = x[i] - meanX;
            var dy = y[i] - meanY;
            xy += dx * dy;
            xx += dx * dx;
            yy += dy * dy;
        }
        return Math.Clamp(xy / (Math.Sqrt(xx) * Math.Sqrt(yy)), -1.0, 1.0);
    }

    private static bool IsConstant(IReadOnlyList<double> values)
    {
        for (var i = 1; i < values.Count; i++)
        {
            if (values[i] != values[0])
                return false;
        }
        return true;
    }

    /// <summary>One-based ranks; a run of equal values gets the mean of the ranks it spans.</summary>
    private static double[] Ranks(IReadOnlyList<double> values)
    {
        var order = Enumerable.Range(0, values.Count).ToArray();
        Array.Sort(order, (a, b) => values[a].CompareTo(values[b]));
        var ranks = new double[values.Count];
        for (var start = 0; start < order.Length;)
        {
            var end = start + 1;
            while (end < order.Length && values[order[end]] == values[order[start]])
                end++;
            // Positions start..end−1 hold ranks start+1..end, whose mean is (start + 1 + end) / 2.
            var rank = (start + 1 + end) / 2.0;
            for (var k = start; k < end; k++)
                ranks[order[k]] = rank;
            start = end;
        }
        return ranks;
    }

    private static void CheckPair<T>(IReadOnlyList<T> predictions, IReadOnlyList<T> labels, string labelsName = "labels")
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(labels, labelsName);
        if (predictions.Count == 0)
            throw new ArgumentException("predictions is empty; a metric needs at least one example.", nameof(predictions));
        if (predictions.Count != labels.Count)
            throw new ArgumentException($"{labelsName} has length {labels.Count} but predictions has length {predictions.Count}.", labelsName);
    }

    private static void CheckScores(IReadOnlyList<double> predictions, IReadOnlyList<double> labels, string labelsName = "labels")
    {
        CheckPair(predictions, labels, labelsName);
        if (predictions.Count < 2)
            throw new ArgumentException("predictions has 1 entry; a correlation needs at least two pairs.", nameof(predictions));
        CheckFinite(predictions, nameof(predictions));
        CheckFinite(labels, labelsName);
    }

    private static void CheckFinite(IReadOnlyList<double> values, string name)
    {
        for (var i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i]))
                throw new ArgumentException($"{name}[{i}] is {values[i].ToString(CultureInfo.InvariantCulture)}; scores must be finite.", name);
        }
    }

    private static void CheckBinary(IReadOnlyList<int> values, string name)
    {
        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] is not (0 or 1))
                throw new ArgumentException($"{name}[{i}] is {values[i]}; binary F1 takes classes 0 and 1 only.", name);
        }
    }

    private static void CheckRange(IReadOnlyList<int> values, int classes, TextTask task, string name)
    {
        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] < 0 || values[i] >= classes)
                throw new ArgumentException($"{name}[{i}] is {values[i]}; {task.Name} has classes 0 to {classes - 1}.", name);
        }
    }
}
