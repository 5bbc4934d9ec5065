using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) with PyTorch's update, operation
/// for operation (<c>torch.optim.AdamW</c>, single-tensor path): for each parameter with a gradient,
/// <c>t += 1; p *= 1 − lr·λ; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; p −= (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)</c>.
/// <para>Written here rather than using TorchSharp's <c>optim.AdamW</c> because a trainer that resumes exactly and
/// survives model surgery needs state that TorchSharp's does not give: its state is keyed by native tensor handle and
/// saved as a positional binary stream without names, so a checkpoint cannot be checked parameter by parameter or
/// survive a parameter being replaced; it allocates state for frozen parameters; and it cannot reset one parameter's
/// state. Here the state of each parameter is three plain tensors keyed by the parameter's dotted name (saved to
/// safetensors), created at its first update, droppable by name (<see cref="ResetState"/>), re-bound to replaced
/// parameters (<see cref="Rebind"/>), and started afresh by itself for a parameter whose values were replaced in place
/// (<see cref="ParameterReplacement"/>: an MPO truncation re-gauges every core, changed shape or not).</para>
/// </summary>
public sealed class AdamW : IDisposable
{
    /// <summary>The per-parameter state PyTorch keeps (<c>exp_avg</c>, <c>exp_avg_sq</c>, <c>step</c>).</summary>
    public sealed class ParameterState : IDisposable
    {
        internal ParameterState(Tensor expAvg, Tensor expAvgSq, long step, long generation)
        {
            ExpAvg = expAvg;
            ExpAvgSq = expAvgSq;
            Step = step;
            Generation = generation;
        }

        /// <summary>The parameter's <see cref="ParameterReplacement.Generation"/> when this state was made: state of
        /// values that were since replaced (a truncated MPO core) is stale.</summary>
        internal long Generation { get; }

        /// <summary>First-moment running average m.</summary>
        public Tensor ExpAvg { get; }
        /// <summary>Second-moment running average v.</summary>
        public Tensor ExpAvgSq { get; }
        /// <summary>Number of updates this parameter has received (its own t; a skipped update does not count).</summary>
        public long Step { get; internal set; }

        public void Dispose()
        {
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
        }
    }

    const string Format = "mpo-adamw/1";
    readonly Dictionary<string, ParameterState> state = new(StringComparer.Ordinal);
    IReadOnlyList<ParameterGroup> groups;
    Dictionary<string, (ParameterGroup Group, Parameter Parameter)> byName;

