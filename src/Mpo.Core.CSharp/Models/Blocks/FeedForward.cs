using System;
using System.Collections.Generic;
using System.Linq;
using Mpo.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// A Transformer layer's position-wise feed-forward block, y = W_out·act(W_in·x + b_in) + b_out, as each family holds
/// it: T5's <c>DenseReluDense</c> (wi, wo), GPT-2's <c>mlp</c> (c_fc, c_proj), BERT's intermediate/output, ALBERT's
/// ffn/ffn_output, DistilBERT's <c>ffn</c> (lin1, lin2). Every family keeps the block in a field typed
/// <c>Module&lt;Tensor, Tensor&gt;</c> that <c>ModuleSurgery.Replace</c> can swap as one unit; an MoE layer is built
/// from what this interface exposes (MPOE §3: experts replace the FFN of every block) and takes its place.
/// </summary>
public interface IFeedForward
{
    /// <summary>Role of the input matrix in the family's state dict (wi, c_fc, intermediate, ffn, lin1): an MoE layer
    /// names its expert matrices after it.</summary>
    string InputName { get; }
    /// <summary>Role of the output matrix (wo, c_proj, output, ffn_output, lin2).</summary>
    string OutputName { get; }
    /// <summary>W_in (+ b_in): a Linear, GPT-2's Conv1D, or an MpoLinear a tuner put there.</summary>
    nn.Module<Tensor, Tensor> Input { get; }
    /// <summary>W_out (+ b_out).</summary>
    nn.Module<Tensor, Tensor> Output { get; }
    Func<Tensor, Tensor> Activation { get; }
    /// <summary>Dropout probability between the activation and W_out (T5's dropout_rate; 0 for the others).</summary>
    double InnerDropout { get; }
    /// <summary>Dropout probability on the block's output applied inside the block (GPT-2's resid_pdrop); families
    /// that drop the FFN output outside the block (T5, BERT, DistilBERT) report 0.</summary>
    double OutputDropout { get; }
}

/// <summary>Finding a model's feed-forward blocks.</summary>
public static class FeedForward
{
    /// <summary>Every feed-forward block of <paramref name="model"/> with its dotted path, in module order (T5: encoder
    /// then decoder blocks). A block shared by several layers (ALBERT) appears once.</summary>
    public static IReadOnlyList<(string Path, IFeedForward Block)> Blocks(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.named_modules().Where(m => m.module is IFeedForward)
                    .Select(m => (m.name, (IFeedForward)m.module)).ToList();
    }
}

/// <summary>
/// The feed-forward block of a layer whose state-dict names do not group it (BERT: <c>intermediate.dense</c> and
/// <c>output.dense</c> sit beside <c>output.LayerNorm</c>; ALBERT: <c>ffn</c>, <c>ffn_output</c>): a module with no
/// parameters of its own that runs the host's current matrices, so Hugging Face's names stay where they are and a
/// tuner's swap of one matrix (an MpoLinear at <c>intermediate.dense</c>) is what runs. The host registers it under
/// <c>feed_forward</c>; when something else takes that place, the host drops the dense matrices
/// (<see cref="FeedForwardHost"/>), so they neither count, nor save, nor train.
/// </summary>
public sealed class FeedForwardView : nn.Module<Tensor, Tensor>, IFeedForward
{
    readonly Func<nn.Module<Tensor, Tensor>> input, output;

    public FeedForwardView(string inputName, Func<nn.Module<Tensor, Tensor>> input, string outputName,
                           Func<nn.Module<Tensor, Tensor>> output, Func<Tensor, Tensor> activation) : base(nameof(FeedForwardView))
    {
        InputName = inputName;
        OutputName = outputName;
        this.input = input;
        this.output = output;
        Activation = activation;
    }

    public string InputName { get; }
    public string OutputName { get; }
    public nn.Module<Tensor, Tensor> Input => input();
    public nn.Module<Tensor, Tensor> Output => output();
    public Func<Tensor, Tensor> Activation { get; }
    public double InnerDropout => 0.0;
    public double OutputDropout => 0.0;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Output.forward(Activation(Input.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What a layer that holds its feed-forward block as a <see cref="FeedForwardView"/> does when the view is replaced:
/// a field <c>feed_forward</c> and the matrices to drop. Layers derive from it instead of <c>nn.Module</c>.
/// </summary>
public abstract class FeedForwardHost : nn.Module
{
    /// <summary>Name of the field (and child module) that holds the feed-forward block.</summary>
    public const string FeedForwardName = "feed_forward";

    protected FeedForwardHost(string name) : base(name) { }

    /// <summary>Removes the dense matrices the view ran (their fields set to null and their names unregistered).</summary>
    protected abstract void DropDenseFeedForward();

    /// <summary>Registers as TorchSharp does; a replacement of the <see cref="FeedForwardView"/> under
    /// <see cref="FeedForwardName"/> (what <c>ModuleSurgery.Replace</c> does) also drops the dense matrices.</summary>
    public override void register_module(string name, nn.Module submodule)
    {
        base.register_module(name, submodule);
        if (name == FeedForwardName && submodule is not null && submodule is not FeedForwardView)
            DropDenseFeedForward();
    }
}

/// <summary>The [out, in] weight and the bias of a module that computes a linear map.</summary>
public static class LinearWeight
{
    /// <summary>
    /// W [out, in] and b of a <see cref="Linear"/>, GPT-2's <see cref="Conv1D"/> (its transposed view) or an
    /// <see cref="MpoLinear"/> (the reconstruction, a new tensor in the caller's dispose scope).
    /// </summary>
    /// <param name="what">How to name the module in an error.</param>
    public static (Tensor Weight, Tensor? Bias) Of(nn.Module<Tensor, Tensor> module, string what) => module switch
    {
        Linear linear => (linear.weight ?? throw new ArgumentException($"{what} has no weight", nameof(module)), linear.bias),
        Conv1D conv => (conv.LinearWeight(), conv.bias),
        MpoLinear mpo => (mpo.Weight(), mpo.Bias),
        _ => throw new NotSupportedException($"{what} is a {module.GetType().Name}; a linear map (Linear, Conv1D, MpoLinear) is needed"),
    };
}
