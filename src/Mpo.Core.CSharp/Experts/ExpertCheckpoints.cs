using System.Collections.Generic;
using System.Linq;
using Mpo.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Experts;

/// <summary>Checks of a checkpoint against the MoE layers of the model it is loaded into.</summary>
public static class ExpertCheckpoints
{
    /// <summary>
    /// Throws naming the tensor when an MoE layer of <paramref name="model"/> has another number of experts than the
    /// checkpoint saved for it: its router's weight [n, d] says how many experts were saved. A checkpoint without that
    /// router (a dense one) is left to the ordinary strict load, which names every missing tensor. MPO experts saved
    /// with a shared central tensor and loaded as experts owning theirs (or the reverse) are named too.
    /// </summary>
    public static void CheckExpertCounts(nn.Module model, CheckpointFolder checkpoint)
    {
        var names = checkpoint.TensorNames.ToHashSet();
        foreach (var (path, module) in model.named_modules())
        {
            if (module is not MoeFeedForward moe) continue;
            var router = $"{path}.{MoeFeedForward.RouterName}.weight";
            if (!names.Contains(router)) continue;
            var shape = checkpoint.Info(router).Shape;
            if (shape.Length == 2 && shape[0] != moe.Experts)
                throw new CheckpointFormatException(checkpoint.Path,
                    $"the checkpoint's MoE layer '{path}' has {shape[0]} experts (router [{string.Join(",", shape)}]), but the model it is loaded into has {moe.Experts}; " +
                    "load it with the experts it was saved with (its config.json records them)", router);
            foreach (var (name, matrices) in new[] { (moe.InputName, moe.Input), (moe.OutputName, moe.Output) })
                if (matrices is MpoExpertMatrices mpo) CheckSharing(checkpoint, names, $"{path}.{name}", mpo);
        }
    }

    /// <summary>A shared central tensor is stored as <c>{matrix}.central</c>, unshared ones as
    /// <c>{matrix}.experts.{e}.central</c>; a checkpoint saved one way and loaded into experts built the other is named
    /// here, with the setting that rebuilds it, rather than as n missing tensors.</summary>
    static void CheckSharing(CheckpointFolder checkpoint, ISet<string> names, string matrix, MpoExpertMatrices mpo)
    {
        var shared = $"{matrix}.{Layers.MpoLayer.CentralName}";
        var own = $"{matrix}.{ExpertMatrices.ExpertsName}.0.{Layers.MpoLayer.CentralName}";
        if (mpo.SharesCentral && !names.Contains(shared) && names.Contains(own))
            throw new CheckpointFormatException(checkpoint.Path,
                $"the checkpoint's experts of '{matrix}' own their central tensors ({own}), but the model it is loaded into shares one; " +
                "load it with moe.share_central false (its config.json records it)", own);
        if (!mpo.SharesCentral && names.Contains(shared) && !names.Contains(own))
            throw new CheckpointFormatException(checkpoint.Path,
                $"the checkpoint's experts of '{matrix}' share one central tensor ({shared}), but the model it is loaded into gives every expert its own; " +
                "load it with moe.share_central true (its config.json records it)", shared);
    }
}
