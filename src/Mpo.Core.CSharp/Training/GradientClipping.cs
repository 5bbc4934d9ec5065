using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// Gradient clipping by global norm (Pascanu et al. 2013), as <c>torch.nn.utils.clip_grad_norm_</c> with the 2-norm,
/// which Hugging Face's Trainer applies with <c>max_grad_norm</c> (default 1.0; MPOP's scripts keep it).
/// </summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales every gradient by <c>min(1, maxNorm / (‖g‖ + 1e-6))</c>, where ‖g‖ is the 2-norm of all gradients taken
    /// together, and returns ‖g‖ before clipping (what HF logs as <c>grad_norm</c>). A <paramref name="maxNorm"/> of
    /// 0 or +∞ only measures. Gradients are not touched when ‖g‖ is not finite: the caller decides what a NaN means.
    /// </summary>
    /// <param name="gradients">The gradients (parameters without one are simply not passed).</param>
    /// <param name="maxNorm">The bound on the global norm.</param>
    public static double ClipByGlobalNorm(IReadOnlyList<Tensor> gradients, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (!(maxNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "maxNorm must be non-negative.");
        if (gradients.Count == 0) return 0.0;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Norm of the per-tensor norms, as PyTorch computes it (and in the gradients' dtype, as PyTorch does).
        var norms = gradients.Select(g => linalg.vector_norm(g, 2)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        var value = total.ToDouble();
        if (maxNorm == 0 || double.IsPositiveInfinity(maxNorm) || !double.IsFinite(value)) return value;
        var coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
        foreach (var g in gradients) g.mul_(coefficient.to(g.dtype));
        return value;
    }
}
