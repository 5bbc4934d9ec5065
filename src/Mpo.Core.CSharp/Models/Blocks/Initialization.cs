using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mpo.Models.Blocks;

/// <summary>
/// Hugging Face's <c>_init_weights</c> for the BERT family (BERT, ALBERT, DistilBERT): every Linear weight and every
/// Embedding table ~ N(0, initializer_range), Linear biases 0, LayerNorm weight 1 and bias 0. Heads that are new to a
/// checkpoint start from exactly this, as in HF. Draws come from torch's global generator
/// (<c>torch.random.manual_seed</c> makes a model reproducible).
/// </summary>
public static class Initialization
{
    /// <summary>Initializes every dense Linear, Embedding and LayerNorm under <paramref name="root"/>.</summary>
    public static void Normal(nn.Module root, double initializerRange)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in root.named_modules())
            switch (module)
            {
                case Linear linear:
                    linear.weight!.normal_(0.0, initializerRange);
                    linear.bias?.zero_();
                    break;
                case Embedding embedding:
                    embedding.weight!.normal_(0.0, initializerRange);
                    break;
                case LayerNorm norm:
                    norm.weight?.fill_(1.0);
                    norm.bias?.zero_();
                    break;
            }
    }
}
