module Mpo.Core.Tests.TokenizerTests

open System
open System.IO
open System.Text.Json
open Expecto
open Mpo.Tokenization

let private repoFile = Mpo.Tests.RepoFiles.find

let private gpt2Folder = lazy (Path.GetDirectoryName(repoFile "data/tokenizers/gpt2/encoder.json"))
let private bertVocabulary = lazy (repoFile "data/tokenizers/bert-base-uncased/vocab.txt")

let private gpt2 =
    lazy (Gpt2Tokenizer.FromFiles(Path.Combine(gpt2Folder.Value, "encoder.json"), Path.Combine(gpt2Folder.Value, "vocab.bpe")))
let private bertUncased = lazy (BertWordPieceTokenizer.FromVocabulary(bertVocabulary.Value, lowercase = true))
let private bertCased = lazy (BertWordPieceTokenizer.FromVocabulary(bertVocabulary.Value, lowercase = false))

/// One string of a fixture file (tools/tokenizers/make-fixtures.mjs) with the reference encoder's answer.
type private Case = { Name: string; Text: string; Ids: int[]; Tokens: string[]; Decoded: string }

/// One model input of bert-uncased.json's "pairs" (Second is null for a single sequence).
type private PairCase =
    { Name: string; First: string; Second: string; MaxLength: int
      InputIds: int[]; TokenTypeIds: int[]; AttentionMask: int[]; Tokens: string[] }

let private fixture (file: string) =
    JsonDocument.Parse(File.ReadAllText(repoFile $"tests/fixtures/tokenizers/{file}")).RootElement

let private ints (e: JsonElement) = [| for x in e.EnumerateArray() -> x.GetInt32() |]
let private strings (e: JsonElement) = [| for x in e.EnumerateArray() -> x.GetString() |]

let private cases file =
    [ for c in (fixture file).GetProperty("cases").EnumerateArray() ->
        { Name = c.GetProperty("name").GetString(); Text = c.GetProperty("text").GetString()
          Ids = ints (c.GetProperty "ids"); Tokens = strings (c.GetProperty "tokens")
          Decoded = c.GetProperty("decoded").GetString() } ]

let private pairCases () =
    [ for c in (fixture "bert-uncased.json").GetProperty("pairs").EnumerateArray() ->
        { Name = c.GetProperty("name").GetString(); First = c.GetProperty("first").GetString()
          Second = c.GetProperty("second").GetString(); MaxLength = c.GetProperty("maxLength").GetInt32()
          InputIds = ints (c.GetProperty "inputIds"); TokenTypeIds = ints (c.GetProperty "tokenTypeIds")
          AttentionMask = ints (c.GetProperty "attentionMask"); Tokens = strings (c.GetProperty "tokens") } ]

/// Ids compared with the reference tokens alongside, so a failure says which piece went astray.
let private expectIds (actual: int[]) (c: Case) =
    Expect.sequenceEqual actual c.Ids $"ids of {JsonSerializer.Serialize c.Text} (reference tokens {JsonSerializer.Serialize c.Tokens})"

/// Support.throwsWith, for call sites that need only the check.
let private throwsWith<'e when 'e :> exn> (fragments: string list) (f: unit -> unit) = Mpo.Core.Tests.Support.throwsWith<'e> fragments f |> ignore

