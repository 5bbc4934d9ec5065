using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Mpo.Checkpoints;
using Mpo.Experts;
using Mpo.Models;

namespace Mpo.Tuning;

/// <summary>
/// The structure the tuner records in a checkpoint (its configuration under <see cref="PretrainedModel.TunerConfigKey"/>:
/// MoE layers in place of the FFNs) for the Models layer's loader: rebuilt by <see cref="MpoTuner.Restructure"/>,
/// expert counts checked by <see cref="ExpertCheckpoints.CheckExpertCounts"/>.
/// </summary>
sealed class TunedCheckpointStructure : ICheckpointStructure
{
    public void Rebuild(PretrainedModel model, JsonObject tunerConfig, string source) =>
        MpoTuner.Restructure(model, tunerConfig, source);

    public void Check(PretrainedModel model, CheckpointFolder checkpoint) =>
        ExpertCheckpoints.CheckExpertCounts(model, checkpoint);

    // A module initializer runs before any code of this assembly, so every load (Models is in the same assembly) finds
    // the structure registered, without each entry point having to remember a registration call.
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void Register() => CheckpointStructure.Register(new TunedCheckpointStructure());
#pragma warning restore CA2255
}
