using System;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;

namespace Mpo.Models;

/// <summary>
/// Structure a layer above Models gives a model and records in its <c>config.json</c> under
/// <see cref="PretrainedModel.TunerConfigKey"/>, which the family's own keys do not describe: MoE layers in place of
/// the FFNs (MPOE §3). <see cref="PretrainedModel.Load"/> rebuilds it before reading the tensors and
/// <see cref="PretrainedModel.LoadWeights"/> checks a checkpoint against it first. Models knows only this interface;
/// the Tuning layer registers the implementation (<see cref="CheckpointStructure.Register"/>), so the Models layer
/// depends on nothing above it.
/// </summary>
public interface ICheckpointStructure
{
    /// <summary>Rebuilds on a freshly built <paramref name="model"/> the structure <paramref name="tunerConfig"/>
    /// records; errors name <paramref name="source"/> (the file and key it was read from).</summary>
    void Rebuild(PretrainedModel model, JsonObject tunerConfig, string source);

    /// <summary>Before the strict load: refuses, saying why, a checkpoint whose structure differs from the model's in a
    /// way the tensor names alone would report as a long list of missing and unexpected names (experts saved as n,
    /// loaded as m).</summary>
    void Check(PretrainedModel model, CheckpointFolder checkpoint);
}

/// <summary>The one registered <see cref="ICheckpointStructure"/> (the Tuning layer's, registered when the assembly loads).</summary>
public static class CheckpointStructure
{
    static ICheckpointStructure? registered;

    /// <summary>Makes <paramref name="structure"/> the one loading rebuilds and checks with.</summary>
    public static void Register(ICheckpointStructure structure) =>
        registered = structure ?? throw new ArgumentNullException(nameof(structure));

    /// <summary>The registered structure; null when none is.</summary>
    public static ICheckpointStructure? Registered => registered;
}