let private inTemp (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-tok-")
    try action dir.FullName finally dir.Delete true

let private copyInto (folder: string) (source: string) (name: string) = File.Copy(source, Path.Combine(folder, name))

let private gpt2Tests =
    testList "GPT-2" [
        testList "ids match Hugging Face tokenizers and gpt-3-encoder" [
            for c in cases "gpt2.json" -> test c.Name { expectIds (gpt2.Value.Encode c.Text) c }
        ]
        testList "decode(encode(x)) = x (byte level is lossless)" [
            for c in cases "gpt2.json" ->
                test c.Name { Expect.equal (gpt2.Value.Decode(gpt2.Value.Encode c.Text)) c.Text "round trip" }
        ]
        test "vocabulary size and <|endoftext|>" {
            let t = gpt2.Value
            Expect.equal t.VocabularySize 50257 "50,000 merges + 256 bytes + <|endoftext|>"
            Expect.equal t.EndOfTextId 50256 "<|endoftext|>"
            Expect.equal t.SpecialTokens (SpecialTokenIds(BeginningOfSequence = 50256, EndOfSequence = 50256)) "special ids"
            let ids = t.Encode "Hello<|endoftext|>world"
            Expect.equal (t.Decode ids) "Hello<|endoftext|>world" "kept by default"
            Expect.equal (t.Decode(ids, skipSpecialTokens = true)) "Helloworld" "skipped on request"
        }
        test "merges out of id order are refused, naming the file and line" {
            inTemp (fun dir ->
                copyInto dir (Path.Combine(gpt2Folder.Value, "encoder.json")) "vocab.json"
                let lines = File.ReadAllLines(Path.Combine(gpt2Folder.Value, "vocab.bpe"))
                // "Ġ t" (id 256) and "Ġ a" (id 257) swapped: a rank-based BPE would apply them in the wrong order.
                let swapped = Array.concat [ lines.[0..0]; [| lines.[2]; lines.[1] |]; lines.[3..] ]
                let merges = Path.Combine(dir, "merges.txt")
                File.WriteAllLines(merges, swapped)
                throwsWith<InvalidDataException> [ merges + ":3"; "merge order" ] (fun () ->
                    Gpt2Tokenizer.FromFiles(Path.Combine(dir, "vocab.json"), merges) |> ignore))
        }
        test "a vocabulary without <|endoftext|> is refused, naming the file" {
            inTemp (fun dir ->
                let vocabulary = Path.Combine(dir, "vocab.json")
                File.WriteAllText(vocabulary, """{"a": 0, "b": 1}""")
                copyInto dir (Path.Combine(gpt2Folder.Value, "vocab.bpe")) "merges.txt"
                throwsWith<InvalidDataException> [ vocabulary; "<|endoftext|>" ] (fun () ->
                    Gpt2Tokenizer.FromFiles(vocabulary, Path.Combine(dir, "merges.txt")) |> ignore))
        }
        test "missing files name the path" {
            inTemp (fun dir ->
                let vocabulary = Path.Combine(dir, "encoder.json")
                throwsWith<FileNotFoundException> [ vocabulary ] (fun () ->
                    Gpt2Tokenizer.FromFiles(vocabulary, Path.Combine(dir, "vocab.bpe")) |> ignore))
        }
    ]

let private bertTests =
    testList "BERT" [
        testList "uncased ids match Hugging Face tokenizers (bert-base-uncased)" [
            for c in cases "bert-uncased.json" -> test c.Name { expectIds (bertUncased.Value.Encode c.Text) c }
        ]
        testList "cased ids match Hugging Face tokenizers (bert-base-cased rules, uncased vocabulary)" [
            for c in cases "bert-cased.json" -> test c.Name { expectIds (bertCased.Value.Encode c.Text) c }
        ]
        testList "uncased decode matches Hugging Face tokenizers" [
            for c in cases "bert-uncased.json" ->
                test c.Name { Expect.equal (bertUncased.Value.Decode(c.Ids, skipSpecialTokens = true)) c.Decoded "decoded text" }
        ]
        testList "model inputs match Hugging Face tokenizers (pairs, truncation)" [
            for c in pairCases () ->
                test c.Name {
                    let inputs = bertUncased.Value.EncodeInputs(c.First, c.Second, c.MaxLength)
                    let tokens = JsonSerializer.Serialize c.Tokens
                    Expect.sequenceEqual inputs.InputIds c.InputIds $"input ids (reference tokens {tokens})"
                    Expect.sequenceEqual inputs.TokenTypeIds c.TokenTypeIds "token type ids"
                    Expect.sequenceEqual inputs.AttentionMask c.AttentionMask "attention mask"
                }
        ]
        test "padding to the maximum length" {
            let inputs = bertUncased.Value.EncodeInputs("hello world", "again", maxLength = 10, padToMaxLength = true)
            Expect.sequenceEqual inputs.InputIds [| 101; 7592; 2088; 102; 2153; 102; 0; 0; 0; 0 |] "[CLS] hello world [SEP] again [SEP] [PAD]…"
            Expect.sequenceEqual inputs.TokenTypeIds [| 0; 0; 0; 0; 1; 1; 0; 0; 0; 0 |] "B and its [SEP] are type 1, padding 0"
            Expect.sequenceEqual inputs.AttentionMask [| 1; 1; 1; 1; 1; 1; 0; 0; 0; 0 |] "padding is masked"
        }
        test "a maximum length with no room for a token is refused" {
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> bertUncased.Value.EncodeInputs("a", "b", maxLength = 3) |> ignore) "pair"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> bertUncased.Value.EncodeInputs("a", maxLength = 2) |> ignore) "single"
        }
        test "vocabulary size and special ids" {
            let t = bertUncased.Value
            Expect.equal t.VocabularySize 30522 "bert-base-uncased"
            Expect.equal t.SpecialTokens
                (SpecialTokenIds(Padding = 0, Unknown = 100, Classification = 101, Separator = 102, Mask = 103)) "special ids"
            Expect.isTrue (t.Lowercase && t.StripAccents) "uncased strips accents"
            Expect.isFalse (bertCased.Value.Lowercase || bertCased.Value.StripAccents) "cased keeps case and accents"
        }
        test "a vocabulary without BERT's special tokens is refused, naming the file" {
            inTemp (fun dir ->
                let vocabulary = Path.Combine(dir, "vocab.txt")
                File.WriteAllLines(vocabulary, [ "hello"; "world" ])
                throwsWith<InvalidDataException> [ vocabulary ] (fun () ->
                    BertWordPieceTokenizer.FromVocabulary(vocabulary, lowercase = true) |> ignore))
        }
        test "a missing vocabulary names the path" {
            inTemp (fun dir ->
                let vocabulary = Path.Combine(dir, "vocab.txt")
                throwsWith<FileNotFoundException> [ vocabulary ] (fun () ->
                    BertWordPieceTokenizer.FromVocabulary(vocabulary, lowercase = true) |> ignore))
        }
    ]

