using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mpo.Models;
using Mpo.SentenceEmbedding;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Checkpoints.Onnx;

/// <summary>What an import wrote.</summary>
/// <param name="Folder">The checkpoint folder.</param>
/// <param name="Config">The configuration derived from the graph.</param>
/// <param name="HasPooler">Whether the graph had BERT's pooler (dense + tanh on [CLS]).</param>
/// <param name="Parameters">Values in the checkpoint.</param>
/// <param name="Tensors">Each HF tensor and the ONNX initializer it came from.</param>
/// <param name="Lowercase">Whether the tokenizer lower-cases (inferred from the vocabulary).</param>
/// <param name="Pooling">The sentence pooling written beside the checkpoint, if any.</param>
/// <param name="Files">Every file written, relative to the folder, sorted.</param>
/// <param name="Sha256">The digest of those files (<see cref="OnnxImport.Digest"/>).</param>
public sealed record OnnxImportResult(string Folder, BertConfig Config, bool HasPooler, long Parameters,
                                      IReadOnlyList<MappedTensor> Tensors, bool Lowercase, SentencePooling? Pooling,
                                      IReadOnlyList<string> Files, string Sha256);

/// <summary>
/// Converts a BERT-family encoder exported to ONNX (HF optimum, <c>torch.onnx</c>) into a Hugging Face checkpoint
/// folder: <c>config.json</c> derived from the graph (<see cref="BertGraph"/>), <c>model.safetensors</c> (float32,
/// HF names and <c>[out, in]</c> layout), <c>vocab.txt</c> and <c>tokenizer_config.json</c>, and optionally
/// sentence-transformers' pooling files. Everything is checked before anything is written, the folder is written
/// beside the target and published with the weights last (<see cref="AtomicFolder"/>): a failed import leaves the
/// target as it was.
/// </summary>
public static class OnnxImport
{
    public const string VocabularyFile = "vocab.txt";
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>Imports <paramref name="onnxPath"/> with the WordPiece vocabulary <paramref name="vocabularyPath"/>.</summary>
    /// <exception cref="CheckpointFormatException">The file is not a complete ONNX model, the graph is not BERT-shaped
    /// (the message names the node), or the vocabulary's size differs from the embedding's.</exception>
    public static OnnxImportResult Import(string onnxPath, string vocabularyPath, string outFolder, SentencePooling? pooling = null)
    {
        if (!File.Exists(vocabularyPath)) throw new FileNotFoundException($"{vocabularyPath}: no such vocabulary file", vocabularyPath);
        var graph = OnnxGraph.Load(onnxPath);
        return Import(graph, File.ReadAllBytes(vocabularyPath), Path.GetFullPath(vocabularyPath), outFolder, pooling);
    }

    /// <summary>Imports a parsed graph; <paramref name="vocabularySource"/> names the vocabulary in errors.
    /// <paramref name="expectedSha256"/>, when given, must equal the digest of what was converted, or nothing is
    /// published.</summary>
    public static OnnxImportResult Import(OnnxGraph graph, byte[] vocabulary, string vocabularySource, string outFolder,
                                          SentencePooling? pooling = null, string? expectedSha256 = null)
    {
        var match = BertGraph.Match(graph);
        var tokens = Tokens(vocabulary);
        var config = match.Config;
        if (tokens.Count != config.VocabSize)
            throw new CheckpointFormatException(vocabularySource,
                $"holds {tokens.Count:N0} tokens, but the token embedding of {graph.Source} has {config.VocabSize:N0} rows");
        string[] specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        var missing = specials.Where(s => !tokens.Contains(s)).ToList();
        if (missing.Count > 0)
            throw new CheckpointFormatException(vocabularySource, $"not a BERT WordPiece vocabulary: it lacks {string.Join(", ", missing)}");
        config = config with { PadTokenId = tokens.IndexOf("[PAD]") };
        // sentence-transformers records the longest input; without one given, the position table's length
        if (pooling is { MaxSequenceLength: null }) pooling = pooling with { MaxSequenceLength = config.MaxPositionEmbeddings };
        // uncased vocabularies (bert-base-uncased's) hold no token that lower-casing would change, special tokens apart
        // (letter-like symbols such as ℝ count as upper case but have no lower-case form)
        bool lowercase = !tokens.Any(t => !(t.StartsWith('[') && t.EndsWith(']')) && t.ToLowerInvariant() != t);

        var staged = AtomicFolder.Stage(outFolder);
        try
        {
            long parameters = 0;
            using (var scope = NewDisposeScope())
            {
                var weights = new List<KeyValuePair<string, Tensor>>();
                foreach (var m in match.Tensors)
                {
                    var values = graph.Floats(m.Source);
                    var t = tensor(values, m.Source.Dims.ToArray(), float32);
                    if (m.Transposed) t = t.t().contiguous();
                    weights.Add(KeyValuePair.Create(m.Name, t));
                    parameters += values.Length;
                }
                CheckpointFolder.Save(staged, weights, config.ToJson("BertModel"));
            }
            AtomicFile.WriteAllText(Path.Combine(staged, VocabularyFile), string.Join("\n", tokens) + "\n");
            var tokenizerConfig = new JsonObject
            {
                ["tokenizer_class"] = "BertTokenizer",
                ["do_lower_case"] = lowercase,
                ["model_max_length"] = config.MaxPositionEmbeddings,
                ["pad_token"] = "[PAD]", ["unk_token"] = "[UNK]", ["cls_token"] = "[CLS]", ["sep_token"] = "[SEP]", ["mask_token"] = "[MASK]",
            };
            AtomicFile.WriteAllText(Path.Combine(staged, TokenizerConfigFile), tokenizerConfig.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            pooling?.Write(staged, config.HiddenSize);

            var files = Directory.GetFiles(staged, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(staged, f).Replace('\\', '/')).OrderBy(f => f, StringComparer.Ordinal).ToList();
            var digest = Digest(staged, files)!;
            if (expectedSha256 is not null && !string.Equals(digest, expectedSha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException(
                    $"{graph.Source}: the conversion has sha256 {digest}, but {expectedSha256} is recorded for it; a different package build? Nothing was written to {outFolder}");
            AtomicFolder.Publish(staged, outFolder, CheckpointFolder.SingleFile);
            return new OnnxImportResult(Path.GetFullPath(outFolder), config, match.HasPooler, parameters, match.Tensors, lowercase, pooling, files, digest);
        }
        catch
        {
            AtomicFolder.Discard(staged);
            throw;
        }
    }

    /// <summary>The vocabulary's tokens, one per line; CRLF and LF endings alike (the packages' files use CRLF).</summary>
    public static List<string> Tokens(byte[] vocabulary)
    {
        var text = new UTF8Encoding(false, true).GetString(vocabulary);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    /// <summary>
    /// The sha256 of a set of files in a folder: of the lines "sha256-hex  relative/path\n" (sha256sum's format),
    /// files sorted by path. Null when one of them is missing.
    /// </summary>
    public static string? Digest(string folder, IEnumerable<string> files)
    {
        var listing = new StringBuilder();
        foreach (var file in files.OrderBy(f => f, StringComparer.Ordinal))
        {
            var path = Path.Combine(folder, file);
            if (!File.Exists(path)) return null;
            using var stream = File.OpenRead(path);
            listing.Append(Convert.ToHexStringLower(SHA256.HashData(stream))).Append("  ").Append(file).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(listing.ToString())));
    }
}