    /// <summary>Creates the optimizer; state is created lazily at each parameter's first update, as in PyTorch.</summary>
    /// <param name="groups">Parameter groups (see <see cref="ParameterGroups.Build"/>); names must be unique and every
    /// parameter must require gradients.</param>
    /// <param name="beta1">β₁, decay of the first moment (PyTorch/HF default 0.9).</param>
    /// <param name="beta2">β₂, decay of the second moment (default 0.999).</param>
    /// <param name="epsilon">ε added to the denominator (default 1e-8).</param>
    public AdamW(IEnumerable<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1).");
        if (!(epsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be non-negative.");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        (this.groups, byName) = Index(groups);
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }

    /// <summary>The parameter groups, in the order given.</summary>
    public IReadOnlyList<ParameterGroup> Groups => groups;

    /// <summary>State of every parameter updated at least once since its state was created or reset, by name.</summary>
    public IReadOnlyDictionary<string, ParameterState> State => state;

    /// <summary>
    /// One update of every parameter that has a gradient, with learning rate <c>group.LearningRate · lrFactor</c>.
    /// A parameter whose gradient is undefined (not reached by the loss, as an unrouted expert) or that is named in
    /// <paramref name="skip"/> is left untouched: no decay, no moment update, no step count, exactly as PyTorch treats a
    /// <c>None</c> gradient. <paramref name="skip"/> is the seam for MPOE's gradient mask in "discard the update" form
    /// (spec §5.3: with AdamW, zeroing a gradient would still move the parameter).
    /// </summary>
    /// <param name="lrFactor">The schedule's multiplier (<see cref="LearningRateSchedule.Factor"/>).</param>
    /// <param name="skip">Parameter names to leave out of this update.</param>
    /// <exception cref="InvalidOperationException">A parameter's shape no longer matches its state although nothing
    /// marked it replaced (<see cref="ParameterReplacement.MarkReplaced"/>), <see cref="ResetState"/> or
    /// <see cref="Rebind"/> was called.</exception>
    public void Step(double lrFactor = 1.0, IReadOnlySet<string>? skip = null)
    {
        using var noGrad = no_grad();
        foreach (var group in groups)
        {
            var lr = group.LearningRate * lrFactor;
            foreach (var (name, parameter) in group.Parameters)
            {
                if (skip is not null && skip.Contains(name)) continue;
                using var scope = NewDisposeScope();
                var grad = parameter.grad;
                if (grad is null) continue;
                Update(name, parameter, grad, lr, group.WeightDecay);
            }
        }
    }

    void Update(string name, Parameter parameter, Tensor grad, double lr, double weightDecay)
    {
        var generation = ParameterReplacement.Generation(parameter);
        if (state.TryGetValue(name, out var stale) && stale.Generation != generation)
        {
            // The values were replaced in place since this state was made (an MPO truncation re-gauged the core):
            // the moments describe other coordinates, so the parameter starts again as at its first update.
            state.Remove(name);
            stale.Dispose();
        }
        if (!state.TryGetValue(name, out var s))
        {
            s = new ParameterState(zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope(), 0, generation);
            state.Add(name, s);
        }
        else if (!s.ExpAvg.shape.SequenceEqual(parameter.shape))
            throw new InvalidOperationException(
                $"Parameter '{name}' has shape [{string.Join(",", parameter.shape)}] but its AdamW state was made for [{string.Join(",", s.ExpAvg.shape)}]; " +
                "call ResetState (storage changed in place) or Rebind (parameter replaced) after truncating it.");
        s.Step += 1;
        // Same operations in the same order as torch.optim.adamw._single_tensor_adamw, so results match PyTorch's.
        parameter.mul_(1 - lr * weightDecay);
        s.ExpAvg.mul_(Beta1).add_(grad, alpha: 1 - Beta1);
        s.ExpAvgSq.mul_(Beta2).addcmul_(grad, grad, value: 1 - Beta2);
        var biasCorrection1 = 1 - Math.Pow(Beta1, s.Step);
        var biasCorrection2 = 1 - Math.Pow(Beta2, s.Step);
        var stepSize = lr / biasCorrection1;
        var denominator = (s.ExpAvgSq.sqrt() / Math.Sqrt(biasCorrection2)).add_(Epsilon);
        parameter.addcdiv_(s.ExpAvg, denominator, value: -stepSize);
    }

    /// <summary>Drops every parameter's gradient (PyTorch's <c>zero_grad(set_to_none=True)</c>), so a parameter the
    /// next loss does not reach is skipped rather than decayed with a zero gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var group in groups)
            foreach (var (_, parameter) in group.Parameters)
                parameter.grad = null;
    }

    /// <summary>Forgets the moments and step count of <paramref name="names"/>; their next update starts as the first.
    /// For parameters whose storage changed in place (dimension squeezing truncates bonds between phases).</summary>
    public void ResetState(IEnumerable<string> names)
    {
        foreach (var name in names)
        {
            if (!byName.ContainsKey(name))
                throw new ArgumentException($"'{name}' is not a parameter of this optimizer.", nameof(names));
            if (state.Remove(name, out var s)) s.Dispose();
        }
    }

    /// <summary>
    /// Replaces the groups (after model surgery or a change of <c>requires_grad</c>). State is kept for a name that is
    /// still present, is the same parameter object with the same shape and values not replaced since
    /// (<see cref="ParameterReplacement"/>); it is dropped otherwise, and for names that are gone.
    /// </summary>
    /// <returns>Names whose state was dropped.</returns>
    public IReadOnlyList<string> Rebind(IEnumerable<ParameterGroup> newGroups)
    {
        var (g, index) = Index(newGroups);
        var dropped = new List<string>();
        foreach (var (name, s) in state.ToList())
        {
            var keep = index.TryGetValue(name, out var now)
                       && byName.TryGetValue(name, out var before)
                       && ReferenceEquals(now.Parameter, before.Parameter)
                       && now.Parameter.shape.SequenceEqual(s.ExpAvg.shape)
                       && ParameterReplacement.Generation(now.Parameter) == s.Generation;
            if (keep) continue;
            state.Remove(name);
            s.Dispose();
            dropped.Add(name);
        }
        groups = g;
        byName = index;
        return dropped;
    }

