using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using Mpo.Experts;
using Mpo.Layers;
using Mpo.Models;
using Mpo.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>One FFN block a tuner made an MoE layer: where, which method, how many experts.</summary>
public sealed record ExpertTarget(string Path, MoeKind Kind, int Experts);

/// <summary>
/// The <c>"moe"</c> section of a tuner configuration applied to a model (MPOE §3, spec §5.1): every selected
/// feed-forward block (<see cref="FeedForward.Blocks"/>: T5's encoder and decoder <c>DenseReluDense</c>, GPT-2's
/// <c>mlp</c>, the BERT family's <c>feed_forward</c>, the imported encoders included) is replaced by an MoE layer
/// upcycled from it. MPO experts take the configuration's factors and truncation of <c>ffn_in</c> / <c>ffn_out</c>
/// (the chooser with its <c>cores</c> otherwise); an FFN matrix the MPO part already decomposed gives its cores as they are.
/// With <see cref="MoeTunerConfig.ShareCentral"/> false every expert owns a copy of the central tensor (MPOE Table 3's
/// "w/o PS").
/// </summary>
public static class ExpertUpcycling
{
    /// <summary>The blocks the section selects, with their paths; errors name a prefix that selects nothing.</summary>
    public static IReadOnlyList<(string Path, IFeedForward Block)> Select(PretrainedModel model, MoeTunerConfig moe)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(moe);
        var all = FeedForward.Blocks(model);
        if (all.Count == 0)
            throw new ArgumentException($"{model.Architecture} has no feed-forward block to replace by experts (already an MoE model?)", "moe");
        if (moe.Blocks is { } prefixes)
            foreach (var p in prefixes)
                if (!all.Any(b => b.Path == p || b.Path.StartsWith(p + ".", StringComparison.Ordinal)))
                    throw new ArgumentException(
                        $"moe.blocks: '{p}' selects no feed-forward block of {model.Architecture}; its blocks are {string.Join(", ", all.Take(3).Select(b => b.Path))}{(all.Count > 3 ? ", …" : "")}",
                        "moe.blocks");
        return all.Where(b => moe.Selects(b.Path)).ToList();
    }

    /// <summary>MPO factors of an FFN matrix for experts: the configuration's for <paramref name="family"/> when given
    /// (the first that fits), else the chooser's with the configuration's cores; null when the matrix is already an MPO.</summary>
    static MpoFactorization? FactorizationOf(MpoTunerConfig config, string family, nn.Module<Tensor, Tensor> matrix, string path)
    {
        (int Rows, int Cols) shape = matrix switch
        {
            MpoLinear => (0, 0),
            Linear l => ((int)l.weight!.shape[0], (int)l.weight!.shape[1]),
            Conv1D c => ((int)c.OutFeatures, (int)c.InFeatures),
            _ => throw new ArgumentException($"'{path}' is a {matrix.GetType().Name}; MPO experts are built from Linear, Conv1D or MpoLinear matrices", "moe"),
        };
        if (matrix is MpoLinear) return null;
        return MpoTuner.FactorizationFor(config, family, shape.Rows, shape.Cols, path);
    }

    /// <summary>Replaces the selected blocks of <paramref name="model"/> by upcycled MoE layers (in place).</summary>
    public static IReadOnlyList<ExpertTarget> Apply(PretrainedModel model, MpoTunerConfig config, IProgress<TuningProgress>? progress = null)
    {
        using var noGrad = no_grad();
        return Replace(model, config, shapesOnly: false, progress);
    }

    /// <summary>Swaps in MoE layers of the shapes <see cref="Apply"/> would give, reading no weight (zero MPO cores on
    /// the model's device; on the meta device nothing is allocated).</summary>
    public static IReadOnlyList<ExpertTarget> ApplyShapes(PretrainedModel model, MpoTunerConfig config) =>
        Replace(model, config, shapesOnly: true, null);

    static IReadOnlyList<ExpertTarget> Replace(PretrainedModel model, MpoTunerConfig config, bool shapesOnly, IProgress<TuningProgress>? progress)
    {
        var moe = config.Moe ?? throw new ArgumentException("the tuner configuration has no moe section", nameof(config));
        var blocks = Select(model, moe);
        var targets = new List<ExpertTarget>();
        for (int i = 0; i < blocks.Count; i++)
        {
            var (path, block) = blocks[i];
            var layer = Build(block, path, config, moe, shapesOnly);
            Finish(layer, moe);
            ModuleSurgery.Replace(model, path, layer).Dispose();
            targets.Add(new ExpertTarget(path, moe.Kind, moe.Options.Experts));
            progress?.Report(new TuningProgress(i + 1, blocks.Count, path));
        }
        return targets;
    }

    /// <summary>The MoE layer of one block: upcycled from its weights, or of its shapes only.</summary>
    static MoeFeedForward Build(IFeedForward block, string path, MpoTunerConfig config, MoeTunerConfig moe, bool shapesOnly)
    {
        using var scope = NewDisposeScope();
        if (moe.ExpertKind == ExpertKind.Dense)
            return shapesOnly ? MoeFeedForward.Shapes(block, moe.Options, ExpertKind.Dense) : MoeFeedForward.Upcycle(block, moe.Options, ExpertKind.Dense);
        var fin = FactorizationOf(config, MpoFamilies.FfnIn, block.Input, path + "." + block.InputName);
        var fout = FactorizationOf(config, MpoFamilies.FfnOut, block.Output, path + "." + block.OutputName);
        var tin = fin is null ? null : config.TruncationFor(MpoFamilies.FfnIn);
        var tout = fout is null ? null : config.TruncationFor(MpoFamilies.FfnOut);
        return shapesOnly
            ? MoeFeedForward.Shapes(block, moe.Options, ExpertKind.Mpo, fin, fin is null ? null : BondsOf(fin, tin), fout, fout is null ? null : BondsOf(fout, tout), moe.ShareCentral)
            : MoeFeedForward.Upcycle(block, moe.Options, ExpertKind.Mpo, fin, fout, tin, tout, moe.ShareCentral);
    }

    static int[] BondsOf(MpoFactorization f, TruncationSpec? spec) =>
        f.Consistent(spec is null ? f.FullBonds() : Truncation.PlanShape(f, spec));

    /// <summary>p_b = 1 at every update is freezing (MPOE's <c>--tensor_learn</c>): the shared central tensors are
    /// frozen outright, so counts and optimizer groups say so, instead of a mask that skips every update.</summary>
    static void Finish(MoeFeedForward layer, MoeTunerConfig moe)
    {
        if (moe.GradientMask is { Freezes: true })
            foreach (var m in new[] { layer.Input, layer.Output })
                if (m is MpoExpertMatrices mpo) mpo.FreezeCentral();
    }
}
