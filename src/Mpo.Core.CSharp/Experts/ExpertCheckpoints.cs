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
    /// router (a dense one) is left to the ordinary strict load, which names every missing tensor.
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
        }
    }
}
