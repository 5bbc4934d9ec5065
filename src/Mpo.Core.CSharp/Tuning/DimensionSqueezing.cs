using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;
using Mpo.Decomposition;
using Mpo.Layers;
using Mpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>How <see cref="DimensionSqueezing"/> proceeds (MPOP Algorithm 2, spec §4.4; defaults from the code's
/// <c>RankHander</c>: a window of 10 losses, a gap of 0.03).</summary>
public sealed record SqueezeOptions
{
    /// <summary>Δ: squeezing stops when the recovered loss exceeds the reference by more than this.</summary>
    public double LossGap { get; init; } = 0.03;
    /// <summary>Updates before the first cut; the reference loss p is measured at their end.</summary>
    public int WarmupSteps { get; init; } = 10;
    /// <summary>Lightweight fine-tuning updates after each cut before the loss p̃ is measured.</summary>
    public int RecoverySteps { get; init; } = 10;
    /// <summary>Training losses averaged into p and p̃ (when no evaluation function is given); at most the warmup and
    /// recovery lengths.</summary>
    public int LossWindow { get; init; } = 10;
    /// <summary>Stop once the model has at most this many parameters (all, as counted by <see cref="ParameterCounting"/>).</summary>
    public long? TargetParameters { get; init; }
    /// <summary>Stop after this many cuts.</summary>
    public int MaxCuts { get; init; } = int.MaxValue;
    /// <summary>Families whose central bonds may be cut (null: every decomposed module).</summary>
    public IReadOnlyList<string>? Families { get; init; }

    public void Validate()
    {
        static void Require(bool ok, string field, string problem)
        {
            if (!ok) throw new ArgumentException($"SqueezeOptions.{field} {problem}", field);
        }
        Require(double.IsFinite(LossGap) && LossGap >= 0, nameof(LossGap), $"must be finite and ≥ 0, got {LossGap}");
        Require(WarmupSteps >= 1, nameof(WarmupSteps), $"must be at least 1, got {WarmupSteps}");
        Require(RecoverySteps >= 1, nameof(RecoverySteps), $"must be at least 1, got {RecoverySteps}");
        Require(LossWindow >= 1 && LossWindow <= Math.Min(WarmupSteps, RecoverySteps), nameof(LossWindow),
                $"must lie in 1..min(WarmupSteps, RecoverySteps) = {Math.Min(WarmupSteps, RecoverySteps)}, got {LossWindow}");
        Require(TargetParameters is null or >= 1, nameof(TargetParameters), $"must be positive, got {TargetParameters}");
        Require(MaxCuts >= 1, nameof(MaxCuts), $"must be at least 1, got {MaxCuts}");
    }
}

/// <summary>One cut of the squeezing trajectory: after it, the loss it recovered to and the model's size.</summary>
/// <param name="EstimatedError">λ² of the dropped Schmidt value over Σλ² of its bond: the relative squared error
/// the cut adds to that matrix (MPOP's bound-based estimate).</param>
/// <param name="Loss">p̃ after recovery; NaN until measured.</param>
/// <param name="Kept">Whether the cut stayed (false: the loss gap exceeded Δ and it was undone).</param>
public sealed record SqueezeCut(int Cut, long Step, string Path, int Bond, int Dimension, double EstimatedError, long Parameters, double Loss, bool Kept);

/// <summary>Why squeezing ended.</summary>
public enum SqueezeOutcome
{
    Running,
    /// <summary>The model reached <see cref="SqueezeOptions.TargetParameters"/>.</summary>
    TargetReached,
    /// <summary>A cut's recovered loss exceeded the reference by more than Δ: it was undone.</summary>
    LossGap,
    /// <summary><see cref="SqueezeOptions.MaxCuts"/> cuts were made.</summary>
    MaxCuts,
    /// <summary>Every candidate bond is at 1.</summary>
    NoCandidate,
}

/// <summary>
/// MPOP's dimension squeezing (Algorithm 2, spec §4.4) as a trainer callback under lightweight fine-tuning: after a
/// warm-up that sets the reference loss p, repeatedly (1) estimate for every candidate central bond — the two bonds
/// of each central tensor — the error of cutting it by one unit from the layer's stored Schmidt values, (2) cut the
/// cheapest, re-gauging that layer (AdamW restarts its cores, §0) and refreshing the optimizer, (3) fine-tune the
/// auxiliary tensors for <see cref="SqueezeOptions.RecoverySteps"/> updates, (4) measure p̃; when p̃ − p &gt; Δ the
/// cut is undone (the last good state is restored from <c>last-good.safetensors</c> in the state folder) and training
/// stops, as it does when the target size or the cut limit is reached. The callback's state (phase, counters,
/// trajectory, every target's bonds and stored spectra) travels in the trainer's checkpoints, so a resumed run
/// restores the bonds and continues exactly.
/// </summary>
public sealed class DimensionSqueezing : TrainerCallback
{
    public const string GoodStateFile = "last-good.safetensors";

    enum Phase { Warmup, Recovering, Stopped }

    readonly TunedModel tuned;
    readonly SqueezeOptions options;
    readonly string stateFolder;
    readonly Func<double>? evaluateLoss;
    readonly List<double> window = new();
    readonly List<SqueezeCut> trajectory = new();
    Phase phase = Phase.Warmup;
    int sinceCut;
    double reference = double.NaN;

    /// <param name="tuned">The model being fine-tuned (central tensors frozen: LFA).</param>
    /// <param name="stateFolder">Where the last good state is kept (the run folder's <c>squeeze/</c>, say).</param>
    /// <param name="evaluateLoss">p and p̃ from held-out data (called under <c>no_grad</c>, eval mode); default the
    /// mean of the last <see cref="SqueezeOptions.LossWindow"/> training losses (the code's rule).</param>
    public DimensionSqueezing(TunedModel tuned, SqueezeOptions options, string stateFolder, Func<double>? evaluateLoss = null)
    {
        this.tuned = tuned ?? throw new ArgumentNullException(nameof(tuned));
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        this.stateFolder = stateFolder ?? throw new ArgumentNullException(nameof(stateFolder));
        this.evaluateLoss = evaluateLoss;
        if (Candidates().Count == 0)
            throw new ArgumentException($"SqueezeOptions.Families: no decomposed module of {string.Join(", ", options.Families ?? Array.Empty<string>())} to squeeze", nameof(options));
        if (options.TargetParameters is { } target && target < Floor())
            throw new ArgumentException(
                $"SqueezeOptions.TargetParameters {target:N0} is below what squeezing can reach: with every central bond at 1 the model still has {Floor():N0} parameters",
                nameof(options));
    }

    public IReadOnlyList<SqueezeCut> Trajectory => trajectory;
    public SqueezeOutcome Outcome { get; private set; } = SqueezeOutcome.Running;
    /// <summary>The reference loss p (NaN during the warm-up).</summary>
    public double ReferenceLoss => reference;

    IReadOnlyList<MpoTarget> Candidates() =>
        tuned.Targets.Where(t => options.Families is null || options.Families.Contains(t.Family)).ToList();

    static IEnumerable<int> CentralBonds(MpoFactorization f) =>
        new[] { f.CentralIndex, f.CentralIndex + 1 }.Where(b => b >= 1 && b < f.CoreCount);

    /// <summary>The model's size with every candidate's central bonds at 1 (what squeezing cannot go below).</summary>
    long Floor()
    {
        long now = ParameterCounting.Count(tuned.Model).Total;
        foreach (var t in Candidates())
        {
            var layer = tuned.Layer(t);
            var bonds = layer.Bonds.ToArray();
            foreach (var b in CentralBonds(t.Factorization)) bonds[b] = 1;
            now -= layer.Factorization.ParameterCount(layer.Bonds) - layer.Factorization.ParameterCount(layer.Factorization.Consistent(bonds));
        }
        return now;
    }

    /// <summary>
    /// The cut squeezing makes next: the candidate central bond whose smallest kept Schmidt value carries the least
    /// weight relative to its bond's total, λ²_{d−1} / Σλ² — the relative squared error the cut adds (MPOP Eq. 4 with
    /// one ε changed). Null when every candidate bond is at 1.
    /// </summary>
    public static (MpoTarget Target, int Bond, double Estimate)? Cheapest(TunedModel tuned, IEnumerable<MpoTarget> candidates) =>
        Cheapest(tuned, candidates, t => tuned.Layer(t).Bonds);

    static (MpoTarget Target, int Bond, double Estimate)? Cheapest(TunedModel tuned, IEnumerable<MpoTarget> candidates, Func<MpoTarget, IReadOnlyList<int>> bondsOf)
    {
        (MpoTarget, int, double)? best = null;
        foreach (var target in candidates)
        {
            var layer = tuned.Layer(target);
            var bonds = bondsOf(target);
            var spectra = layer.Spectra;
            foreach (var b in CentralBonds(target.Factorization))
            {
                int d = bonds[b];
                if (d < 2) continue;
                var lambda = spectra[b - 1];
                double total = lambda.Sum(l => l * l);
                double estimate = total > 0 ? lambda[d - 1] * lambda[d - 1] / total : 0;
                if (best is null || estimate < best.Value.Item3) best = (target, b, estimate);
            }
        }
        return best;
    }

    /// <summary>
    /// The bonds MPOP_dir truncates to for a model of at most <paramref name="targetParameters"/> parameters: the cuts
    /// squeezing would make, cheapest first by the same estimate (<see cref="Cheapest(TunedModel, IEnumerable{MpoTarget})"/>), planned on the stored
    /// Schmidt values with no fine-tuning in between (spectra do not move), as path → d_0..d_n of every candidate.
    /// </summary>
    /// <exception cref="ArgumentException">The target is below what cutting every candidate central bond to 1 reaches.</exception>
    public static IReadOnlyDictionary<string, int[]> PlanDirect(TunedModel tuned, long targetParameters, IReadOnlyList<string>? families = null)
    {
        ArgumentNullException.ThrowIfNull(tuned);
        var candidates = tuned.Targets.Where(t => families is null || families.Contains(t.Family)).ToList();
        if (candidates.Count == 0)
            throw new ArgumentException($"families: no decomposed module of {string.Join(", ", families ?? Array.Empty<string>())} to truncate", nameof(families));
        var bonds = candidates.ToDictionary(t => t.Path, t => tuned.Layer(t).Bonds.ToArray());
        long ParametersOf(MpoTarget t, int[] b) => t.Factorization.ParameterCount(t.Factorization.Consistent(b));
        long total = ParameterCounting.Count(tuned.Model).Total;
        long floor = total;
        foreach (var t in candidates)
        {
            var b = bonds[t.Path].ToArray();
            foreach (var k in CentralBonds(t.Factorization)) b[k] = 1;
            floor -= ParametersOf(t, bonds[t.Path]) - ParametersOf(t, b);
        }
        if (targetParameters < floor)
            throw new ArgumentException(
                $"target_parameters {targetParameters:N0} is below what truncation can reach: with every central bond at 1 the model still has {floor:N0} parameters",
                nameof(targetParameters));
        while (total > targetParameters && Cheapest(tuned, candidates, t => bonds[t.Path]) is { } choice)
        {
            var b = bonds[choice.Target.Path];
            var before = ParametersOf(choice.Target, b);
            b[choice.Bond]--;
            var consistent = choice.Target.Factorization.Consistent(b);
            Array.Copy(consistent, b, b.Length);
            total -= before - ParametersOf(choice.Target, b);
        }
        return bonds;
    }

    /// <summary>MPOP_dir (spec §4.2, the ablation): every target cut straight to <paramref name="bonds"/> (path →
    /// d_0..d_n, e.g. the bonds a squeezing run ended with), before fine-tuning, instead of one unit at a time.</summary>
    public static void Direct(TunedModel tuned, IReadOnlyDictionary<string, int[]> bonds)
    {
        foreach (var (path, wanted) in bonds)
        {
            var target = tuned.Targets.FirstOrDefault(t => t.Path == path)
                ?? throw new ArgumentException($"'{path}' is not a decomposed module of this model", nameof(bonds));
            var layer = tuned.Layer(target);
            target.Factorization.CheckBonds(wanted, nameof(bonds));
            if (wanted.Zip(layer.Bonds).Any(p => p.First > p.Second))
                throw new ArgumentException($"'{path}': bonds [{string.Join(",", wanted)}] exceed its current [{string.Join(",", layer.Bonds)}]", nameof(bonds));
            layer.Squeeze(new TruncationSpec.PerBond(wanted[1..^1]));
        }
    }

    public override void OnAfterBackward(TrainingStepContext context)
    {
        // A run resumed after squeezing ended: no more updates (the model is the last good state).
        if (phase != Phase.Stopped) return;
        foreach (var (name, _) in context.TrainableParameters) context.SkipUpdate(name);
        context.RequestStop();
    }

    public override void OnStepEnd(TrainingStepContext context)
    {
        if (phase == Phase.Stopped) return;
        window.Add(context.Loss);
        if (window.Count > options.LossWindow) window.RemoveAt(0);
        if (phase == Phase.Warmup)
        {
            if (context.Step < options.WarmupSteps) return;
            reference = Measure(context);
            SaveGoodState(context);
            if (options.TargetParameters is { } small && ParameterCounting.Count(tuned.Model).Total <= small) Stop(context, SqueezeOutcome.TargetReached);
            else Cut(context);
            return;
        }
        if (++sinceCut < options.RecoverySteps) return;
        var recovered = Measure(context);
        var last = trajectory[^1];
        if (!double.IsFinite(recovered) || recovered - reference > options.LossGap)
        {
            trajectory[^1] = last with { Loss = recovered, Kept = false };
            RestoreGoodState(context);
            Stop(context, SqueezeOutcome.LossGap);
            return;
        }
        trajectory[^1] = last with { Loss = recovered };
        SaveGoodState(context);
        if (options.TargetParameters is { } target && last.Parameters <= target) Stop(context, SqueezeOutcome.TargetReached);
        else if (trajectory.Count >= options.MaxCuts) Stop(context, SqueezeOutcome.MaxCuts);
        else Cut(context);
    }

    double Measure(TrainingStepContext context)
    {
        if (evaluateLoss is null) return window.Average();
        var model = context.Model;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return RandomState.Fork(evaluateLoss);
        }
        finally
        {
            model.train();
        }
    }

    void Cut(TrainingStepContext context)
    {
        if (Cheapest(tuned, Candidates()) is not { } choice)
        {
            Stop(context, SqueezeOutcome.NoCandidate);
            return;
        }
        var layer = tuned.Layer(choice.Target);
        var bonds = layer.Bonds.ToArray();
        bonds[choice.Bond]--;
        layer.Squeeze(new TruncationSpec.PerBond(bonds[1..^1]));
        context.RefreshParameters();
        trajectory.Add(new SqueezeCut(trajectory.Count + 1, context.Step, choice.Target.Path, choice.Bond, bonds[choice.Bond], choice.Estimate,
                                      ParameterCounting.Count(tuned.Model).Total, double.NaN, true));
        sinceCut = 0;
        window.Clear();
        phase = Phase.Recovering;
    }

    void Stop(TrainingStepContext context, SqueezeOutcome outcome)
    {
        Outcome = outcome;
        phase = Phase.Stopped;
        context.RequestStop();
    }

    string GoodStatePath => Path.Combine(stateFolder, GoodStateFile);

    /// <summary>Every parameter as it is now (the state a harmful cut returns to), written atomically.</summary>
    void SaveGoodState(TrainingStepContext context)
    {
        Directory.CreateDirectory(stateFolder);
        SafeTensors.Save(GoodStatePath, context.Model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)),
                         new Dictionary<string, string> { ["format"] = "mpo-squeeze/1", ["spectra"] = SpectraJson().ToJsonString() });
    }

    void RestoreGoodState(TrainingStepContext context)
    {
        using var file = SafeTensorsFile.Open(GoodStatePath);
        var spectra = JsonNode.Parse(file.Metadata["spectra"])!.AsObject();
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
        {
            foreach (var target in tuned.Targets)
            {
                var layer = tuned.Layer(target);
                var cores = Enumerable.Range(0, target.Factorization.CoreCount).Select(k => file.Load($"{target.Path}.{layer.CoreName(k)}")).ToArray();
                if (!cores.Select(c => (int)c.shape[3]).SequenceEqual(layer.Bonds.Skip(1)))
                    layer.LoadCores(cores, ReadSpectra(spectra[target.Path]));
            }
            var parameters = context.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var info in file.Tensors) parameters[info.Name].copy_(file.Load(info.Name, parameters[info.Name].device));
        }
        context.RefreshParameters();
    }

    JsonObject SpectraJson()
    {
        var json = new JsonObject();
        foreach (var t in tuned.Targets)
            json[t.Path] = new JsonArray(tuned.Layer(t).Spectra.Select(s => (JsonNode)new JsonArray(s.Select(v => (JsonNode)v).ToArray())).ToArray());
        return json;
    }

    static double[][] ReadSpectra(JsonNode? node) =>
        (node as JsonArray ?? throw new FormatException("spectra missing")).Select(b => b!.AsArray().Select(v => v!.GetValue<double>()).ToArray()).ToArray();

    public override JsonNode? SaveState() => new JsonObject
    {
        ["phase"] = phase.ToString(),
        ["outcome"] = Outcome.ToString(),
        ["reference"] = double.IsNaN(reference) ? null : reference,
        ["since_cut"] = sinceCut,
        ["window"] = new JsonArray(window.Select(l => (JsonNode)l).ToArray()),
        ["bonds"] = new JsonObject(tuned.Targets.Select(t => KeyValuePair.Create(t.Path, (JsonNode?)new JsonArray(tuned.Layer(t).Bonds.Select(b => (JsonNode)b).ToArray())))),
        ["spectra"] = SpectraJson(),
        ["trajectory"] = new JsonArray(trajectory.Select(c => (JsonNode)new JsonObject
        {
            ["cut"] = c.Cut, ["step"] = c.Step, ["path"] = c.Path, ["bond"] = c.Bond, ["dimension"] = c.Dimension,
            ["estimated_error"] = c.EstimatedError, ["parameters"] = c.Parameters,
            ["loss"] = double.IsNaN(c.Loss) ? null : c.Loss, ["kept"] = c.Kept,
        }).ToArray()),
    };

    /// <summary>Restores phase, counters and trajectory, and gives every target the bonds (and stored spectra) it had
    /// at the checkpoint, so the checkpoint's tensors fit and the next cut is the one the uninterrupted run made.</summary>
    public override void LoadState(JsonNode state)
    {
        var o = state.AsObject();
        phase = Enum.Parse<Phase>(o["phase"]!.GetValue<string>());
        Outcome = Enum.Parse<SqueezeOutcome>(o["outcome"]!.GetValue<string>());
        reference = o["reference"] is JsonValue r ? r.GetValue<double>() : double.NaN;
        sinceCut = o["since_cut"]!.GetValue<int>();
        window.Clear();
        window.AddRange(o["window"]!.AsArray().Select(v => v!.GetValue<double>()));
        trajectory.Clear();
        trajectory.AddRange(o["trajectory"]!.AsArray().Select(c => new SqueezeCut(
            c!["cut"]!.GetValue<int>(), c["step"]!.GetValue<long>(), c["path"]!.GetValue<string>(), c["bond"]!.GetValue<int>(),
            c["dimension"]!.GetValue<int>(), c["estimated_error"]!.GetValue<double>(), c["parameters"]!.GetValue<long>(),
            c["loss"] is JsonValue l ? l.GetValue<double>() : double.NaN, c["kept"]!.GetValue<bool>())));
        var bonds = o["bonds"]!.AsObject();
        var spectra = o["spectra"]!.AsObject();
        using var scope = NewDisposeScope();
        foreach (var target in tuned.Targets)
        {
            var layer = tuned.Layer(target);
            var saved = bonds[target.Path]?.AsArray().Select(b => b!.GetValue<int>()).ToArray()
                        ?? throw new FormatException($"no bonds saved for '{target.Path}'");
            var shapes = Enumerable.Range(0, target.Factorization.CoreCount)
                .Select(k => zeros(target.Factorization.CoreShape(k, saved), layer.Central.dtype, layer.Central.device)).ToArray();
            layer.LoadCores(shapes, ReadSpectra(spectra[target.Path]));   // values come from the checkpoint next
        }
    }
}
