using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Contraction;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Layers;

/// <summary>
/// An embedding table E [num_embeddings, embedding_dim] held as an MPO. Vocabularies that factor badly are
/// zero-padded (BERT's 30522 rows as 30720, spec §3.7); the padding rows never leave the layer, and truncation zeroes
/// them again before re-gauging (<see cref="MpoLayer.Truncate"/>). Lookup either rebuilds the table and gathers (the
/// papers' code) or contracts only the looked-up rows, whichever costs less. A <see cref="PaddingIdx"/> behaves as
/// PyTorch's <c>padding_idx</c>: its row is looked up as it is but sends no gradient.
/// </summary>
public sealed class MpoEmbedding : MpoLayer
{
    /// <summary>Which way rows are produced; <see cref="ContractionPath.Factorized"/> contracts per looked-up row;
    /// <see cref="ContractionPath.Auto"/> reuses the contracted table in inference calls (<see cref="MpoLayer.CacheWeight"/>)
    /// and otherwise asks the cost model.</summary>
    public ContractionPath Path { get; set; } = ContractionPath.Auto;

    public int NumEmbeddings => Factorization.Rows;
    public int EmbeddingDim => Factorization.Cols;
    /// <summary>PyTorch's <c>padding_idx</c> of the table this layer replaces (BERT's pad token), or null.</summary>
    public long? PaddingIdx { get; }

    public MpoEmbedding(MatrixProductOperator mpo, bool adoptCores = false, string name = "MpoEmbedding", long? paddingIdx = null)
        : base(name, mpo, adoptCores)
    {
        if (paddingIdx is { } pad && (pad < 0 || pad >= mpo.Factorization.Rows))
            throw new ArgumentOutOfRangeException(nameof(paddingIdx), pad, $"padding_idx must lie in 0..{mpo.Factorization.Rows - 1}");
        PaddingIdx = paddingIdx;
    }

    /// <summary>An MPO embedding with zero cores of the given bonds: to load cores into, or on the meta device for
    /// counting (see the base constructor).</summary>
    public MpoEmbedding(MpoFactorization factorization, IReadOnlyList<int> bonds, long? paddingIdx = null, ScalarType? dtype = null,
                        Device? device = null, string name = "MpoEmbedding")
        : base(name, factorization, bonds, dtype, device)
    {
        if (paddingIdx is { } pad && (pad < 0 || pad >= factorization.Rows))
            throw new ArgumentOutOfRangeException(nameof(paddingIdx), pad, $"padding_idx must lie in 0..{factorization.Rows - 1}");
        PaddingIdx = paddingIdx;
    }

    /// <summary>Decomposes an embedding table; default factors pad the vocabulary where it factors badly.</summary>
    public static MpoEmbedding FromWeight(Tensor table, MpoFactorization? factorization = null, TruncationSpec? truncation = null,
                                          long? paddingIdx = null)
    {
        using var mpo = Decompose(table, "embedding table [num_embeddings, dim]", factorization, truncation);
        return new MpoEmbedding(mpo, paddingIdx: paddingIdx);
    }

    public override Tensor forward(Tensor indices)
    {
        if (indices.numel() > 0)
        {
            long min = indices.min().item<long>(), max = indices.max().item<long>();
            if (min < 0 || max >= NumEmbeddings)
                throw new ArgumentOutOfRangeException(nameof(indices),
                    $"token ids must lie in 0..{NumEmbeddings - 1}, got ids from {min} to {max}");
        }
        if (Path == ContractionPath.Auto && InferenceWeight() is { } table)
        {
            var shape = indices.shape.Append((long)EmbeddingDim).ToArray();
            using var flat = indices.reshape(-1);
            using var gathered = table.index_select(0, flat);
            return gathered.reshape(shape);
        }
        var path = Path;
        if (path == ContractionPath.Auto)
        {
            // the lookup contracts each distinct id once
            long distinct;
            using (var flat = indices.reshape(-1))
            {
                var (values, _, _) = unique(flat);
                using (values) distinct = values.numel();
            }
            var lookup = CostModel.Rows(Factorization, Bonds, distinct, training);
            var rebuild = CostModel.Reconstruct(Factorization, Bonds, 0, training);
            path = lookup.Effective < rebuild.Effective ? ContractionPath.Factorized : ContractionPath.Reconstruct;
        }
        using var scope = NewDisposeScope();
        Tensor rows;
        if (path == ContractionPath.Factorized)
            rows = MpoContraction.RowsFactorized(indices, Cores, Factorization);
        else
        {
            var shape = indices.shape.Append((long)EmbeddingDim).ToArray();
            rows = Weight().index_select(0, indices.reshape(-1)).reshape(shape);
        }
        // padding_idx: the value flows forward, its gradient does not (PyTorch's semantics)
        if (PaddingIdx is { } pad && rows.requires_grad)
            rows = where(indices.eq(pad).unsqueeze(-1), rows.detach(), rows);
        return rows.MoveToOuterDisposeScope();
    }

    /// <summary>Merges back to a dense embedding table [num_embeddings, dim] with the same <c>padding_idx</c>.</summary>
    public TorchSharp.Modules.Embedding Merge()
    {
        using var _ = no_grad();
        var embedding = nn.Embedding(NumEmbeddings, EmbeddingDim, padding_idx: PaddingIdx, device: Central.device, dtype: Central.dtype);
        using var table = Weight();
        embedding.weight!.copy_(table);
        return embedding;
    }
}
