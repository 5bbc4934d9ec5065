using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mpo.Tokenization;

/// <summary>Opens the tokenizer of a checkpoint folder from the vocabulary files it holds.</summary>
public static class Tokenizers
{
    /// <summary>
    /// The tokenizer a checkpoint folder's files describe:
    /// <list type="bullet">
    /// <item><c>vocab.txt</c>: BERT WordPiece, lower-cased unless <c>tokenizer_config.json</c> says
    /// <c>"do_lower_case": false</c> (Hugging Face's default is to lower-case); its <c>strip_accents</c> is honoured.</item>
    /// <item><c>encoder.json</c> + <c>vocab.bpe</c> (OpenAI's names) or <c>vocab.json</c> + <c>merges.txt</c>
    /// (Hugging Face's): GPT-2 byte-level BPE.</item>
    /// <item><c>spiece.model</c>: SentencePiece.</item>
    /// </list>
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">The folder has none of these files, or files of more than one kind, or
    /// only half of a GPT-2 pair; the message names the folder.</exception>
    public static ITextTokenizer FromFolder(string checkpointFolder)
    {
        ArgumentNullException.ThrowIfNull(checkpointFolder);
        if (!Directory.Exists(checkpointFolder))
            throw new DirectoryNotFoundException($"{checkpointFolder}: checkpoint folder not found");
        string In(string name) => Path.Combine(checkpointFolder, name);
        bool Has(string name) => File.Exists(In(name));

        var kinds = new List<(string Files, Func<ITextTokenizer> Open)>();
        if (Has("vocab.txt"))
            kinds.Add(("vocab.txt", () => OpenBert(checkpointFolder)));
        foreach (var (vocabulary, merges) in new[] { ("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt") })
        {
            if (Has(vocabulary) && Has(merges))
                kinds.Add(($"{vocabulary} + {merges}", () => Gpt2Tokenizer.FromFiles(In(vocabulary), In(merges))));
            else if (Has(vocabulary) != Has(merges))
                throw new InvalidDataException(
                    $"{checkpointFolder}: has {(Has(vocabulary) ? vocabulary : merges)} without {(Has(vocabulary) ? merges : vocabulary)}; a GPT-2 tokenizer needs both");
        }
        if (Has("spiece.model"))
            kinds.Add(("spiece.model", () => SentencePieceTextTokenizer.FromModel(In("spiece.model"))));

        return kinds.Count switch
        {
            1 => kinds[0].Open(),
            0 => throw new InvalidDataException(
                $"{checkpointFolder}: no tokenizer files (expected vocab.txt, encoder.json + vocab.bpe, vocab.json + merges.txt, or spiece.model)"),
            _ => throw new InvalidDataException(
                $"{checkpointFolder}: files of more than one tokenizer ({string.Join("; ", kinds.Select(k => k.Files))}); open the intended one directly"),
        };
    }

    static BertWordPieceTokenizer OpenBert(string folder)
    {
        var configPath = Path.Combine(folder, "tokenizer_config.json");
        var lowercase = true;
        bool? stripAccents = null;
        if (File.Exists(configPath))
        {
            JsonObject? config;
            try
            {
                config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject;
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{configPath}: not valid JSON: {e.Message}", e);
            }
            if (config is null) throw new InvalidDataException($"{configPath}: not a JSON object");
            lowercase = Flag(config, "do_lower_case", configPath) ?? true;
            stripAccents = Flag(config, "strip_accents", configPath);
        }
        return BertWordPieceTokenizer.FromVocabulary(Path.Combine(folder, "vocab.txt"), lowercase, stripAccents);
    }

    /// <summary>A boolean setting: null when absent or JSON null (Hugging Face's "use the default").</summary>
    static bool? Flag(JsonObject config, string name, string path)
    {
        var node = config[name];
        if (node is null) return null;
        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{path}: \"{name}\" must be true, false or null, found {node.ToJsonString()}"),
        };
    }
}
