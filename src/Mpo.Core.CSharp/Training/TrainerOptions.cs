using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace Mpo.Training;

/// <summary>
/// Everything that shapes a training run, with Hugging Face <c>TrainingArguments</c> names and defaults where HF has
/// them (AdamW β 0.9/0.999, ε 1e-8, weight decay 0, max_grad_norm 1.0, linear schedule, seed 42; the settings MPOP's
/// and MPOE's scripts rely on, spec §4.5 and §5.4). Saved in every checkpoint; a run resumes only with the same values
/// of the options that change its course (<see cref="ToJson"/> minus <see cref="ResumeNeutral"/>).
/// </summary>
public sealed record TrainerOptions
{
    /// <summary>Folder for <c>metrics.jsonl</c> and <c>checkpoint-N</c> folders; null trains without writing anything.</summary>
    public string? OutputFolder { get; init; }
    /// <summary>Passes over the batch source (<c>num_train_epochs</c>); ignored when <see cref="MaxSteps"/> is positive.</summary>
    public int Epochs { get; init; } = 3;
    /// <summary>Total optimizer updates when positive (<c>max_steps</c>; training runs on into further epochs); -1 uses <see cref="Epochs"/>.</summary>
    public long MaxSteps { get; init; } = -1;
    /// <summary>Batches whose gradients are summed into one update, each loss divided by their number, so k batches of
    /// size b give the update of one batch of size k·b for a mean loss (<c>gradient_accumulation_steps</c>).</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>Base learning rate of the default groups (<c>learning_rate</c>).</summary>
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>Decoupled weight decay of the default group; biases and norm weights get none (<c>weight_decay</c>).</summary>
    public double WeightDecay { get; init; }
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>Bound on the global gradient norm (<c>max_grad_norm</c>); 0 disables clipping (the norm is still logged).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Shape of the learning-rate multiplier (<c>lr_scheduler_type</c>).</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Linear;
    /// <summary>Warmup updates (<c>warmup_steps</c>); when 0, <see cref="WarmupRatio"/> of the total is used.</summary>
    public long WarmupSteps { get; init; }
    /// <summary>Warmup as a fraction of the total updates (<c>warmup_ratio</c>).</summary>
    public double WarmupRatio { get; init; }
    /// <summary>Name rules for groups with their own learning rate or weight decay (MPOP's auxiliary tensors).</summary>
    public IReadOnlyList<ParameterGroupRule> ParameterGroups { get; init; } = Array.Empty<ParameterGroupRule>();
    /// <summary>Updates between lines of <c>metrics.jsonl</c>; each line holds the mean loss since the previous one (<c>logging_steps</c>).</summary>
    public long LoggingSteps { get; init; } = 50;
    /// <summary>Updates between evaluations; 0 never evaluates (<c>eval_steps</c>).</summary>
    public long EvalSteps { get; init; }
    /// <summary>Evaluation metric that defines the best checkpoint and early stopping (<c>metric_for_best_model</c>).</summary>
    public string? BestMetric { get; init; }
    /// <summary>Whether smaller or larger <see cref="BestMetric"/> is better (<c>greater_is_better</c>).</summary>
    public MetricMode BestMetricMode { get; init; } = MetricMode.Min;
    /// <summary>Evaluations without improvement that stop training; 0 never stops early (<c>early_stopping_patience</c>).</summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>Margin by which a value must beat the best to count as an improvement (<c>early_stopping_threshold</c>).</summary>
    public double EarlyStoppingThreshold { get; init; }
    /// <summary>Updates between checkpoints; 0 saves only at improvements of the best metric and at the end (<c>save_steps</c>).</summary>
    public long SaveSteps { get; init; } = 500;
    /// <summary>Checkpoints kept besides the best one (<c>save_total_limit</c>).</summary>
    public int SaveTotalLimit { get; init; } = 2;
    /// <summary>Load the best checkpoint's weights into the model when training ends (<c>load_best_model_at_end</c>).</summary>
    public bool LoadBestAtEnd { get; init; }
    /// <summary>Seed of torch's global generator at the start of a fresh run (dropout); null leaves it alone (<c>seed</c>).</summary>
    public long? Seed { get; init; } = 42;

    /// <summary>Options that may differ between the run that wrote a checkpoint and the run resuming it: they change
    /// what is written, not the course of training.</summary>
    public static IReadOnlySet<string> ResumeNeutral { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "logging_steps", "save_steps", "save_total_limit", "load_best_at_end",
    };

