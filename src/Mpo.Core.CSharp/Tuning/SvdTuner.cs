using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Decomposition;
using Mpo.Models;

namespace Mpo.Tuning;

/// <summary>
/// Truncated-SVD low-rank layers, the classical baseline at matched parameters (MPOP Table 2's "MPO (n = 2)" row):
/// each target matrix W [rows, cols] becomes W ≈ (U_r √S_r)(√S_r V_rᵀ), a row factor [rows, r] and a column factor
/// [r, cols], both trained. The rank is given, or the largest whose r·(rows + cols) fits a per-matrix parameter budget
/// (<see cref="FormatBudget.SvdRank"/>, the rule every matched-parameter comparison uses). Targets are families, as
/// for the MPO tuner and LoRA; null: every family the model has.
/// </summary>
public sealed record SvdTunerConfig
{
    public const string PeftType = "SVD";

    public IReadOnlyList<string>? TargetModules { get; init; }
    /// <summary>The rank r of every target (capped at min(rows, cols)); exclusive with <see cref="Budget"/>.</summary>
    public int? Rank { get; init; }
    /// <summary>Parameters per matrix; the rank is the largest with r·(rows + cols) ≤ budget.</summary>
    public long? Budget { get; init; }

    static readonly string[] Fields = { "peft_type", "target_modules", "rank", "budget" };

    public void Validate(string source)
    {
        void Require(bool ok, string field, string problem)
        {
            if (!ok) throw new InvalidTunerConfigException(source, field, problem);
        }
        Require(Rank.HasValue != Budget.HasValue, Rank.HasValue ? "budget" : "rank", "give exactly one of rank and budget");
        if (Rank is { } r) Require(r >= 1, "rank", $"must be at least 1, got {r}");
        if (Budget is { } b) Require(b >= 2, "budget", $"must be positive (at least rows + cols of every target), got {b}");
        TunerJson.CheckTargets(source, TargetModules, "every family the model has");
    }

    public JsonObject ToJson() => new()
    {
        ["peft_type"] = PeftType,
        ["target_modules"] = TargetModules is null ? null : new JsonArray(TargetModules.Select(t => (JsonNode)t).ToArray()),
        ["rank"] = Rank,
        ["budget"] = Budget,
    };

    public static SvdTunerConfig FromJson(JsonObject json, string source)
    {
        var read = new TunerJson(json, source, Fields);
        if (read.Has("peft_type") && read.String("peft_type") != PeftType)
            throw new InvalidTunerConfigException(source, "peft_type", $"'{read.String("peft_type")}' is not an SVD configuration (expected \"{PeftType}\")");
        var c = new SvdTunerConfig();
        if (read.Has("target_modules")) c = c with { TargetModules = read.Strings("target_modules") };
        if (read.Has("rank") && !read.IsNull("rank")) c = c with { Rank = read.Int("rank") };
        if (read.Has("budget") && !read.IsNull("budget")) c = c with { Budget = read.Long("budget") };
        c.Validate(source);
        return c;
    }

    public bool Equals(SvdTunerConfig? other) =>
        other is not null && Rank == other.Rank && Budget == other.Budget && LoraConfig.SameList(TargetModules, other.TargetModules);

    public override int GetHashCode() => HashCode.Combine(Rank, Budget, TargetModules?.Count);
}

/// <summary>
/// Applies <see cref="SvdTunerConfig"/> as what a truncated SVD is: a two-core MPO with factors [rows, 1] × [1, cols]
/// (<see cref="FormatBudget.SvdFactorization"/>), whose symmetric canonical gauge puts √S on both sides of the one bond,
/// so the cores are exactly U_r √S_r and √S_r V_rᵀ. Truncating that bond to r keeps the r largest singular values;
/// by Eckart–Young the error √(Σ_{i&gt;r} σ_i²) is the least any rank-r matrix has, and it is also the MPO's bound,
/// which the tuner's reports carry. Decomposition, swapping, merging, adapters and counting are the MPO tuner's.
/// </summary>
public sealed class SvdTuner : IStructuralTuner
{
    public SvdTuner(SvdTunerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("SVD configuration");
        Config = config;
    }

    public SvdTunerConfig Config { get; }

    /// <summary>The rank a [rows, cols] target gets; throws naming the module when a budget allows no rank.</summary>
    public int RankOf(int rows, int cols, string path)
    {
        int rank = Config.Rank is { } r ? Math.Min(r, Math.Min(rows, cols)) : FormatBudget.SvdRank(rows, cols, Config.Budget!.Value);
        if (rank < 1)
            throw new ArgumentException($"budget: {Config.Budget} parameters allow no rank for '{path}' [{rows} x {cols}] (rank 1 needs {rows + cols})", "budget");
        return rank;
    }

    /// <summary>The MPO tuner configuration this SVD is: two cores per target family, factors [rows, 1] × [1, cols],
    /// the bond capped at the rank, no central tensor frozen (both factors train).</summary>
    public MpoTunerConfig MpoConfig(PretrainedModel model)
    {
        var targets = TargetPatterns.Match(model, Config.TargetModules?.ToArray());
        var factorizations = new Dictionary<string, IReadOnlyList<FactorizationShape>>();
        var truncation = new Dictionary<string, TruncationSpec>();
        foreach (var family in targets.GroupBy(t => t.Family))
        {
            var shapes = family.Select(t => t.MatrixShape).Distinct().ToList();
            var ranks = family.Select(t => RankOf(t.MatrixShape.Rows, t.MatrixShape.Cols, t.Path)).Distinct().ToList();
            if (ranks.Count > 1)
                throw new ArgumentException(
                    $"budget: family '{family.Key}' has matrices of shapes {string.Join(", ", shapes)} that get different ranks {string.Join(", ", ranks)}; give a rank", "budget");
            factorizations[family.Key] = shapes.Select(s => new FactorizationShape(new[] { s.Rows, 1 }, new[] { 1, s.Cols })).ToArray();
            truncation[family.Key] = new TruncationSpec.MaxBond(ranks[0]);
        }
        return new MpoTunerConfig
        {
            Cores = 2,
            TargetModules = targets.Select(t => t.Family).Distinct().ToArray(),
            Factorizations = factorizations,
            Truncation = truncation,
            FreezeCentral = false,
        };
    }

    /// <summary>Replaces every target of <paramref name="model"/> by its rank-r factors (in place).</summary>
    public TunedModel Apply(PretrainedModel model, IProgress<TuningProgress>? progress = null) =>
        new MpoTuner(MpoConfig(model)).Apply(model, progress);

    void IStructuralTuner.ApplyShapes(PretrainedModel model) => new MpoTuner(MpoConfig(model)).ApplyShapes(model);
}
