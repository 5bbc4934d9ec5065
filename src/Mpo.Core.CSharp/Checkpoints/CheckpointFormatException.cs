using System;
using System.IO;

namespace Mpo.Checkpoints;

/// <summary>
/// A checkpoint file is malformed or does not hold what was asked of it. The message always starts with the file
/// path and names the tensor when one is involved, so a failure deep inside a load is traceable to the exact entry.
/// It derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed; code that
/// already handles I/O failures of a load handles a corrupt file the same way.
/// </summary>
public sealed class CheckpointFormatException : IOException
{
    /// <summary>The checkpoint file the problem was found in.</summary>
    public string File { get; }

    /// <summary>The tensor entry the problem concerns, or <c>null</c> when it concerns the file as a whole.</summary>
    public string? Tensor { get; }

    /// <summary>Creates the exception; <paramref name="problem"/> is prefixed with the file and tensor.</summary>
    /// <param name="file">Path of the checkpoint file.</param>
    /// <param name="problem">What is wrong, without the file or tensor name.</param>
    /// <param name="tensor">The tensor concerned, if any.</param>
    /// <param name="inner">The underlying failure, if any (e.g. a JSON parse error).</param>
    public CheckpointFormatException(string file, string problem, string? tensor = null, Exception? inner = null)
        : base(Compose(file, problem, tensor), inner)
    {
        File = file;
        Tensor = tensor;
    }

    private static string Compose(string file, string problem, string? tensor) =>
        tensor is null ? $"{file}: {problem}" : $"{file}: tensor '{tensor}': {problem}";
}
