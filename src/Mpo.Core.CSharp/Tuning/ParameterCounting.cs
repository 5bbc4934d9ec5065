using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Mpo.Decomposition;
using Mpo.Layers;
using Mpo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>Trainable and total parameters of a model, as peft reports them.</summary>
/// <param name="Trainable">Parameters with <c>requires_grad</c> (MPOP's #Pr).</param>
/// <param name="Total">Every parameter, a shared one (a tied table, an MPOE central tensor) once (MPOP's #To).</param>
public readonly record struct ParameterCount(long Trainable, long Total)
{
    /// <summary>100 · trainable / total (0 for an empty model).</summary>
    public double TrainablePercent => Total == 0 ? 0 : 100.0 * Trainable / Total;

    /// <summary>peft's <c>print_trainable_parameters</c> line, character for character:
    /// <c>trainable params: 1,187,574 || all params: 12,695,286 || trainable%: 9.3544</c>.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"trainable params: {Trainable:N0} || all params: {Total:N0} || trainable%: {TrainablePercent:F4}");
}

/// <summary>One MPO layer of a model as counted: where, which family, its factors and bonds, and its parameters.</summary>
public sealed record MpoLayerCount(string Path, string? Family, MpoFactorization Factorization, int[] Bonds,
                                   long Parameters, long CentralParameters, bool CentralTrainable)
{
    /// <summary>Parameters of the dense matrix the layer replaces (rows × columns, padding excluded).</summary>
    public long DenseParameters => (long)Factorization.Rows * Factorization.Cols;
}

/// <summary>One MoE layer of a model as counted (MPOE §3.1): its experts, and its parameters by role — the router, the
/// shared central tensors (stored once per FFN matrix; 0 for dense experts and for MPO experts that own their central
/// tensors, kind "mpo-unshared"), and what the experts own (auxiliary tensors and biases, their own central tensors,
/// or dense copies).</summary>
public sealed record ExpertLayerCount(string Path, string Kind, int Experts, long Dense, long Router, long SharedCentral, long PerExpert)
{
    /// <summary>Every parameter of the layer.</summary>
    public long Parameters => Router + SharedCentral + PerExpert;
}

/// <summary>A model's count: its class, trainable and total parameters, each MPO layer and each MoE layer in it.</summary>
public sealed record ModelCount(string Architecture, string ModelType, ParameterCount Parameters, IReadOnlyList<MpoLayerCount> MpoLayers,
                                IReadOnlyList<ExpertLayerCount> ExpertLayers)
{
    /// <summary>Parameters of the MoE layers' routers: the papers' totals leave them out (MPOE §3.1, spec §5.4).</summary>
    public long RouterParameters => ExpertLayers.Sum(l => l.Router);
}

/// <summary>
/// A method that changes a model's structure (MPO decomposition, later MPOE's experts): besides applying itself to a
/// model with weights, it can swap in modules of the right shapes without reading any weight, so that parameters
/// are counted from a configuration alone (<see cref="ParameterCounting.FromConfig"/>).
/// </summary>
public interface IStructuralTuner
{
    /// <summary>Replaces the modules this method would replace with ones of the shapes it would give them, on the
    /// model's (possibly meta) device, reading no weight.</summary>
    void ApplyShapes(PretrainedModel model);
}

/// <summary>
/// The one way Mpo counts parameters: every command, fine-tuning result and report calls <see cref="Count"/>; counts
/// from a configuration alone build the model on libtorch's meta device (shapes, no storage) and count it the same
/// way, so the two cannot disagree about what a parameter is.
/// </summary>
public static class ParameterCounting
{
    static readonly object metaDevice = new();

