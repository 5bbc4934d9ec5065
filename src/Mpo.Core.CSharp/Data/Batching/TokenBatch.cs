using System;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Data.Batching;

/// <summary>
/// One batch on the host, in Hugging Face's argument names; <see cref="ToModelInputs"/> makes the tensors a model
/// takes. At most one kind of label is set: token labels for language modelling (-100 where no loss is taken, as
/// PyTorch's <c>ignore_index</c>), class indices for classification, scores for regression.
/// </summary>
/// <param name="InputIds">[batch, seq] token ids, right-padded.</param>
/// <param name="AttentionMask">[batch, seq] 1 for real tokens, 0 for padding.</param>
/// <param name="TokenTypeIds">[batch, seq] segment ids (BERT); null for models without them (GPT-2 would add its
/// token embedding of id 0 if given zeros).</param>
/// <param name="Labels">[batch, target length] token labels; for T5 the target length differs from seq.</param>
/// <param name="ClassLabels">[batch] class indices.</param>
/// <param name="Scores">[batch] regression targets.</param>
public sealed record TokenBatch(
    TokenMatrix InputIds,
    TokenMatrix AttentionMask,
    TokenMatrix? TokenTypeIds = null,
    TokenMatrix? Labels = null,
    long[]? ClassLabels = null,
    float[]? Scores = null)
{
    /// <summary>The label value on which no loss is taken (PyTorch's <c>CrossEntropyLoss</c> default <c>ignore_index</c>).</summary>
    public const long IgnoreIndex = -100;

    /// <summary>Rows in the batch.</summary>
    public int Size => InputIds.Rows;

    /// <summary>
    /// The batch as tensors on <paramref name="device"/>: int64 ids, masks and token labels, int64 [batch] classes,
    /// float32 [batch] scores. The caller owns them (create them inside the step's dispose scope).
    /// </summary>
    /// <exception cref="InvalidOperationException">More than one kind of label is set.</exception>
    public ModelInputs ToModelInputs(Device? device = null)
    {
        var kinds = (Labels is null ? 0 : 1) + (ClassLabels is null ? 0 : 1) + (Scores is null ? 0 : 1);
        if (kinds > 1)
            throw new InvalidOperationException("A batch has token labels, class labels or scores, not several of them.");
        Tensor? labels =
            Labels is not null ? Labels.ToTensor(device)
            : ClassLabels is not null ? torch.tensor(ClassLabels, dtype: ScalarType.Int64, device: device)
            : Scores is not null ? torch.tensor(Scores, dtype: ScalarType.Float32, device: device)
            : null;
        return new ModelInputs(InputIds.ToTensor(device), AttentionMask.ToTensor(device), TokenTypeIds?.ToTensor(device), labels);
    }
}
