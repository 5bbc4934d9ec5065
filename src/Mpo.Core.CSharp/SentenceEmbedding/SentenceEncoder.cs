using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mpo.Models;
using Mpo.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.SentenceEmbedding;

/// <summary>
/// Sentence embeddings from an encoder checkpoint (Reimers &amp; Gurevych 2019, sentence-transformers): WordPiece
/// ids framed as <c>[CLS] text [SEP]</c>, the encoder's last hidden state, then the folder's pooling
/// (<see cref="SentencePooling"/>: mean over the attention mask for all-MiniLM-L6-v2, [CLS] for arctic-embed) and L2
/// normalization. Batches are padded to their longest row; padding never reaches the pooled vector.
/// </summary>
public sealed class SentenceEncoder : IDisposable
{
    readonly bool ownsModel;

    /// <summary>Wraps a loaded encoder (e.g. one whose weights were substituted) without taking ownership.</summary>
    public SentenceEncoder(PretrainedModel model, BertWordPieceTokenizer tokenizer, SentencePooling pooling)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Pooling = pooling ?? throw new ArgumentNullException(nameof(pooling));
        MaxLength = pooling.MaxSequenceLength ?? model.Config.MaxPositions ?? 512;
    }

    SentenceEncoder(PretrainedModel model, BertWordPieceTokenizer tokenizer, SentencePooling pooling, bool owns)
        : this(model, tokenizer, pooling) { ownsModel = owns; }

    public PretrainedModel Model { get; }
    public BertWordPieceTokenizer Tokenizer { get; }
    public SentencePooling Pooling { get; }
    /// <summary>Longest input row in tokens, [CLS] and [SEP] included; longer texts are cut (as the packages' encoders do).</summary>
    public int MaxLength { get; }

    /// <summary>Opens a checkpoint folder with its WordPiece vocabulary and sentence-transformers pooling files.</summary>
    /// <exception cref="InvalidDataException">The folder has no pooling files or no WordPiece vocabulary; the
    /// message names the folder.</exception>
    public static SentenceEncoder Load(string folder, Device? device = null)
    {
        var pooling = SentencePooling.Read(folder)
            ?? throw new InvalidDataException($"{folder}: no {SentencePooling.ModulesFile}, so no pooling is known; import the model with a pooling (mpo import onnx --pooling mean|cls) or add sentence-transformers' pooling files");
        if (Tokenizers.FromFolder(folder) is not BertWordPieceTokenizer tokenizer)
            throw new InvalidDataException($"{folder}: sentence embeddings need a BERT WordPiece vocabulary (vocab.txt)");
        var (model, _) = PretrainedModel.Load(folder, device: device);
        return new SentenceEncoder(model, tokenizer, pooling, owns: true);
    }

    /// <summary>One vector per sentence (float32 [count, hidden]), in batches of <paramref name="batchSize"/>.</summary>
    public Tensor Encode(IReadOnlyList<string> sentences, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be ≥ 1");
        var parts = new List<Tensor>();
        using (no_grad())
        {
            for (int start = 0; start < sentences.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = sentences.Skip(start).Take(batchSize).ToList();
                var (ids, types, mask) = Batch(batch);
                var device = Model.parameters().First().device;
                var hidden = Model.forward(new ModelInputs(ids.to(device), AttentionMask: mask.to(device), TokenTypeIds: types.to(device))).LastHiddenState;
                parts.Add(Pool(hidden, mask.to(device), Pooling).to(float32).cpu().MoveToOuterDisposeScope());
            }
        }
        if (parts.Count == 0) return zeros(0, Model.Config is BertConfig b ? b.HiddenSize : 0);
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>The padded id, segment and mask tensors [batch, longest] of <paramref name="sentences"/>.</summary>
    public (Tensor InputIds, Tensor TokenTypeIds, Tensor AttentionMask) Batch(IReadOnlyList<string> sentences)
    {
        var rows = sentences.Select(s => Tokenizer.EncodeInputs(s, maxLength: MaxLength)).ToList();
        int width = rows.Max(r => r.InputIds.Length);
        var pad = Tokenizer.SpecialTokens.Padding ?? 0;
        long[] Flat(Func<BertInputs, int[]> field, long fill) =>
            rows.SelectMany(r => field(r).Select(v => (long)v).Concat(Enumerable.Repeat(fill, width - field(r).Length))).ToArray();
        long[] shape = [rows.Count, width];
        return (tensor(Flat(r => r.InputIds, pad), shape), tensor(Flat(r => r.TokenTypeIds, 0), shape), tensor(Flat(r => r.AttentionMask, 0), shape));
    }

    /// <summary>Pools token vectors [batch, seq, hidden] under the mask [batch, seq] into [batch, hidden].</summary>
    public static Tensor Pool(Tensor hidden, Tensor attentionMask, SentencePooling pooling)
    {
        using var scope = NewDisposeScope();
        var keep = attentionMask.to(hidden.dtype).unsqueeze(-1);
        var pooled = pooling.Mode switch
        {
            // sentence-transformers: sum of kept tokens / max(count, 1e-9)
            PoolingMode.Mean => hidden.mul(keep).sum(1).div(keep.sum(1).clamp_min(1e-9)),
            PoolingMode.Cls => hidden.select(1, 0),
            PoolingMode.Max => hidden.masked_fill(keep.eq(0), double.NegativeInfinity).amax(1),
            _ => throw new ArgumentOutOfRangeException(nameof(pooling), pooling.Mode, "unknown pooling"),
        };
        // torch.nn.functional.normalize(p=2, eps=1e-12), as sentence-transformers' Normalize module
        if (pooling.Normalize) pooled = pooled.div(pooled.norm(1, keepdim: true).clamp_min(1e-12));
        return pooled.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        if (ownsModel) Model.Dispose();
    }
}
