using System;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// Word + absolute position (+ token type) embeddings → LayerNorm → dropout: the input block BERT, ALBERT and
/// DistilBERT share, under the names all three use in HF (<c>word_embeddings</c>, <c>position_embeddings</c>,
/// <c>token_type_embeddings</c>, <c>LayerNorm</c>). ALBERT's width is its factorized <c>embedding_size</c>;
/// DistilBERT has no token types. Positions are 0..seq-1 (HF's <c>position_ids</c> buffer, never stored here).
/// <para>The lookups are checked first, so a bad batch fails naming the argument and the allowed range instead of
/// with an index error inside libtorch.</para>
/// </summary>
public sealed class EncoderEmbeddings : nn.Module
{
    // Embedding fields are typed by their interface so a tuner can swap in an MpoEmbedding (ModuleSurgery).
    nn.Module<Tensor, Tensor> word_embeddings;
    nn.Module<Tensor, Tensor> position_embeddings;
    nn.Module<Tensor, Tensor>? token_type_embeddings;
    [ComponentName(Name = "LayerNorm")]
    readonly LayerNorm layerNorm;

    readonly long vocabSize, maxPositions, typeVocabSize;
    readonly long? padTokenId;
    readonly double dropout;

    /// <param name="typeVocabSize">0 for models without token types (DistilBERT).</param>
    /// <param name="padTokenId">HF's <c>padding_idx</c>: the row gets no gradient and starts at zero.</param>
    public EncoderEmbeddings(long vocabSize, long width, long maxPositions, long typeVocabSize, int? padTokenId,
                             double layerNormEps, double dropout) : base("Embeddings")
    {
        this.vocabSize = vocabSize;
        this.maxPositions = maxPositions;
        this.typeVocabSize = typeVocabSize;
        this.padTokenId = padTokenId;
        this.dropout = dropout;
        word_embeddings = nn.Embedding(vocabSize, width, padding_idx: padTokenId);
        position_embeddings = nn.Embedding(maxPositions, width);
        token_type_embeddings = typeVocabSize > 0 ? nn.Embedding(typeVocabSize, width) : null;
        layerNorm = nn.LayerNorm(width, layerNormEps);
        RegisterComponents();
    }

    /// <summary>The token table module (read by tied output heads through <see cref="EmbeddingTable.Of"/>).</summary>
    public nn.Module<Tensor, Tensor> WordEmbeddings => word_embeddings;
    /// <summary>HF's <c>padding_idx</c> of the token table (its pad token's row), or null.</summary>
    public long? PaddingIdx => padTokenId;
    /// <summary>The position table module (DistilBERT's sinusoidal option writes it).</summary>
    public nn.Module<Tensor, Tensor> PositionEmbeddings => position_embeddings;

    /// <summary>HF's initialization after the generic pass: the padding row of the token table is zero.</summary>
    public void ZeroPaddingRow()
    {
        if (padTokenId is not { } pad || word_embeddings is not Embedding dense) return;
        using var _ = no_grad();
        using var row = dense.weight![pad];
        row.zero_();
    }

    /// <summary>Embeddings [batch, seq, width] of <paramref name="inputIds"/> [batch, seq].</summary>
    public Tensor Forward(Tensor inputIds, Tensor? tokenTypeIds)
    {
        CheckIds(inputIds, tokenTypeIds);
        using var scope = NewDisposeScope();
        long seq = inputIds.shape[1];
        var positions = arange(seq, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var sum = word_embeddings.forward(inputIds).add(position_embeddings.forward(positions));
        if (token_type_embeddings is not null)
            sum = sum.add(token_type_embeddings.forward(tokenTypeIds ?? zeros_like(inputIds)));
        var x = layerNorm.forward(sum);
        return nn.functional.dropout(x, dropout, training).MoveToOuterDisposeScope();
    }

    void CheckIds(Tensor inputIds, Tensor? tokenTypeIds)
    {
        InputChecks.TokenIds(inputIds, vocabSize, InputNames.InputIds);
        long seq = inputIds.shape[1];
        if (seq > maxPositions)
            throw new ArgumentException($"input_ids has {seq} positions, more than max_position_embeddings = {maxPositions}", InputNames.InputIds);
        if (tokenTypeIds is null) return;
        if (token_type_embeddings is null)
            throw new ArgumentException("this model has no token type embeddings; pass token_type_ids = null", InputNames.TokenTypeIds);
        if (tokenTypeIds.dtype != ScalarType.Int64 || !tokenTypeIds.shape.AsSpan().SequenceEqual(inputIds.shape))
            throw new ArgumentException($"token_type_ids must be int64 shaped like input_ids [{string.Join(",", inputIds.shape)}], got {tokenTypeIds.dtype} [{string.Join(",", tokenTypeIds.shape)}]", InputNames.TokenTypeIds);
        InputChecks.Range(tokenTypeIds, typeVocabSize, InputNames.TokenTypeIds, "type_vocab_size");
    }

    /// <summary>Checkpoint entries older HF versions saved from the embeddings that hold no weights
    /// (<c>embeddings.position_ids</c>, the 0..max-1 index buffer).</summary>
    public static bool IsLegacyBuffer(string checkpointName) =>
        checkpointName.EndsWith("embeddings.position_ids", StringComparison.Ordinal);
}
