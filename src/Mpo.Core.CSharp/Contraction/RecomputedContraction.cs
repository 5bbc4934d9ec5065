using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Decomposition;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Contraction;

/// <summary>
/// y = x·Wᵀ (+ b) with W rebuilt from the cores in the forward pass and rebuilt again in the backward pass, so that
/// nothing of the rebuild is kept for backward — only x and the cores themselves (activation checkpointing of the
/// weight). <see cref="MpoContraction.LinearReconstructed"/> lets autograd keep W and the chain's intermediates, about
/// three copies of W per call; an MoE layer with n MPO experts makes 2n such calls per step, so that memory grows with
/// the experts' full size although their parameters do not (MPOE shares one central tensor). The price is one more
/// rebuild per call in backward. Gradients reach x, b and every core that requires one (a frozen central tensor gets
/// none), exactly as autograd through the rebuild would give them.
/// </summary>
public static class RecomputedContraction
{
    /// <summary>y = x·Wᵀ (+ b), W = MPO(cores) [Rows, Cols], keeping only x and the cores for backward.</summary>
    public static Tensor LinearReconstructed(Tensor input, IReadOnlyList<Tensor> cores, MpoFactorization f, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(cores);
        ArgumentNullException.ThrowIfNull(f);
        if (cores.Count != f.CoreCount)
            throw new ArgumentException($"{cores.Count} cores for a factorization of {f.CoreCount}", nameof(cores));
        if (input.shape[^1] != f.Cols)
            throw new ArgumentException($"input has {input.shape[^1]} features, the MPO expects {f.Cols}", nameof(input));
        var args = new object[3 + cores.Count];
        args[0] = f;
        args[1] = input;
        args[2] = (object?)bias ?? NoBias;
        for (int k = 0; k < cores.Count; k++) args[3 + k] = cores[k];
        return RecomputedLinear.apply(args);
    }

    static readonly object NoBias = new();

    sealed class RecomputedLinear : autograd.SingleTensorFunction<RecomputedLinear>
    {
        public override string Name => nameof(RecomputedLinear);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var f = (MpoFactorization)vars[0];
            var x = (Tensor)vars[1];
            var bias = vars[2] as Tensor;
            var cores = vars.Skip(3).Cast<Tensor>().ToList();
            ctx.save_data("factorization", f);
            ctx.save_data("bias", bias is not null);
            ctx.save_for_backward(cores.Prepend(x).ToList());
            using var scope = NewDisposeScope();
            var w = MpoContraction.Reconstruct(cores, f);
            return nn.functional.linear(x, w, bias).MoveToOuterDisposeScope();
        }

        // The gradients a backward call returns are read by the autograd engine only after the call returns, so their
        // handles cannot be disposed inside it; left to the caller's dispose scope (the one around backward()), every
        // call's gradients — a central-tensor-sized one per expert and matrix — would stay allocated until the whole
        // backward pass ends, and hold AccumulateGrad to copying rather than taking them. The engine holds its own
        // reference once a call has returned, so each call releases the handles the previous one handed over.
        [ThreadStatic] static List<Tensor>? handedOver;

        static void ReleaseHandedOver()
        {
            if (handedOver is null) return;
            foreach (var t in handedOver) t.Dispose();
            handedOver.Clear();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            ReleaseHandedOver();
            var saved = ctx.get_saved_variables();
            var x = saved[0];
            var cores = saved.Skip(1).ToList();
            var f = (MpoFactorization)ctx.get_data("factorization");
            bool hasBias = (bool)ctx.get_data("bias");
            Tensor gradInput;
            Tensor? gradBias = null;
            var gradCores = new Tensor?[cores.Count];
            var wanted = Enumerable.Range(0, cores.Count).Where(k => cores[k].requires_grad).ToList();
            using (var scope = NewDisposeScope())
            using (enable_grad())
            {
                // dW = gᵀ·x [Rows, Cols] lives only here: the cores' gradients are contracted from it
                var g = gradOutput.reshape(-1, f.Rows);
                var gradWeight = g.t().matmul(x.reshape(-1, f.Cols));
                if (hasBias) gradBias = g.sum(0L).MoveToOuterDisposeScope();
                var leaves = cores.Select((c, k) => c.detach().requires_grad_(wanted.Contains(k))).ToList();
                var w = MpoContraction.Reconstruct(leaves, f);
                gradInput = gradOutput.matmul(w.detach()).MoveToOuterDisposeScope();
                if (wanted.Count > 0)
                {
                    var grads = autograd.grad(new[] { w }, wanted.Select(k => leaves[k]).ToList(), new[] { gradWeight });
                    for (int i = 0; i < wanted.Count; i++) gradCores[wanted[i]] = grads[i].MoveToOuterDisposeScope();
                }
            }
            // The handles this call was given (the incoming gradient; x and the cores, unpacked from the saved variables)
            // are its own (TorchSharp wraps a fresh native reference for each) and not read after it returns; left to
            // the caller's scope, every call's incoming gradient [tokens, Rows] would also live until backward ends.
            gradOutput.Dispose();
            foreach (var t in saved) t.Dispose();
            var result = new List<Tensor> { null!, gradInput, gradBias! };
            result.AddRange(gradCores.Select(t => t!));
            handedOver ??= new List<Tensor>();
            foreach (var t in result) if (t is not null) handedOver.Add(t.DetachFromDisposeScope());
            return result;
        }
    }
}