    /// <summary>Checks every option; the exception names the option (its <c>ParamName</c> is the property name).</summary>
    /// <exception cref="ArgumentException">An option is out of range or inconsistent with another.</exception>
    public void Validate()
    {
        static void Require(bool ok, string option, string problem)
        {
            if (!ok) throw new ArgumentException($"TrainerOptions.{option} {problem}.", option);
        }
        Require(MaxSteps == -1 || MaxSteps > 0, nameof(MaxSteps), $"must be -1 (use Epochs) or positive, got {MaxSteps}");
        Require(MaxSteps > 0 || Epochs >= 1, nameof(Epochs), $"must be at least 1 when MaxSteps is -1, got {Epochs}");
        Require(GradientAccumulationSteps >= 1, nameof(GradientAccumulationSteps), $"must be at least 1, got {GradientAccumulationSteps}");
        Require(double.IsFinite(LearningRate) && LearningRate >= 0, nameof(LearningRate), $"must be finite and non-negative, got {LearningRate}");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), $"must be finite and non-negative, got {WeightDecay}");
        Require(AdamBeta1 >= 0 && AdamBeta1 < 1, nameof(AdamBeta1), $"must be in [0, 1), got {AdamBeta1}");
        Require(AdamBeta2 >= 0 && AdamBeta2 < 1, nameof(AdamBeta2), $"must be in [0, 1), got {AdamBeta2}");
        Require(double.IsFinite(AdamEpsilon) && AdamEpsilon >= 0, nameof(AdamEpsilon), $"must be finite and non-negative, got {AdamEpsilon}");
        Require(MaxGradNorm >= 0, nameof(MaxGradNorm), $"must be non-negative (0 disables clipping), got {MaxGradNorm}");
        Require(Enum.IsDefined(Schedule), nameof(Schedule), $"is not a ScheduleKind value: {(int)Schedule}");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), $"must be non-negative, got {WarmupSteps}");
        Require(WarmupRatio >= 0 && WarmupRatio <= 1, nameof(WarmupRatio), $"must be in [0, 1], got {WarmupRatio}");
        Require(ParameterGroups is not null, nameof(ParameterGroups), "must not be null");
        foreach (var rule in ParameterGroups!)
        {
            Require(rule is not null && !string.IsNullOrEmpty(rule.Name) && rule.Matches is not null, nameof(ParameterGroups), "holds a rule without a name or predicate");
            Require(!rule!.Name.StartsWith("default", StringComparison.Ordinal) && !rule.Name.EndsWith(".no_decay", StringComparison.Ordinal),
                    nameof(ParameterGroups), $"rule '{rule.Name}' uses a reserved group name");
            Require(rule.LearningRate is null or >= 0 && double.IsFinite(rule.LearningRate ?? 0), nameof(ParameterGroups), $"rule '{rule.Name}' has learning rate {rule.LearningRate}");
            Require(rule.WeightDecay is null or >= 0 && double.IsFinite(rule.WeightDecay ?? 0), nameof(ParameterGroups), $"rule '{rule.Name}' has weight decay {rule.WeightDecay}");
        }
        var duplicate = ParameterGroups.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        Require(duplicate is null, nameof(ParameterGroups), $"has two rules called '{duplicate?.Key}'");
        Require(LoggingSteps >= 1, nameof(LoggingSteps), $"must be at least 1, got {LoggingSteps}");
        Require(EvalSteps >= 0, nameof(EvalSteps), $"must be non-negative, got {EvalSteps}");
        Require(Enum.IsDefined(BestMetricMode), nameof(BestMetricMode), $"is not a MetricMode value: {(int)BestMetricMode}");
        Require(EarlyStoppingPatience >= 0, nameof(EarlyStoppingPatience), $"must be non-negative, got {EarlyStoppingPatience}");
        Require(double.IsFinite(EarlyStoppingThreshold) && EarlyStoppingThreshold >= 0, nameof(EarlyStoppingThreshold), $"must be finite and non-negative, got {EarlyStoppingThreshold}");
        Require(BestMetric is null || BestMetric.Length > 0, nameof(BestMetric), "must not be empty");
        Require(BestMetric is not null || EarlyStoppingPatience == 0, nameof(BestMetric), "must name the metric that early stopping watches");
        Require(BestMetric is not null || !LoadBestAtEnd, nameof(BestMetric), "must name the metric that defines the best checkpoint when LoadBestAtEnd is set");
        Require(BestMetric is null || EvalSteps > 0, nameof(EvalSteps), $"must be positive when BestMetric is set (got {EvalSteps})");
        Require(SaveSteps >= 0, nameof(SaveSteps), $"must be non-negative, got {SaveSteps}");
        Require(SaveTotalLimit >= 1, nameof(SaveTotalLimit), $"must be at least 1, got {SaveTotalLimit}");
        Require(OutputFolder is null || OutputFolder.Length > 0, nameof(OutputFolder), "must not be empty");
        Require(OutputFolder is not null || !LoadBestAtEnd, nameof(OutputFolder), "is needed to keep the best checkpoint for LoadBestAtEnd");
    }

    /// <summary>The options as JSON (snake_case keys, HF's names), without <see cref="OutputFolder"/> and with each
    /// group rule as its name, learning rate and weight decay (a predicate cannot be written down).</summary>
    public JsonObject ToJson() => new()
    {
        ["epochs"] = Epochs,
        ["max_steps"] = MaxSteps,
        ["gradient_accumulation_steps"] = GradientAccumulationSteps,
        ["learning_rate"] = LearningRate,
        ["weight_decay"] = WeightDecay,
        ["adam_beta1"] = AdamBeta1,
        ["adam_beta2"] = AdamBeta2,
        ["adam_epsilon"] = AdamEpsilon,
        ["max_grad_norm"] = MaxGradNorm,
        ["lr_scheduler_type"] = Schedule.ToString().ToLowerInvariant(),
        ["warmup_steps"] = WarmupSteps,
        ["warmup_ratio"] = WarmupRatio,
        ["parameter_groups"] = new JsonArray(ParameterGroups.Select(r => (JsonNode)new JsonObject
        {
            ["name"] = r.Name,
            ["learning_rate"] = r.LearningRate,
            ["weight_decay"] = r.WeightDecay,
        }).ToArray()),
        ["logging_steps"] = LoggingSteps,
        ["eval_steps"] = EvalSteps,
        ["metric_for_best_model"] = BestMetric,
        ["greater_is_better"] = BestMetricMode == MetricMode.Max,
        ["early_stopping_patience"] = EarlyStoppingPatience,
        ["early_stopping_threshold"] = EarlyStoppingThreshold,
        ["save_steps"] = SaveSteps,
        ["save_total_limit"] = SaveTotalLimit,
        ["load_best_at_end"] = LoadBestAtEnd,
        ["seed"] = Seed,
    };
}
