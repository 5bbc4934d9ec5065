using System;
using Mpo.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// The [vocab, dim] matrix behind an embedding module, for output heads tied to the input embedding (BERT's MLM
/// decoder, GPT-2's lm_head, T5's lm_head). Heads ask for it on every forward instead of holding the parameter, so the
/// tie survives a tuner swapping the embedding for an <see cref="MpoEmbedding"/>.
/// </summary>
public static class EmbeddingTable
{
    /// <summary>The table; for an MPO embedding, the reconstruction (a new tensor in the caller's dispose scope).</summary>
    public static Tensor Of(nn.Module<Tensor, Tensor> embedding) => embedding switch
    {
        Embedding dense => dense.weight ?? throw new InvalidOperationException("embedding has no weight"),
        MpoEmbedding mpo => mpo.Weight(),
        _ => throw new NotSupportedException($"a tied output head cannot read the table of a {embedding.GetType().Name}"),
    };
}
