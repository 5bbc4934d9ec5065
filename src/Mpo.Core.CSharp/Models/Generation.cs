using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Mpo.Models;

/// <summary>A decoder-only LM head (GPT-2) as generation drives it: forward with <see cref="ModelInputs.Cache"/> and
/// <see cref="ModelInputs.PositionIds"/>, logits [batch, seq, vocab].</summary>
public interface ICausalLanguageModel
{
    KeyValueCache NewCache();
}

/// <summary>An encoder-decoder LM head (T5) as generation drives it: the encoder runs once
/// (<see cref="Encode"/>), the decoder step by step with <see cref="ModelInputs.EncoderHiddenState"/>.</summary>
public interface ISeq2SeqLanguageModel
{
    KeyValueCache NewCache();
    Tensor Encode(Tensor inputIds, Tensor? attentionMask = null);
    int DecoderStartTokenId { get; }
}

/// <summary>How to decode (HF <c>GenerationConfig</c> names and defaults). Greedy unless <see cref="DoSample"/>;
/// the warpers apply only when sampling.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 20;
    public bool DoSample { get; init; }
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens (HF default 50; 0 disables).</summary>
    public int TopK { get; init; } = 50;
    /// <summary>Nucleus mass (1.0 disables).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Stops a row when it produces this id; default the config's eos_token_id.</summary>
    public int? EosTokenId { get; init; }
    /// <summary>Fills finished rows; default the config's pad_token_id, else the eos id (HF's choice for GPT-2).</summary>
    public int? PadTokenId { get; init; }
    /// <summary>Reuse keys/values of earlier positions (same tokens and logits as recomputing the prefix).</summary>
    public bool UseCache { get; init; } = true;
}

/// <param name="Sequences">Decoder-only: prompt + new tokens [batch, prompt+steps]. Encoder-decoder: decoder start +
/// new tokens [batch, 1+steps]. Finished rows continue with the pad id.</param>
/// <param name="Logits">The model's raw next-token logits at each step [batch, steps, vocab] (before warping).</param>
public sealed record GenerationOutput(Tensor Sequences, Tensor Logits);