    /// <summary>
    /// Writes the state to a safetensors file: <c>{name}.exp_avg</c>, <c>{name}.exp_avg_sq</c> (the parameter's dtype)
    /// and <c>{name}.step</c> (I64 scalar) per parameter with state; the groups, betas and ε in the metadata.
    /// </summary>
    public void Save(string path)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using var scope = NewDisposeScope();
        foreach (var (name, s) in state)
        {
            tensors.Add(new(name + ".exp_avg", s.ExpAvg));
            tensors.Add(new(name + ".exp_avg_sq", s.ExpAvgSq));
            tensors.Add(new(name + ".step", tensor(s.Step)));
        }
        SafeTensors.Save(path, tensors, new Dictionary<string, string>
        {
            ["format"] = Format,
            ["hyperparameters"] = Describe().ToJsonString(),
        });
    }

    /// <summary>
    /// Replaces the state with the one in <paramref name="path"/>, strictly: the file's groups must be this optimizer's
    /// (names, learning rates, weight decays and members), and every state tensor must belong to one of its parameters
    /// with that parameter's shape and dtype. Nothing changes unless all of it holds.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is malformed or does not match; names the tensor.</exception>
    public void Load(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("format", out var format) || format != Format)
            throw new CheckpointFormatException(file.Path, $"not an AdamW state file (metadata format '{format}', expected '{Format}')");
        if (!file.Metadata.TryGetValue("hyperparameters", out var stored))
            throw new CheckpointFormatException(file.Path, "metadata has no 'hyperparameters'");
        JsonObject? saved;
        try { saved = JsonNode.Parse(stored) as JsonObject; }
        catch (JsonException e) { throw new CheckpointFormatException(file.Path, $"metadata 'hyperparameters' is not valid JSON: {e.Message}", inner: e); }
        if (FirstDifference(saved, Describe()) is { } difference)
            throw new CheckpointFormatException(file.Path, $"optimizer groups or hyperparameters differ: {difference}");

        var names = file.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var loaded = new Dictionary<string, ParameterState>(StringComparer.Ordinal);
        try
        {
            foreach (var info in file.Tensors)
            {
                var suffix = new[] { ".exp_avg_sq", ".exp_avg", ".step" }.FirstOrDefault(s => info.Name.EndsWith(s, StringComparison.Ordinal));
                if (suffix is null)
                    throw new CheckpointFormatException(file.Path, "not an AdamW state entry (expected a .exp_avg, .exp_avg_sq or .step suffix)", info.Name);
                var name = info.Name[..^suffix.Length];
                if (!byName.TryGetValue(name, out var entry))
                    throw new CheckpointFormatException(file.Path, $"state for '{name}', which is not a trainable parameter of this optimizer", info.Name);
                if (loaded.ContainsKey(name)) continue;
                foreach (var part in new[] { ".exp_avg", ".exp_avg_sq", ".step" })
                    if (!names.Contains(name + part))
                        throw new CheckpointFormatException(file.Path, $"state of '{name}' lacks its {part} entry", name + part);
                var parameter = entry.Parameter;
                Tensor Moment(string part)
                {
                    var moment = file.Info(name + part);
                    if (!moment.Shape.SequenceEqual(parameter.shape) || SafeTensors.ToTorch(moment.DType) != parameter.dtype)
                        throw new CheckpointFormatException(file.Path,
                            $"{moment.DType} [{string.Join(",", moment.Shape)}], but the parameter is {parameter.dtype} [{string.Join(",", parameter.shape)}]", name + part);
                    return file.Load(name + part, parameter.device).DetachFromDisposeScope();
                }
                var stepInfo = file.Info(name + ".step");
                if (stepInfo.DType != SafeDType.I64 || stepInfo.Shape.Length != 0)
                    throw new CheckpointFormatException(file.Path, $"step must be an I64 scalar, found {stepInfo.DType} [{string.Join(",", stepInfo.Shape)}]", name + ".step");
                long step;
                using (var stepTensor = file.Load(name + ".step")) step = stepTensor.item<long>();
                if (step < 1)
                    throw new CheckpointFormatException(file.Path, $"step must be at least 1, found {step}", name + ".step");
                loaded.Add(name, new ParameterState(Moment(".exp_avg"), Moment(".exp_avg_sq"), step, ParameterReplacement.Generation(parameter)));
            }
        }
        catch
        {
            foreach (var s in loaded.Values) s.Dispose();
            throw;
        }
        foreach (var s in state.Values) s.Dispose();
        state.Clear();
        foreach (var (name, s) in loaded) state.Add(name, s);
    }

    /// <summary>Groups (name, lr, weight decay, member names) and hyperparameters as JSON; what a state file must match.</summary>
    JsonObject Describe()
    {
        var array = new JsonArray();
        foreach (var g in groups)
            array.Add(new JsonObject
            {
                ["name"] = g.Name,
                ["lr"] = g.LearningRate,
                ["weight_decay"] = g.WeightDecay,
                ["parameters"] = new JsonArray(g.Parameters.Select(p => (JsonNode)JsonValue.Create(p.Name)!).ToArray()),
            });
        return new JsonObject { ["beta1"] = Beta1, ["beta2"] = Beta2, ["eps"] = Epsilon, ["groups"] = array };
    }

    /// <summary>The first way the saved description differs from this optimizer's, in a few words; null when equal.</summary>
    static string? FirstDifference(JsonObject? saved, JsonObject current)
    {
        if (saved is null) return "metadata 'hyperparameters' is not a JSON object";
        foreach (var key in new[] { "beta1", "beta2", "eps" })
            if (!JsonNode.DeepEquals(saved[key], current[key]))
                return $"{key} is {saved[key]?.ToJsonString() ?? "absent"} in the file and {current[key]!.ToJsonString()} here";
        static Dictionary<string, JsonObject> ByName(JsonNode? groups) =>
            (groups as JsonArray ?? new JsonArray()).OfType<JsonObject>()
                .ToDictionary(g => g["name"]?.GetValue<string>() ?? "", g => g, StringComparer.Ordinal);
        var before = ByName(saved["groups"]);
        var now = ByName(current["groups"]);
        foreach (var name in now.Keys.Except(before.Keys)) return $"group '{name}' is not in the file";
        foreach (var name in before.Keys.Except(now.Keys)) return $"the file's group '{name}' is not here";
        foreach (var (name, group) in now)
        {
            foreach (var key in new[] { "lr", "weight_decay" })
                if (!JsonNode.DeepEquals(before[name][key], group[key]))
                    return $"group '{name}': {key} is {before[name][key]?.ToJsonString() ?? "absent"} in the file and {group[key]!.ToJsonString()} here";
            var members = group["parameters"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
            var stored = (before[name]["parameters"] as JsonArray ?? new JsonArray()).Select(n => n?.GetValue<string>() ?? "").ToList();
            if (members.Except(stored).FirstOrDefault() is { } extra) return $"group '{name}': parameter '{extra}' is not in the file's group";
            if (stored.Except(members).FirstOrDefault() is { } missing) return $"group '{name}': the file's parameter '{missing}' is not in this group";
            if (!members.SequenceEqual(stored)) return $"group '{name}': parameters are in another order";
        }
        return JsonNode.DeepEquals(saved, current) ? null : "the descriptions differ";
    }

    static (IReadOnlyList<ParameterGroup>, Dictionary<string, (ParameterGroup Group, Parameter Parameter)>) Index(IEnumerable<ParameterGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var list = groups.ToList();
        var index = new Dictionary<string, (ParameterGroup Group, Parameter Parameter)>(StringComparer.Ordinal);
        var groupNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in list)
        {
            if (!groupNames.Add(g.Name))
                throw new ArgumentException($"Two parameter groups are called '{g.Name}'.", nameof(groups));
            if (!(g.LearningRate >= 0)) throw new ArgumentException($"Group '{g.Name}': learning rate must be non-negative, got {g.LearningRate}.", nameof(groups));
            if (!(g.WeightDecay >= 0)) throw new ArgumentException($"Group '{g.Name}': weight decay must be non-negative, got {g.WeightDecay}.", nameof(groups));
            foreach (var (name, parameter) in g.Parameters)
            {
                if (!parameter.requires_grad)
                    throw new ArgumentException($"Parameter '{name}' (group '{g.Name}') does not require gradients; frozen parameters get no optimizer state.", nameof(groups));
                if (!index.TryAdd(name, (g, parameter)))
                    throw new ArgumentException($"Parameter '{name}' appears in more than one group.", nameof(groups));
            }
        }
        return (list, index);
    }

    public void Dispose()
    {
        foreach (var s in state.Values) s.Dispose();
        state.Clear();
    }
}
