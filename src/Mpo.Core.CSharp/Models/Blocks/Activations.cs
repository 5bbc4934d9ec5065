using System;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>The activations HF configs name (<c>hidden_act</c>, <c>activation_function</c>, <c>feed_forward_proj</c>).</summary>
public static class Activations
{
    /// <summary>The function for an HF activation name; throws naming the key's value when unknown.</summary>
    public static Func<Tensor, Tensor> Get(string name, string source = "config", string key = "hidden_act") => name switch
    {
        "gelu" => x => nn.functional.gelu(x),                       // exact, erf-based (BERT, DistilBERT)
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => GeluTanh, // GPT-2, ALBERT: tanh approximation
        "relu" => x => nn.functional.relu(x),                       // T5 v1.0
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new InvalidModelConfigException(source, key, $"unknown activation '{name}'; supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu"),
    };

    /// <summary>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GPT-2's "gelu_new".</summary>
    public static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = x.add(x.pow(3).mul(0.044715)).mul(Math.Sqrt(2.0 / Math.PI)).tanh();
        return x.mul(0.5).mul(inner.add(1.0)).MoveToOuterDisposeScope();
    }
}