/// <summary>
/// Autoregressive decoding for any <see cref="ICausalLanguageModel"/> or <see cref="ISeq2SeqLanguageModel"/>: greedy or
/// sampled (temperature, top-k, top-p from <see cref="LogitsProcessing"/>, drawn with a caller's seeded
/// <see cref="Generator"/> so runs reproduce), up to <see cref="GenerationOptions.MaxNewTokens"/>, each row stopping at
/// its eos. With the cache a step feeds only the newest token; without it, the whole sequence (the reference the cache
/// must match). Dropout is off while generating; the model's mode is restored afterwards.
/// </summary>
public static class Generation
{
    /// <param name="inputIds">Prompt [batch, seq]; decoder-only prompts of unequal length are padded on the left.</param>
    /// <param name="attentionMask">1 for prompt tokens, 0 for padding; null = no padding.</param>
    /// <param name="generator">Random source for sampling; seed it for reproducible samples.</param>
    public static GenerationOutput Generate(PretrainedModel model, Tensor inputIds, Tensor? attentionMask = null,
                                            GenerationOptions? options = null, Generator? generator = null)
    {
        options ??= new GenerationOptions();
        if (options.MaxNewTokens < 1)
            throw new ArgumentException($"MaxNewTokens must be ≥ 1, got {options.MaxNewTokens}", nameof(options));
        if (options.DoSample) LogitsProcessing.Validate(options.Temperature, options.TopK, options.TopP);
        if (inputIds.dim() != 2 || inputIds.shape[1] == 0)
            throw new ArgumentException($"prompt must be [batch, seq] with seq ≥ 1, got [{string.Join(",", inputIds.shape)}]", nameof(inputIds));
        if (attentionMask is not null)
            Blocks.InputChecks.Mask(attentionMask, inputIds.shape[0], inputIds.shape[1], nameof(attentionMask));
        int? eos = options.EosTokenId ?? model.Config.EosTokenId;
        int pad = options.PadTokenId ?? model.Config.PadTokenId ?? eos ?? 0;

        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            return model switch
            {
                ICausalLanguageModel causal => Causal(model, causal, inputIds, attentionMask, options, generator, eos, pad),
                ISeq2SeqLanguageModel seq2seq => EncoderDecoder(model, seq2seq, inputIds, attentionMask, options, generator, eos, pad),
                _ => throw new ArgumentException($"{model.Architecture} has no language-model head to generate with", nameof(model)),
            };
        }
        finally { model.train(wasTraining); }
    }

    static GenerationOutput Causal(PretrainedModel model, ICausalLanguageModel causal, Tensor inputIds, Tensor? attentionMask,
                                   GenerationOptions options, Generator? generator, int? eos, int pad)
    {
        long batch = inputIds.shape[0], promptLength = inputIds.shape[1];
        if (model.Config.MaxPositions is { } maxPositions && promptLength + options.MaxNewTokens > maxPositions)
            throw new ArgumentException(
                $"prompt ({promptLength}) + MaxNewTokens ({options.MaxNewTokens}) exceeds the model's {maxPositions} positions", nameof(options));
        if (attentionMask is not null && attentionMask.select(1, promptLength - 1).eq(0).any().item<bool>())
            throw new ArgumentException("decoder-only prompts must be padded on the left (the last column is padding)", nameof(attentionMask));

        using var outer = NewDisposeScope();
        using var cache = options.UseCache ? causal.NewCache() : null;
        var ids = inputIds.alias();
        var mask = attentionMask?.to(ScalarType.Int64) ?? ones(batch, promptLength, ScalarType.Int64, inputIds.device);
        var state = new DecodingState(batch, inputIds.device, eos, pad);
        for (int step = 0; step < options.MaxNewTokens && !state.AllFinished; step++)
        {
            using var scope = NewDisposeScope();
            // HF: positions count real tokens only, so a left-padded row starts at 0 like an unpadded one
            var positions = mask.cumsum(1).sub(1).masked_fill(mask.eq(0), 1);
            long feed = cache is not null && step > 0 ? 1 : ids.shape[1];
            var output = model.forward(new ModelInputs(
                ids.narrow(1, ids.shape[1] - feed, feed), mask, Cache: cache, PositionIds: positions.narrow(1, ids.shape[1] - feed, feed)));
            var next = state.Choose(output.Logits.select(1, -1), options, generator);
            ids = cat(new[] { ids, next.unsqueeze(1) }, 1).MoveToOuterDisposeScope();
            mask = cat(new[] { mask, ones(batch, 1, ScalarType.Int64, mask.device) }, 1).MoveToOuterDisposeScope();
        }
        return new GenerationOutput(ids.MoveToOuterDisposeScope(), state.StackedLogits().MoveToOuterDisposeScope());
    }

    static GenerationOutput EncoderDecoder(PretrainedModel model, ISeq2SeqLanguageModel seq2seq, Tensor inputIds, Tensor? attentionMask,
                                           GenerationOptions options, Generator? generator, int? eos, int pad)
    {
        long batch = inputIds.shape[0];
        using var outer = NewDisposeScope();
        using var cache = options.UseCache ? seq2seq.NewCache() : null;
        var encoderHidden = seq2seq.Encode(inputIds, attentionMask);   // once, for every step
        var ids = full(batch, 1, seq2seq.DecoderStartTokenId, ScalarType.Int64, inputIds.device);
        var state = new DecodingState(batch, inputIds.device, eos, pad);
        for (int step = 0; step < options.MaxNewTokens && !state.AllFinished; step++)
        {
            using var scope = NewDisposeScope();
            long feed = cache is not null ? 1 : ids.shape[1];
            var output = model.forward(new ModelInputs(inputIds, attentionMask,
                DecoderInputIds: ids.narrow(1, ids.shape[1] - feed, feed), Cache: cache, EncoderHiddenState: encoderHidden));
            var next = state.Choose(output.Logits.select(1, -1), options, generator);
            ids = cat(new[] { ids, next.unsqueeze(1) }, 1).MoveToOuterDisposeScope();
        }
        return new GenerationOutput(ids.MoveToOuterDisposeScope(), state.StackedLogits().MoveToOuterDisposeScope());
    }

    /// <summary>Per-row stopping and token choice shared by both loops. Lives in the caller's outer dispose scope.</summary>
    sealed class DecodingState
    {
        readonly List<Tensor> logits = new();
        readonly int? eos;
        readonly int pad;
        Tensor unfinished;

        public DecodingState(long batch, Device device, int? eos, int pad)
        {
            this.eos = eos;
            this.pad = pad;
            unfinished = ones(batch, ScalarType.Bool, device);
        }

        public bool AllFinished => !unfinished.any().item<bool>();

        /// <summary>The next token per row from its logits [batch, vocab]; finished rows get the pad id.</summary>
        public Tensor Choose(Tensor stepLogits, GenerationOptions options, Generator? generator)
        {
            logits.Add(stepLogits.detach().clone().MoveToOuterDisposeScope());
            Tensor next;
            if (options.DoSample)
            {
                var warped = LogitsProcessing.Warp(stepLogits, options.Temperature, options.TopK, options.TopP);
                var probabilities = warped.softmax(-1, warped.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);
                next = multinomial(probabilities, 1, generator: generator).squeeze(1);
            }
            else next = stepLogits.argmax(-1);
            next = where(unfinished, next, full_like(next, pad));
            if (eos is { } e) unfinished = unfinished.logical_and(next.ne(e)).MoveToOuterDisposeScope();
            return next;
        }

        public Tensor StackedLogits() => stack(logits, 1);
    }
}