    /// <summary>Trainable and total parameters of <paramref name="module"/>; a parameter registered in several places
    /// (a tied table, an MPOE central tensor shared by experts) counts once.</summary>
    public static ParameterCount Count(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var seen = new HashSet<IntPtr>();
        long trainable = 0, total = 0;
        foreach (var (_, p) in module.named_parameters())
        {
            if (!seen.Add(p.Handle)) continue;
            total += p.numel();
            if (p.requires_grad) trainable += p.numel();
        }
        return new ParameterCount(trainable, total);
    }

    /// <summary>The count of a model with weights (or shapes only) and of every MPO layer in it.</summary>
    public static ModelCount Describe(PretrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var layers = model.named_modules()
            .Where(m => m.module is MpoLayer)
            .Select(m =>
            {
                var layer = (MpoLayer)m.module;
                var bonds = layer.Bonds;
                return new MpoLayerCount(m.name, TargetPatterns.FamilyOf(model.Config.ModelType, m.name), layer.Factorization, bonds,
                                         layer.Factorization.ParameterCount(bonds), layer.Factorization.CentralParameterCount(bonds), layer.CentralTrainable);
            })
            .ToList();
        var experts = model.named_modules()
            .Where(m => m.module is Experts.MoeFeedForward)
            .Select(m => Describe(m.name, (Experts.MoeFeedForward)m.module))
            .ToList();
        return new ModelCount(model.Architecture, model.Config.ModelType, Count(model), layers, experts);
    }

    /// <summary>An MoE layer's parameters by role, each tensor once (<see cref="Count"/> over its parts).</summary>
    static ExpertLayerCount Describe(string path, Experts.MoeFeedForward layer)
    {
        long router = Count(layer.router).Total, central = 0, dense = 0;
        foreach (var m in new[] { layer.Input, layer.Output })
        {
            dense += (long)m.InFeatures * m.OutFeatures;
            // unshared central tensors (MPOE Table 3's "w/o PS") are the experts' own, counted with them
            if (m is Experts.MpoExpertMatrices { SharesCentral: true } mpo) central += mpo.Central.numel();
        }
        long all = Count(layer).Total;
        string kind = layer.Input is Experts.MpoExpertMatrices e ? (e.SharesCentral ? "mpo" : "mpo-unshared") : "dense";
        return new ExpertLayerCount(path, kind, layer.Experts, dense, router, central, all - router - central);
    }

    /// <summary>
    /// The count of <paramref name="architecture"/> built from <paramref name="config"/> with <paramref name="tuners"/>
    /// applied in order, from the configuration alone: the model is built on the meta device (shapes, no storage) and
    /// each tuner swaps in modules by shape (<see cref="IStructuralTuner.ApplyShapes"/>; MPO layers, and experts for a
    /// mixture-of-experts method). libtorch's default device is process-wide, so the build holds a lock and must not
    /// run beside other tensor work of the same process.
    /// </summary>
    public static ModelCount FromConfig(ModelConfig config, string architecture, IEnumerable<IStructuralTuner>? tuners = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        lock (metaDevice)
        {
            var previous = get_default_device();
            set_default_device(META);
            try
            {
                using var model = ModelRegistry.Create(config, architecture);
                foreach (var tuner in tuners ?? Array.Empty<IStructuralTuner>()) tuner.ApplyShapes(model);
                return Describe(model);
            }
            finally
            {
                set_default_device(previous);
            }
        }
    }

    /// <summary>The class <c>mpo count</c> builds from a configuration when none is named: the family's
    /// sequence-classification head, as MPOP's tables count (AlbertForSequenceClassification, two labels by default);
    /// T5, which classifies text to text, as T5ForConditionalGeneration.</summary>
    public static string CountedArchitecture(ModelConfig config) =>
        ModelRegistry.SequenceClassificationArchitecture(config.ModelType)
        ?? ModelRegistry.Family(config.ModelType, "model_type").Classes.Keys.First(k => k.EndsWith("ForConditionalGeneration", StringComparison.Ordinal)
                                                                                || k.EndsWith("LMHeadModel", StringComparison.Ordinal));
}
