using System;
using System.Linq;
using Mpo.Contraction;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Layers;

/// <summary>
/// An embedding table E [num_embeddings, embedding_dim] held as an MPO. Vocabularies that factor badly are
/// zero-padded (BERT's 30522 rows as 30720, spec §3.7); the padding rows never leave the layer. Lookup either
/// rebuilds the table and gathers (the papers' code) or contracts only the looked-up rows, whichever costs less.
/// </summary>
public sealed class MpoEmbedding : MpoLayer
{
    /// <summary>Which way rows are produced; <see cref="ContractionPath.Factorized"/> contracts per looked-up row.</summary>
    public ContractionPath Path { get; set; } = ContractionPath.Auto;

    public int NumEmbeddings => Factorization.Rows;
    public int EmbeddingDim => Factorization.Cols;

    public MpoEmbedding(MatrixProductOperator mpo, bool adoptCores = false, string name = "MpoEmbedding")
        : base(name, mpo, adoptCores) { }

    /// <summary>Decomposes an embedding table; default factors pad the vocabulary where it factors badly.</summary>
    public static MpoEmbedding FromWeight(Tensor table, MpoFactorization? factorization = null, TruncationSpec? truncation = null)
    {
        using var mpo = Decompose(table, "embedding table [num_embeddings, dim]", factorization, truncation);
        return new MpoEmbedding(mpo);
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
        var path = Path;
        if (path == ContractionPath.Auto)
        {
            var rows = CostModel.Rows(Factorization, Bonds, indices.numel(), training);
            var rebuild = CostModel.Reconstruct(Factorization, Bonds, 0, training);
            path = rows.Effective < rebuild.Effective ? ContractionPath.Factorized : ContractionPath.Reconstruct;
        }
        if (path == ContractionPath.Factorized)
            return MpoContraction.RowsFactorized(indices, Cores, Factorization);
        using var scope = NewDisposeScope();
        var table = Weight();
        var shape = indices.shape.Append((long)EmbeddingDim).ToArray();
        return table.index_select(0, indices.reshape(-1)).reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>Merges back to a dense embedding table [num_embeddings, dim].</summary>
    public TorchSharp.Modules.Embedding Merge()
    {
        using var _ = no_grad();
        var embedding = nn.Embedding(NumEmbeddings, EmbeddingDim, device: Central.device, dtype: Central.dtype);
        using var table = Weight();
        embedding.weight!.copy_(table);
        return embedding;
    }
}
