using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// Parameters that share a learning rate and a weight decay in <see cref="AdamW"/> (PyTorch's param group).
/// </summary>
/// <param name="Name">Group name, e.g. "default", "default.no_decay", or a <see cref="ParameterGroupRule"/>'s name.</param>
/// <param name="LearningRate">Base learning rate, multiplied by the schedule's factor at each update.</param>
/// <param name="WeightDecay">Decoupled weight-decay coefficient λ (each update scales the parameter by 1 − lr·λ).</param>
/// <param name="Parameters">Named trainable parameters, in module order.</param>
public sealed record ParameterGroup(string Name, double LearningRate, double WeightDecay, IReadOnlyList<(string Name, Parameter Parameter)> Parameters);

/// <summary>
/// Sends the parameters whose name matches <see cref="Matches"/> to their own group, e.g. MPOP's auxiliary tensors with
/// their own learning rate (<c>--mpo_lr</c>, spec §4.2). Rules are tried in order; the first match wins.
/// </summary>
/// <param name="Name">Group name (also the key under which the trainer's options record it).</param>
/// <param name="Matches">Predicate on the dotted parameter name.</param>
/// <param name="LearningRate">The group's base learning rate; the trainer's when null.</param>
/// <param name="WeightDecay">Applied to every parameter of the group when given; when null the trainer's weight decay
/// applies with Hugging Face's exclusions (<see cref="ParameterGroups.ExcludedFromWeightDecay"/>).</param>
public sealed record ParameterGroupRule(string Name, Func<string, bool> Matches, double? LearningRate = null, double? WeightDecay = null);

/// <summary>
/// Splits a module's trainable parameters into <see cref="ParameterGroup"/>s the way Hugging Face's <c>Trainer</c>
/// does: weight decay on everything except biases, normalization weights (and MPO cores), plus caller rules by name.
/// Parameters with <c>requires_grad = false</c> (MPOP's frozen central tensors) are left out entirely, so they get no
/// optimizer state and no update.
/// </summary>
public static class ParameterGroups
{
    // Trainer.get_decay_parameter_names (transformers ≥ 4.46): bias and norm names, matched on the lower-cased name.
    static readonly Regex NoDecayName = new(@"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)", RegexOptions.CultureInvariant);

    /// <summary>
    /// Whether the parameter gets no weight decay by default: Hugging Face's Trainer exempts what belongs directly to a
    /// <see cref="LayerNorm"/> module (GPT-2's <c>ln_1</c>), or whose lower-cased name contains "bias", "layernorm",
    /// "rmsnorm", or a "norm"/"_norm" path component (T5's <c>layer_norm</c>, DistilBERT's <c>sa_layer_norm</c>); and
    /// MPO cores are exempt (<see cref="Layers.MpoLayer.IsCore"/>): decay on k trained cores of one matrix scales it by
    /// (1 − lr·λ)^k rather than (1 − lr·λ), and MPOP trained them without (spec §4.2). A rule with its own weight decay
    /// still applies it.
    /// </summary>
    /// <param name="name">Dotted parameter name.</param>
    /// <param name="owner">The module the parameter is registered on directly, when known.</param>
    public static bool ExcludedFromWeightDecay(string name, nn.Module? owner = null) =>
        owner is LayerNorm || Layers.MpoLayer.IsCore(name) || NoDecayName.IsMatch(name.ToLowerInvariant());

    /// <summary>
    /// The groups of <paramref name="module"/>'s trainable parameters: each rule's group, then "default" (weight decay
    /// <paramref name="weightDecay"/>) and "default.no_decay" (0). A rule without its own weight decay is split the same
    /// way into "name" and "name.no_decay". Empty groups are dropped.
    /// </summary>
    public static IReadOnlyList<ParameterGroup> Build(nn.Module module, double learningRate, double weightDecay,
                                                      IReadOnlyList<ParameterGroupRule>? rules = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        rules ??= Array.Empty<ParameterGroupRule>();
        var duplicate = rules.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Two parameter-group rules are called '{duplicate.Key}'.", nameof(rules));

        var owners = Owners(module);
        var groups = new List<(string Name, double Lr, double Wd, List<(string, Parameter)> Members)>();
        List<(string, Parameter)> Group(string name, double lr, double wd)
        {
            foreach (var g in groups)
                if (g.Name == name) return g.Members;
            var members = new List<(string, Parameter)>();
            groups.Add((name, lr, wd, members));
            return members;
        }
        // Fixed order: rules first, then the defaults, so group indices do not depend on parameter order.
        foreach (var rule in rules)
        {
            Group(rule.Name, rule.LearningRate ?? learningRate, rule.WeightDecay ?? weightDecay);
            if (rule.WeightDecay is null) Group(rule.Name + ".no_decay", rule.LearningRate ?? learningRate, 0.0);
        }
        Group("default", learningRate, weightDecay);
        Group("default.no_decay", learningRate, 0.0);

        foreach (var (name, parameter) in module.named_parameters())
        {
            if (!parameter.requires_grad) continue;
            var rule = rules.FirstOrDefault(r => r.Matches(name));
            var noDecay = rule?.WeightDecay is null && ExcludedFromWeightDecay(name, owners.GetValueOrDefault(name));
            var groupName = (rule?.Name ?? "default") + (noDecay ? ".no_decay" : "");
            Group(groupName, 0, 0).Add((name, parameter));
        }
        return groups.Where(g => g.Members.Count > 0)
                     .Select(g => new ParameterGroup(g.Name, g.Lr, g.Wd, g.Members))
                     .ToList();
    }

    /// <summary>Parameter name → the module that registers it directly.</summary>
    static Dictionary<string, nn.Module> Owners(nn.Module module)
    {
        var owners = new Dictionary<string, nn.Module>(StringComparer.Ordinal);
        foreach (var (name, _) in module.named_parameters(recurse: false)) owners.TryAdd(name, module);
        foreach (var (path, child) in module.named_modules())
            foreach (var (name, _) in child.named_parameters(recurse: false))
                owners.TryAdd($"{path}.{name}", child);
        return owners;
    }
}
