using System;
using System.Linq;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Tuning;

/// <summary>
/// Swaps a submodule by its dotted state-dict path (e.g. <c>bert.encoder.layer.3.output.dense</c>) so a tuner can
/// put an <c>MpoLinear</c> or an MoE layer where a dense one was, in any supported model, without the model knowing.
/// Models keep swappable parts in fields typed by their interface (<c>Module&lt;Tensor, Tensor&gt;</c>), so the
/// replacement is what <c>forward</c> calls.
/// </summary>
public static class ModuleSurgery
{
    /// <summary>The submodule at <paramref name="path"/>; throws naming the first missing segment.</summary>
    public static nn.Module Find(nn.Module root, string path)
    {
        nn.Module current = root;
        foreach (var segment in path.Split('.'))
        {
            var child = current.named_children().FirstOrDefault(c => c.name == segment).module;
            current = child ?? throw new ArgumentException(
                $"no submodule '{segment}' in '{path}'; children there: {string.Join(", ", current.named_children().Select(c => c.name))}", nameof(path));
        }
        return current;
    }

    /// <summary>Replaces the submodule at <paramref name="path"/> with <paramref name="replacement"/> and returns the old one.</summary>
    public static nn.Module Replace(nn.Module root, string path, nn.Module replacement)
    {
        int dot = path.LastIndexOf('.');
        var parent = dot < 0 ? root : Find(root, path[..dot]);
        string name = path[(dot + 1)..];
        var old = Find(parent, name);
        if (parent.GetType().IsGenericType && parent.GetType().GetGenericTypeDefinition() == typeof(ModuleList<>) && int.TryParse(name, out int index))
        {
            // ModuleList<T> re-registers the child itself when an index is assigned.
            parent.GetType().GetProperty("Item")!.SetValue(parent, replacement, new object[] { index });
            return old;
        }
        var field = AllFields(parent.GetType()).FirstOrDefault(f => ReferenceEquals(f.GetValue(parent), old))
            ?? throw new InvalidOperationException($"'{path}': {parent.GetType().Name} keeps the submodule outside a field; cannot swap it");
        if (!field.FieldType.IsInstanceOfType(replacement))
            throw new ArgumentException($"'{path}': field {parent.GetType().Name}.{field.Name} is {field.FieldType.Name}; a {replacement.GetType().Name} cannot take its place", nameof(replacement));
        field.SetValue(parent, replacement);
        parent.register_module(name, null!);   // TorchSharp: a null module unregisters the name
        parent.register_module(name, replacement);
        return old;
    }

    static System.Collections.Generic.IEnumerable<FieldInfo> AllFields(Type? type)
    {
        for (; type is not null; type = type.BaseType)
            foreach (var f in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                yield return f;
    }
}
