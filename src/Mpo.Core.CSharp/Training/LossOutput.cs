using System.Collections.Generic;
using static TorchSharp.torch;

namespace Mpo.Training;

/// <summary>
/// What the caller's loss function returns for one batch. The trainer back-propagates <see cref="Loss"/> (divided by
/// the number of accumulated batches) and logs the rest. Any model fits: a classification or regression head's loss,
/// a masked or causal LM's token loss, a text-to-text model's label loss, plus any auxiliary loss (MPOE's
/// load-balancing term) added into <see cref="Loss"/> and reported separately in <see cref="Components"/>.
/// </summary>
/// <param name="Loss">Scalar loss to minimize; a mean over the batch, so that accumulation matches a larger batch.</param>
/// <param name="Tokens">Tokens (or examples) in the batch, for the tokens-per-second figure; 0 when not counted.</param>
/// <param name="Components">Named scalar parts of the loss to log (e.g. "aux_loss"), averaged like the loss.</param>
public sealed record LossOutput(Tensor Loss, long Tokens = 0, IReadOnlyDictionary<string, Tensor>? Components = null);
