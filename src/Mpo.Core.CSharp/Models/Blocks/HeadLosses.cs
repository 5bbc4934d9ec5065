using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// The losses HF's encoder heads compute when labels are given, with the labels checked first so a bad batch fails
/// naming <c>labels</c> instead of inside libtorch. Losses are computed in at least float32.
/// </summary>
public static class HeadLosses
{
    /// <summary>Masked-LM cross-entropy: mean over positions whose label is not -100. logits [batch, seq, vocab],
    /// labels int64 [batch, seq].</summary>
    public static Tensor MaskedLanguageModel(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        InputChecks.TokenLabels(labels, logits.shape[^1], logits.select(-1, 0), InputNames.Labels);
        return LanguageModelLoss.Aligned(logits, labels).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// HF's sequence-classification loss, by <c>problem_type</c> (inferred when unset, as HF does): one label →
    /// regression, MSE; integer labels → single-label classification, cross-entropy; float labels [batch, labels] →
    /// multi-label classification, binary cross-entropy with logits.
    /// </summary>
    public static Tensor SequenceClassification(Tensor logits, Tensor labels, ModelConfig config)
    {
        bool integer = labels.dtype is ScalarType.Int64 or ScalarType.Int32;
        string problem = config.ProblemType ?? (config.NumLabels == 1 ? "regression"
                                              : integer ? "single_label_classification" : "multi_label_classification");
        long batch = logits.shape[0];
        using var scope = NewDisposeScope();
        var scores = AtLeastFloat32(logits);
        switch (problem)
        {
            case "regression":
                if (labels.numel() != logits.numel())
                    throw new ArgumentException($"regression labels need {logits.numel()} targets (batch × num_labels), got [{string.Join(",", labels.shape)}]", "labels");
                return nn.functional.mse_loss(scores.reshape(-1), labels.reshape(-1).to(scores.dtype)).MoveToOuterDisposeScope();
            case "single_label_classification":
                if (!integer || labels.numel() != batch)
                    throw new ArgumentException($"single-label classification needs integer class ids [{batch}], got {labels.dtype} [{string.Join(",", labels.shape)}]", "labels");
                long min = labels.min().item<long>(), max = labels.max().item<long>();
                if (min < 0 || max >= config.NumLabels)
                    throw new ArgumentException($"class ids must lie in 0..{config.NumLabels - 1} (num_labels = {config.NumLabels}), got {min}..{max}", "labels");
                return nn.functional.cross_entropy(scores, labels.reshape(-1).to(ScalarType.Int64)).MoveToOuterDisposeScope();
            case "multi_label_classification":
                if (!labels.shape.AsSpan().SequenceEqual(logits.shape))
                    throw new ArgumentException($"multi-label targets must be shaped like the logits [{string.Join(",", logits.shape)}], got [{string.Join(",", labels.shape)}]", "labels");
                return nn.functional.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype)).MoveToOuterDisposeScope();
            default:
                throw new ArgumentException($"problem_type '{problem}' is not one of regression, single_label_classification, multi_label_classification", nameof(config));
        }
    }

    static Tensor AtLeastFloat32(Tensor x) =>
        x.dtype is ScalarType.Float64 or ScalarType.Float32 ? x : x.to(ScalarType.Float32);
}
