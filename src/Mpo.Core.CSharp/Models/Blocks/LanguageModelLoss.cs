using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>HF's token-level cross-entropy for LM heads: the mean over positions whose label is not -100.</summary>
public static class LanguageModelLoss
{
    /// <summary>The label value that marks a position as ignored (padding, prompt tokens).</summary>
    public const long IgnoreIndex = -100;

    /// <summary>Cross-entropy of logits [.., vocab] against labels [..] aligned position by position (T5: the
    /// labels are the targets of the shifted decoder input). Computed in at least float32.</summary>
    public static Tensor Aligned(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var flat = logits.reshape(-1, logits.shape[^1]);
        if (flat.dtype != ScalarType.Float64) flat = flat.to(ScalarType.Float32);
        return nn.functional.cross_entropy(flat, labels.reshape(-1), ignore_index: IgnoreIndex).MoveToOuterDisposeScope();
    }

    /// <summary>Causal LM loss: position t predicts label t+1 (HF shifts inside GPT-2's head, so labels = input ids).</summary>
    public static Tensor NextToken(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long s = logits.shape[1];
        return Aligned(logits.narrow(1, 0, s - 1), labels.narrow(1, 1, s - 1)).MoveToOuterDisposeScope();
    }
}
