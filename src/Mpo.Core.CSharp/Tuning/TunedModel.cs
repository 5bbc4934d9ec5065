using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Layers;
using Mpo.Models;
using Mpo.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// A pre-trained model with MPO layers in place of its dense matrices (peft's <c>PeftModel</c>): the model itself
/// (trained, run and saved as any <see cref="PretrainedModel"/>), the configuration it was tuned with, and what was
/// decomposed. It owns the model: disposing it disposes the model.
/// </summary>
public sealed class TunedModel : IDisposable
{
    bool merged;

    public TunedModel(PretrainedModel model, MpoTunerConfig config, IReadOnlyList<MpoTarget> targets, IReadOnlyList<ExpertTarget>? experts = null)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Config = config ?? throw new ArgumentNullException(nameof(config));
        Targets = targets ?? throw new ArgumentNullException(nameof(targets));
        Experts = experts ?? Array.Empty<ExpertTarget>();
    }

    public PretrainedModel Model { get; }
    public MpoTunerConfig Config { get; }
    /// <summary>The decomposed modules, in module order.</summary>
    public IReadOnlyList<MpoTarget> Targets { get; }
    /// <summary>The feed-forward blocks made MoE layers (the configuration's <c>moe</c> section), in module order.</summary>
    public IReadOnlyList<ExpertTarget> Experts { get; }

    /// <summary>The MPO layer now at a target's path.</summary>
    public MpoLayer Layer(MpoTarget target) =>
        ModuleSurgery.Find(Model, target.Path) as MpoLayer
        ?? throw new InvalidOperationException($"'{target.Path}' no longer holds an MPO layer (merged?)");

    /// <summary>Trainable and total parameters (<see cref="ParameterCounting.Count"/>).</summary>
    public ParameterCount Count() => ParameterCounting.Count(Model);

    /// <summary>
    /// Replaces every MPO layer by the dense module it came from, holding the matrix the cores represent now
    /// (peft's <c>merge_and_unload</c>): a <see cref="TorchSharp.Modules.Linear"/> with its bias, GPT-2's
    /// <see cref="Conv1D"/> in its [in, out] layout, an embedding with its <c>padding_idx</c>. The result is a plain
    /// model of its class whose logits equal the MPO model's; <see cref="PretrainedModel.Save"/> writes it as a
    /// Hugging Face checkpoint that the ordinary loader reads. This tuned model is spent afterwards.
    /// </summary>
    public PretrainedModel Merge()
    {
        if (merged) throw new InvalidOperationException("this tuned model was merged already");
        if (Experts.Count > 0)
            throw new InvalidOperationException($"'{Experts[0].Path}' and {Experts.Count - 1} more are MoE layers, which have no dense equivalent to merge into; save the model as it is (its config.json records the experts)");
        using var noGrad = no_grad();
        foreach (var target in Targets)
        {
            nn.Module dense = (target.Kind, Layer(target)) switch
            {
                (DenseKind.Linear, MpoLinear linear) => linear.Merge(),
                (DenseKind.Conv1D, MpoLinear linear) => MergeConv1D(linear),
                (DenseKind.Embedding, MpoEmbedding embedding) => embedding.Merge(),
                var (kind, layer) => throw new InvalidOperationException($"'{target.Path}' was a {kind} but holds a {layer.GetType().Name}"),
            };
            ModuleSurgery.Replace(Model, target.Path, dense).Dispose();
        }
        merged = true;
        return Model;
    }

    static Conv1D MergeConv1D(MpoLinear layer)
    {
        using var linear = layer.Merge();
        return Conv1D.FromLinear(linear);
    }

    public void Dispose() => Model.Dispose();
}