/// A SentencePiece fixture (tools/tokenizers/make-sentencepiece-fixtures.py): its model, opened on first use, and
/// its cases.
let private sentencePieceFixture name =
    let root = fixture $"sentencepiece-{name}.json"
    let model = lazy (SentencePieceTextTokenizer.FromModel(repoFile (root.GetProperty("model").GetString())))
    let cases =
        [ for c in root.GetProperty("cases").EnumerateArray() ->
            { Name = c.GetProperty("name").GetString(); Text = c.GetProperty("text").GetString()
              Ids = ints (c.GetProperty "ids"); Tokens = strings (c.GetProperty "pieces")
              Decoded = c.GetProperty("decoded").GetString() } ]
    root, model, cases

/// Strings on which Microsoft.ML.Tokenizers 2.0.1 does not reproduce Google's SentencePiece, by model: kept in the
/// fixtures and listed as skipped tests, so that the gap stays visible.
let private sentencePieceKnownGaps =
    Map [ ("unigram", "unusual whitespace"),
          "the library keeps U+000B, which the nmt_nfkc map deletes, and encodes it as <unk>" ]

/// Google's SentencePiece ids for each string, and its decoding of them.
let private sentencePieceModelTests name =
    let root, model, cases = sentencePieceFixture name
    let idsTest (c: Case) =
        match sentencePieceKnownGaps.TryFind((name, c.Name)) with
        | Some gap -> ptest $"{c.Name} (known gap: {gap})" { expectIds (model.Value.Encode c.Text) c }
        | None -> test c.Name { expectIds (model.Value.Encode c.Text) c }
    let special (key: string) =
        match root.GetProperty("specialIds").GetProperty(key).GetInt32() with
        | -1 -> Nullable()
        | id -> Nullable id
    testList $"{name} model (trained here; ids from Google's sentencepiece)" [
        testList "ids" [ for c in cases -> idsTest c ]
        testList "decode" [
            for c in cases -> test c.Name { Expect.equal (model.Value.Decode c.Ids) c.Decoded "decoded text" }
        ]
        test "vocabulary size and special ids" {
            Expect.equal model.Value.VocabularySize (root.GetProperty("vocabularySize").GetInt32()) "pieces"
            let s = model.Value.SpecialTokens
            Expect.equal (s.Padding, s.Unknown, s.BeginningOfSequence, s.EndOfSequence)
                (special "pad", special "unk", special "bos", special "eos") "pad, unk, bos, eos"
        }
    ]

