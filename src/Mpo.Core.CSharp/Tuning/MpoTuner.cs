using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using Mpo.Decomposition;
using Mpo.Layers;
using Mpo.Models;
using Mpo.Models.Blocks;
using Mpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// One module the tuner decomposed: where it is, what it was (to merge back into the same kind), its factorization,
/// the bonds it was given, and a fingerprint of the central tensor it started from (an adapter records it, so that it
/// is only ever loaded onto the central tensors it was trained against).
/// </summary>
/// <param name="CentralSha256">SHA-256 of the central tensor's bytes (its dtype, little-endian), right after decomposition.</param>
/// <param name="CentralFingerprint">‖C‖_F and three seeded random projections of C: equal to about 1e-7 across
/// machines whose LAPACK rounds differently, where a byte hash would not be.</param>
/// <param name="Report">The truncation's report when the configuration truncated this family (error measured).</param>
public sealed record MpoTarget(string Path, string Family, DenseKind Kind, MpoFactorization Factorization, int[] Bonds,
                               long? PaddingIdx, string? CentralSha256, double[]? CentralFingerprint, TruncationReport? Report);

/// <summary>Progress of <see cref="MpoTuner.Apply"/>: <paramref name="Done"/> of <paramref name="Total"/> modules, the last at <paramref name="Path"/>.</summary>
public sealed record TuningProgress(int Done, int Total, string Path);

/// <summary>
/// MPO as a tuner (MPOP §4, peft-shaped): selects a model's matrices by family (<see cref="TargetPatterns"/>),
/// decomposes each pre-trained weight into an MPO with the configured factors and truncation, and swaps an
/// <see cref="MpoLinear"/> or <see cref="MpoEmbedding"/> in its place (<see cref="ModuleSurgery"/>), freezing the
/// central tensors for lightweight fine-tuning if asked. Works on every supported family: BERT (any head, a bare
/// <c>BertModel</c> folder), ALBERT (the shared layer is decomposed once), DistilBERT, GPT-2 (its <c>Conv1D</c>
/// stores [in, out]: the MPO holds the [out, in] map, merged back into a Conv1D) and T5. Tied output heads read the
/// embedding table on every call, so they stay tied to the MPO embedding.
/// </summary>
public sealed class MpoTuner : IStructuralTuner
{
    public MpoTuner(MpoTunerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("tuner configuration");
        Config = config;
    }

    public MpoTunerConfig Config { get; }

    /// <summary>The modules the configuration selects in <paramref name="model"/>, each with its factorization; errors
    /// name the family, module and factors when nothing matches or given factors do not fit.</summary>
    public IReadOnlyList<(TargetModule Target, MpoFactorization Factorization)> Select(PretrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Config.TargetModules is { Count: 0 }) return Array.Empty<(TargetModule, MpoFactorization)>();   // an MoE-only configuration
        return TargetPatterns.Match(model, Config.TargetModules?.ToArray())
            .Select(t => (t, FactorizationOf(t)))
            .ToList();
    }

    MpoFactorization FactorizationOf(TargetModule target)
    {
        var (rows, cols) = target.MatrixShape;
        return FactorizationFor(Config, target.Family, rows, cols, target.Path);
    }

    /// <summary>The factors <paramref name="config"/> gives a [rows, cols] matrix of <paramref name="family"/> at
    /// <paramref name="path"/>: the first given factorization that fits, else the chooser's with the configured cores.</summary>
    internal static MpoFactorization FactorizationFor(MpoTunerConfig config, string family, int rows, int cols, string path)
    {
        var given = config.FactorizationsFor(family);
        if (given.Count == 0) return FactorizationChooser.Choose(rows, cols, config.Cores);
        foreach (var shape in given)
            if (shape.Fit(rows, cols) is { } fits) return fits;
        throw new ArgumentException(
            $"factorizations: {string.Join(", ", given)} given for '{family}' fit no [{rows} x {cols}] matrix, " +
            $"but module '{path}' is one (row factors must multiply to {rows}, or pad it by less than that; column factors to {cols})",
            "factorizations");
    }

    /// <summary>
    /// Decomposes every selected module of <paramref name="model"/> (in place) and returns the tuned model. Weights are
    /// decomposed one at a time in float64 and the dense module is released before the next, so a BERT-base-sized
    /// model never holds more than one float64 copy.
    /// </summary>
    public TunedModel Apply(PretrainedModel model, IProgress<TuningProgress>? progress = null)
    {
        var selected = Select(model);
        var targets = new List<MpoTarget>();
        using var noGrad = no_grad();
        for (int i = 0; i < selected.Count; i++)
        {
            var (target, factorization) = selected[i];
            using (var scope = NewDisposeScope())
            {
                var (weight, bias) = DenseParts(target);
                var padding = TargetPatterns.PaddingIdx(model, target);
                MpoLayer layer;
                TruncationReport? report = null;
                using (var full = MpoDecomposer.Decompose(weight, factorization))
                {
                    var spec = Config.TruncationFor(target.Family);
                    MeasuredTruncation? cut = spec is null ? null : full.TruncateMeasured(spec);
                    try
                    {
                        var mpo = cut?.Mpo ?? full;
                        report = cut?.Report;
                        layer = target.Kind == DenseKind.Embedding
                            ? new MpoEmbedding(mpo, paddingIdx: padding)
                            : new MpoLinear(mpo, bias);
                    }
                    finally
                    {
                        cut?.Dispose();
                    }
                }
                if (Config.FreezeCentral) layer.FreezeCentral();
                var old = ModuleSurgery.Replace(model, target.Path, layer);
                old.Dispose();
                targets.Add(new MpoTarget(target.Path, target.Family, target.Kind, factorization, layer.Bonds, padding,
                                          Sha256(layer.Central), Fingerprint(layer.Central), report));
            }
            progress?.Report(new TuningProgress(i + 1, selected.Count, target.Path));
        }
        if (Config.Moe is null) return new TunedModel(model, Config, targets);
        var experts = ExpertUpcycling.Apply(model, Config, progress);
        model.TunerConfig = Config.ToJson();   // config.json of a saved checkpoint rebuilds the MoE layers from it
        return new TunedModel(model, Config, targets, experts);
    }

    /// <summary>Swaps in MPO layers of the shapes <see cref="Apply"/> would give, with zero cores on the model's
    /// device, reading no weight: for counting parameters from a configuration (on the meta device). Tolerance and
    /// budget truncations need the weights and are refused.</summary>
    public void ApplyShapes(PretrainedModel model)
    {
        foreach (var (target, factorization) in Select(model))
        {
            var spec = Config.TruncationFor(target.Family);
            var bonds = factorization.Consistent(spec is null ? factorization.FullBonds() : Truncation.PlanShape(factorization, spec));
            var (weight, bias) = DenseParts(target);
            MpoLayer layer = target.Kind == DenseKind.Embedding
                ? new MpoEmbedding(factorization, bonds, TargetPatterns.PaddingIdx(model, target), weight.dtype, weight.device)
                : new MpoLinear(factorization, bonds, bias is not null, weight.dtype, weight.device);
            if (Config.FreezeCentral) layer.FreezeCentral();
            ModuleSurgery.Replace(model, target.Path, layer).Dispose();
        }
        if (Config.Moe is not null)
        {
            ExpertUpcycling.ApplyShapes(model, Config);
            model.TunerConfig = Config.ToJson();
        }
    }

    /// <summary>
    /// Rebuilds the structure a checkpoint's <c>config.json</c> records under <see cref="PretrainedModel.TunerConfigKey"/>
    /// (a model with MoE layers, saved as a plain checkpoint folder): the layers are swapped in by shape, and the
    /// checkpoint's tensors are loaded into them afterwards (<see cref="PretrainedModel.Load"/>). Errors name the file and field.
    /// </summary>
    public static void Restructure(PretrainedModel model, System.Text.Json.Nodes.JsonObject tunerConfig, string source)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tunerConfig);
        var config = MpoTunerConfig.FromJson(tunerConfig, $"{source}: {PretrainedModel.TunerConfigKey}");
        new MpoTuner(config).ApplyShapes(model);
    }

    /// <summary>The matrix an MPO of the module holds ([out, in] for linear maps, Conv1D's transposed view) and its bias.</summary>
    static (Tensor Weight, Tensor? Bias) DenseParts(TargetModule target) => target.Module switch
    {
        Linear l => (l.weight!, l.bias),
        Conv1D c => (c.LinearWeight(), c.bias),
        Embedding e => (e.weight!, null),
        _ => throw new ArgumentException($"'{target.Path}' is a {target.Module.GetType().Name}; only Linear, Conv1D and Embedding modules can be decomposed", "target_modules"),
    };

    /// <summary>SHA-256 of a tensor's bytes (hex).</summary>
    internal static string Sha256(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        return Convert.ToHexString(SHA256.HashData(cpu.bytes)).ToLowerInvariant();
    }

    /// <summary>‖C‖_F and ⟨C, R_i⟩ for three standard normal R_i from fixed seeds: a fingerprint that round-off
    /// changes by ~1e-7·‖C‖ while another matrix changes it by ~‖C‖.</summary>
    internal static double[] Fingerprint(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var c = tensor.detach().to(ScalarType.Float64).cpu().reshape(-1);
        var values = new List<double> { c.norm().item<double>() };
        for (int seed = 1; seed <= 3; seed++)
        {
            using var g = new Generator((ulong)(20210603 + seed));
            values.Add(c.dot(randn(c.shape, dtype: ScalarType.Float64, generator: g)).item<double>());
        }
        return values.ToArray();
    }

    /// <summary>
    /// MPOP's optimizer groups for lightweight fine-tuning (spec §4.2, C1 <c>create_optimizer_and_scheduler</c>): the
    /// MPO cores that are trained (auxiliary tensors; central ones too when not frozen) in their own group with
    /// <paramref name="mpoLearningRate"/> (<c>--mpo_lr</c>) and no weight decay; every other trainable parameter in the
    /// trainer's default groups (its learning rate and weight decay, none on biases and norms). Frozen central tensors
    /// are in no group, so they get no optimizer state. Null <paramref name="mpoLearningRate"/> is MPOP's
    /// <c>--mpo_lr=-1</c>: the cores use the main learning rate (still without decay).
    /// </summary>
    public static IReadOnlyList<ParameterGroupRule> ParameterGroupRules(double? mpoLearningRate) =>
        new[] { new ParameterGroupRule("mpo", MpoLayer.IsCore, mpoLearningRate, 0.0) };
}