let private sentencePieceTests =
    testList "SentencePiece" [
        sentencePieceModelTests "unigram"
        sentencePieceModelTests "bpe"
        // T5's layout (<pad> 0, </s> 1, <unk> 2, no beginning-of-sentence piece), which the library alone cannot load
        sentencePieceModelTests "no-bos"
        test "a missing model names the path" {
            inTemp (fun dir ->
                let model = Path.Combine(dir, "spiece.model")
                throwsWith<FileNotFoundException> [ model ] (fun () -> SentencePieceTextTokenizer.FromModel model |> ignore))
        }
        testList "a malformed model is refused, naming the file" [
            for name, bytes in [ "empty file", [||]
                                 "text file", "[PAD]\n[UNK]\nhello\n"B
                                 "random bytes", Array.init 4096 (fun i -> byte ((i * 7919 + 13) % 251)) ] ->
                test name {
                    inTemp (fun dir ->
                        let model = Path.Combine(dir, "spiece.model")
                        File.WriteAllBytes(model, bytes)
                        throwsWith<InvalidDataException> [ model ] (fun () -> SentencePieceTextTokenizer.FromModel model |> ignore))
                }
        ]
    ]

let private factoryTests =
    testList "FromFolder" [
        test "vocab.txt opens BERT, lower-cased unless tokenizer_config.json says otherwise" {
            inTemp (fun dir ->
                copyInto dir bertVocabulary.Value "vocab.txt"
                let uncased = Tokenizers.FromFolder dir
                Expect.isTrue ((uncased :?> BertWordPieceTokenizer).Lowercase) "Hugging Face's default"
                Expect.sequenceEqual (uncased.Encode "Café") [| 7668 |] "cafe"
                File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"do_lower_case": false, "strip_accents": null}""")
                let cased = Tokenizers.FromFolder dir :?> BertWordPieceTokenizer
                Expect.isFalse (cased.Lowercase || cased.StripAccents) "do_lower_case: false")
        }
        test "OpenAI's and Hugging Face's GPT-2 file names both open GPT-2" {
            for vocabulary, merges in [ "encoder.json", "vocab.bpe"; "vocab.json", "merges.txt" ] do
                inTemp (fun dir ->
                    copyInto dir (Path.Combine(gpt2Folder.Value, "encoder.json")) vocabulary
                    copyInto dir (Path.Combine(gpt2Folder.Value, "vocab.bpe")) merges
                    let t = Tokenizers.FromFolder dir
                    Expect.sequenceEqual (t.Encode "Hello world") [| 15496; 995 |] $"{vocabulary} + {merges}")
        }
        test "spiece.model opens SentencePiece (a malformed one is reported by name)" {
            inTemp (fun dir ->
                let model = Path.Combine(dir, "spiece.model")
                copyInto dir (repoFile "tests/fixtures/tokenizers/sentencepiece-unigram.model") "spiece.model"
                Expect.isTrue (Tokenizers.FromFolder dir :? SentencePieceTextTokenizer) "SentencePiece"
                File.WriteAllText(model, "not a model")
                throwsWith<InvalidDataException> [ model ] (fun () -> Tokenizers.FromFolder dir |> ignore))
        }
        test "a folder without tokenizer files is named" {
            inTemp (fun dir ->
                File.WriteAllText(Path.Combine(dir, "config.json"), "{}")
                throwsWith<InvalidDataException> [ dir; "no tokenizer files" ] (fun () -> Tokenizers.FromFolder dir |> ignore))
        }
        test "half of a GPT-2 pair is named" {
            inTemp (fun dir ->
                copyInto dir (Path.Combine(gpt2Folder.Value, "encoder.json")) "encoder.json"
                throwsWith<InvalidDataException> [ dir; "encoder.json without vocab.bpe" ] (fun () -> Tokenizers.FromFolder dir |> ignore))
        }
        test "files of two tokenizers are refused" {
            inTemp (fun dir ->
                copyInto dir bertVocabulary.Value "vocab.txt"
                File.WriteAllText(Path.Combine(dir, "spiece.model"), "")
                throwsWith<InvalidDataException> [ dir; "vocab.txt"; "spiece.model" ] (fun () -> Tokenizers.FromFolder dir |> ignore))
        }
        test "a missing folder is named" {
            let dir = Path.Combine(Path.GetTempPath(), "mpo-tok-missing-" + Guid.NewGuid().ToString("N"))
            throwsWith<DirectoryNotFoundException> [ dir ] (fun () -> Tokenizers.FromFolder dir |> ignore)
        }
    ]

[<Tests>]
let tests = testList "Tokenization" [ gpt2Tests; bertTests; sentencePieceTests; factoryTests ]
