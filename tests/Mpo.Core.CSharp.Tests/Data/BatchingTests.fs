module Mpo.Core.Tests.BatchingTests

open System
open System.IO
open Expecto
open TorchSharp
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Tokenization
open Mpo.Core.Tests.Support

let private bert = lazy (BertWordPieceTokenizer.FromVocabulary(repoFile "data/tokenizers/bert-base-uncased/vocab.txt", lowercase = true))
let private gpt2 =
    lazy (let folder = Path.GetDirectoryName(repoFile "data/tokenizers/gpt2/encoder.json")
          Gpt2Tokenizer.FromFiles(Path.Combine(folder, "encoder.json"), Path.Combine(folder, "vocab.bpe")))
/// A SentencePiece model with <pad> 0 and </s> ([SEP]) 3, standing in for T5's (none can be had offline).
let private sentencePiece = lazy (SentencePieceTextTokenizer.FromModel(repoFile "tests/fixtures/tokenizers/sentencepiece-unigram.model"))

let private root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(repoFile "data/tasks/SHA256SUMS"), "..", ".."))
let private lmDev = lazy (TextTasks.Read(root, TextTasks.Lm, "dev"))
let private spamDev = lazy (TextTasks.Read(root, TextTasks.Spam, "dev"))

let private rows (m: TokenMatrix) = [ for r in 0 .. m.Rows - 1 -> m.RowArray r ]
let private longs (ids: int[]) = Array.map int64 ids

/// Binomial bound: |k − n·p| ≤ z·√(n·p·(1 − p)). With z = 5 a correct sampler fails about once in 3.5 million
/// seeds; the seeds here are fixed, so a pass is reproducible.
let private withinBinomial (n: int) (p: float) (k: int) message =
    let mean = float n * p
    let sd = sqrt (float n * p * (1.0 - p))
    if abs (float k - mean) > 5.0 * sd then
        failtestf "%s: %d of %d, expected %.1f ± %.1f (5 sd)" message k n mean (5.0 * sd)

let private randomTests =
    testList "SeededRandom" [
        test "SplitMix64's published sequence from state 0" {
            let g = SeededRandom(0UL)
            Expect.equal [ g.NextUInt64(); g.NextUInt64(); g.NextUInt64() ]
                [ 0xE220A8397B1DCDAFUL; 0x6E789E6AA1B965F4UL; 0x06C45D188009454FUL ] "Steele, Lea & Flood's reference values" }

        test "a key names a stream: equal keys agree, any differing part (or order) gives another stream" {
            let draws (g: SeededRandom) = List.init 8 (fun _ -> g.NextUInt64())
            let at seed purpose epoch batch = draws (SeededRandom.For(seed, purpose, epoch, batch))
            let reference = at 7L RandomPurpose.Masking 2 3
            Expect.equal (at 7L RandomPurpose.Masking 2 3) reference "same key, same numbers"
            for other in [ at 8L RandomPurpose.Masking 2 3; at 7L RandomPurpose.Order 2 3
                           at 7L RandomPurpose.Masking 3 3; at 7L RandomPurpose.Masking 2 4; at 7L RandomPurpose.Masking 3 2 ] do
                Expect.notEqual other reference "another key" }

        test "NextInt is uniform (chi-square over 10 values) and Shuffle permutes" {
            let g = SeededRandom.For(1L, RandomPurpose.Order, 0, 0)
            let counts = Array.zeroCreate 10
            for _ in 1 .. 100000 do
                let k = g.NextInt 10
                counts[k] <- counts[k] + 1
            let chi2 = counts |> Array.sumBy (fun c -> (float c - 10000.0) ** 2.0 / 10000.0)
            // 9 degrees of freedom: P(χ² > 33.7) = 1e-4.
            Expect.isLessThan chi2 33.7 $"chi-square {chi2}"
            let items = Array.init 50 id
            g.Shuffle(Span items)
            Expect.equal (Array.sort items) (Array.init 50 id) "a permutation"
            Expect.notEqual items (Array.init 50 id) "not the identity" }
    ]

let private scheduleTests =
    testList "BatchSchedule" [
        test "every epoch visits every example once, in batches of the given size" {
            for n, size in [ 10, 3; 12, 4; 1, 5; 100, 7 ] do
                let s = BatchSchedule(n, size, 42L)
                for epoch in 0 .. 3 do
                    let batches = List.ofSeq (s.Epoch epoch)
                    Expect.equal batches.Length s.BatchesPerEpoch $"n={n} b={size}: batches"
                    Expect.equal (batches |> List.collect (fun b -> List.ofArray b.Examples) |> List.sort) [ 0 .. n - 1 ] "a permutation"
                    Expect.isTrue (batches |> List.forall (fun b -> b.Examples.Length = size || b = List.last batches)) "full batches but the last"
                    Expect.equal (batches |> List.map (fun b -> b.Key.Epoch, b.Key.Index)) [ for i in 0 .. batches.Length - 1 -> epoch, i ] "keys"
                    Expect.equal (batches |> List.map _.Step) [ for i in 0 .. batches.Length - 1 -> int64 (epoch * s.BatchesPerEpoch + i) ] "steps" }

        test "dropLast leaves out the short batch; no shuffle keeps file order" {
            let s = BatchSchedule(10, 3, 1L, dropLast = true)
            Expect.equal s.BatchesPerEpoch 3 "10 // 3"
            Expect.isTrue (s.Epoch 0 |> Seq.forall (fun b -> b.Examples.Length = 3)) "all full"
            let ordered = BatchSchedule(10, 4, 1L, shuffle = false)
            Expect.equal (ordered.Epoch 5 |> Seq.collect _.Examples |> List.ofSeq) [ 0 .. 9 ] "file order in every epoch"
            throwsWith<ArgumentOutOfRangeException> [ "leaves no batch" ] (fun () -> BatchSchedule(2, 3, 1L, dropLast = true) |> ignore) |> ignore }

        test "the order is a function of (seed, epoch): reshuffled each epoch, reproducible, seed-dependent" {
            let a, b = BatchSchedule(200, 8, 5L), BatchSchedule(200, 8, 5L)
            Expect.equal (a.Order 3) (b.Order 3) "two schedules, same seed"
            Expect.notEqual (a.Order 3) (a.Order 4) "epochs differ"
            Expect.notEqual (a.Order 3) (BatchSchedule(200, 8, 6L).Order 3) "seeds differ" }

        test "resuming at any step yields exactly the batches an uninterrupted run sees from there" {
            let s = BatchSchedule(23, 5, 99L)
            let straight = s.From 0L |> Seq.take 40 |> Array.ofSeq
            for step in [ 0L; 1L; 4L; 5L; 6L; 17L; 33L ] do
                let resumed = BatchSchedule(23, 5, 99L).From step |> Seq.take (40 - int step) |> Array.ofSeq
                for i in 0 .. resumed.Length - 1 do
                    let expected = straight[int step + i]
                    Expect.equal (resumed[i].Step, resumed[i].Key, List.ofArray resumed[i].Examples)
                        (expected.Step, expected.Key, List.ofArray expected.Examples) $"from {step}, batch {i}"
                Expect.equal (s.At step).Examples straight[int step].Examples $"At {step}" }
    ]

/// Pairs from the spam dev split: subject and body halves, so both sides vary in length.
let private pairs n =
    spamDev.Value.Examples |> Seq.take n |> Seq.map (fun e ->
        let words = e.TextA.Split(' ')
        String.Join(' ', words[.. words.Length / 3]), String.Join(' ', words[words.Length / 3 + 1 ..])) |> List.ofSeq

let private classificationTests =
    testList "sequence classification" [
        test "BERT: every row is BertWordPieceTokenizer.EncodeInputs, padded with [PAD] to the batch's longest" {
            let t = bert.Value
            for maxLength in [ 16; 64; 512 ] do
                for pair in [ false; true ] do
                    let texts = pairs 9
                    let examples = [ for i, (a, b) in List.indexed texts -> TextExample(string i, a, (if pair then b else null), Nullable(i % 2), Nullable()) ]
                    let collator = SequenceClassificationCollator(SequenceFraming.For t, maxLength)
                    let batch = collator.Collate(SequenceClassificationCollator.Encode(t, examples), BatchKey(0L, 0, 0))
                    let references = [ for a, b in texts -> t.EncodeInputs(a, (if pair then b else null), maxLength) ]
                    let width = references |> List.map _.InputIds.Length |> List.max
                    Expect.equal batch.InputIds.Columns width $"max={maxLength} pair={pair}: padded to the longest row"
                    for r, reference in List.indexed references do
                        let n = reference.InputIds.Length
                        let ids, types, mask = batch.InputIds.RowArray r, batch.TokenTypeIds.RowArray r, batch.AttentionMask.RowArray r
                        Expect.equal ids[.. n - 1] (longs reference.InputIds) $"row {r}: ids"
                        Expect.equal types[.. n - 1] (longs reference.TokenTypeIds) $"row {r}: token types"
                        Expect.isTrue (ids[n ..] |> Array.forall ((=) 0L)) $"row {r}: [PAD] after"
                        Expect.equal mask (Array.init width (fun c -> if c < n then 1L else 0L)) $"row {r}: mask"
                        Expect.isTrue (types[n ..] |> Array.forall ((=) 0L)) $"row {r}: padding has type 0"
                    Expect.equal (List.ofArray batch.ClassLabels) [ for i in 0 .. 8 -> int64 (i % 2) ] "class labels" }

        test "GPT-2: the texts' ids one after the other, no special token, padded with <|endoftext|>, no token types" {
            let t = gpt2.Value
            let a, b = "The committee met on Tuesday.", " It adjourned without a vote."
            let collator = SequenceClassificationCollator(SequenceFraming.For t, 6)
            let batch = collator.Collate([ EncodedExample(t.Encode a, t.Encode b, Nullable 1, Nullable()); EncodedExample(t.Encode "Hi", null, Nullable 0, Nullable()) ], BatchKey())
            let ea, eb = t.Encode a, t.Encode b
            // longest_first over 6 tokens: both sides exceed 3, so each keeps 3.
            Expect.equal (batch.InputIds.RowArray 0) (longs (Array.append ea[.. 2] eb[.. 2])) "truncated pair"
            Expect.equal (batch.InputIds.RowArray 1) (longs (Array.append (t.Encode "Hi") (Array.create (6 - (t.Encode "Hi").Length) 50256))) "padded with 50256"
            Expect.isNull batch.TokenTypeIds "GPT-2 takes no token types"
            Expect.equal (batch.AttentionMask.RowArray 1 |> Array.sum) (int64 (t.Encode "Hi").Length) "mask counts the real tokens" }

        test "SentencePiece (T5): </s> after each text, <pad> after that" {
            let t = sentencePiece.Value
            let eos, pad = t.SpecialTokens.EndOfSequence.Value, t.SpecialTokens.Padding.Value
            let a, b = t.Encode "hello world", t.Encode "a longer second text here"
            let batch = SequenceClassificationCollator(SequenceFraming.For t, 64).Collate([ EncodedExample(a, b, Nullable(), Nullable 2.5); EncodedExample(a, null, Nullable(), Nullable 0.0) ], BatchKey())
            Expect.equal (batch.InputIds.RowArray 0) (longs (Array.concat [ a; [| eos |]; b; [| eos |] ])) "A </s> B </s>"
            Expect.equal (batch.InputIds.RowArray 1) (longs (Array.concat [ a; [| eos |]; Array.create (b.Length + 1) pad ])) "A </s> <pad>…"
            Expect.equal (List.ofArray batch.Scores) [ 2.5f; 0.0f ] "regression targets"
            Expect.isNull batch.ClassLabels "no classes" }

        test "labels: all classes, all scores or none; a mixed batch is refused" {
            let c = SequenceClassificationCollator(SequenceFraming.Gpt2 50256, 8)
            let e label score = EncodedExample([| 1; 2 |], null, label, score)
            let unlabelled = c.Collate([ e (Nullable()) (Nullable()) ], BatchKey())
            Expect.isTrue (isNull unlabelled.ClassLabels && isNull unlabelled.Scores) "test split: no labels"
            throwsWith<ArgumentException> [ "all have a label, all a score, or all neither" ]
                (fun () -> c.Collate([ e (Nullable 1) (Nullable()); e (Nullable()) (Nullable()) ], BatchKey()) |> ignore) |> ignore
            throwsWith<ArgumentOutOfRangeException> [ "maxLength" ] (fun () -> SequenceClassificationCollator(SequenceFraming.Bert bert.Value.SpecialTokens, 3) |> ignore) |> ignore }

        test "ModelInputs: int64 [batch, seq] ids, mask and types; int64 classes; float32 scores" {
            use scope = torch.NewDisposeScope()
            let t = bert.Value
            let examples = [ for a, b in pairs 4 -> TextExample("x", a, b, Nullable 1, Nullable()) ]
            let batch = SequenceClassificationCollator(SequenceFraming.For t, 32).Collate(SequenceClassificationCollator.Encode(t, examples), BatchKey())
            let inputs = batch.ToModelInputs()
            Expect.equal inputs.InputIds.shape [| 4L; int64 batch.InputIds.Columns |] "ids shape"
            Expect.equal inputs.InputIds.dtype torch.int64 "ids dtype"
            Expect.equal (inputs.AttentionMask.data<int64>().ToArray()) (rows batch.AttentionMask |> Array.concat) "mask values"
            Expect.equal (inputs.TokenTypeIds.data<int64>().ToArray()) (rows batch.TokenTypeIds |> Array.concat) "type values"
            Expect.equal (inputs.Labels.data<int64>().ToArray()) [| 1L; 1L; 1L; 1L |] "classes"
            let scored = TokenBatch(batch.InputIds, batch.AttentionMask, Scores = [| 0.5f; 1.0f; 2.0f; 4.5f |]).ToModelInputs()
            Expect.equal scored.Labels.dtype torch.float32 "scores are float32"
            Expect.isNull (TokenBatch(batch.InputIds, batch.AttentionMask).ToModelInputs().Labels) "no labels" }
    ]

let private documentsOf (t: ITextTokenizer) = lmDev.Value.DocumentTexts() |> Seq.map t.Encode |> Array.ofSeq

let private blockTests =
    testList "blocks" [
        test "blocks cover the stream exactly: documents, separators, nothing lost or repeated" {
            let t = gpt2.Value
            let documents = documentsOf t
            let stream = TokenBlocks.Concatenate(documents, Nullable t.EndOfTextId)
            Expect.equal stream.Length ((documents |> Array.sumBy _.Length) + documents.Length - 1) "one separator between two documents"
            // The documents come back by splitting at the separator (it never occurs inside them).
            let pieces = ResizeArray [ ResizeArray<int>() ]
            for id in stream do
                if id = t.EndOfTextId then pieces.Add(ResizeArray()) else pieces[pieces.Count - 1].Add id
            Expect.equal (pieces |> Seq.map Array.ofSeq |> List.ofSeq) (List.ofArray documents) "documents in order"
            for length in [ 1; 7; 128; 1024 ] do
                let blocks = TokenBlocks.Cut(stream, length)
                Expect.equal (Array.concat blocks) stream $"length {length}: the blocks are the stream"
                Expect.isTrue (blocks |> Seq.take (blocks.Count - 1) |> Seq.forall (fun b -> b.Length = length)) "full blocks but the last"
                let dropped = TokenBlocks.Cut(stream, length, dropRemainder = true)
                Expect.equal dropped.Count (stream.Length / length) "dropRemainder: whole blocks only"
                Expect.equal (Array.concat dropped) stream[.. dropped.Count * length - 1] "a prefix of the stream" }

        test "causal LM: labels are the ids (the model shifts), -100 and mask 0 on padding" {
            let t = gpt2.Value
            let blocks = TokenBlocks.Build(documentsOf t, Nullable t.EndOfTextId, 64)
            let items = [| blocks[0]; blocks[blocks.Count - 1] |]
            let batch = CausalLmCollator(t.EndOfTextId).Collate(items, BatchKey())
            Expect.equal (batch.InputIds.RowArray 0) (longs items[0]) "a full block"
            Expect.equal (batch.Labels.RowArray 0) (longs items[0]) "labels = input ids"
            let n = items[1].Length
            Expect.isLessThan n 64 "the dev stream's last block is short"
            Expect.equal (batch.Labels.RowArray 1) (Array.append (longs items[1]) (Array.create (64 - n) -100L)) "-100 on padding"
            Expect.equal (batch.AttentionMask.RowArray 1) (Array.init 64 (fun c -> if c < n then 1L else 0L)) "mask"
            Expect.isNull batch.TokenTypeIds "no token types" }
    ]

/// BERT blocks of the lm dev split, framed to 128 positions.
let private bertBlocks = lazy (let c = MaskedLmCollator.For(bert.Value) in TokenBlocks.Build(documentsOf bert.Value, Nullable 102, c.BlockLength 128))

let private maskingTests =
    testList "masked LM" [
        test "15% of the non-special tokens selected; of those 80% [MASK], 10% random, 10% kept (binomial bounds)" {
            let t = bert.Value
            let collator = MaskedLmCollator.For(t)
            let blocks = bertBlocks.Value |> Seq.take 200 |> Array.ofSeq
            let batch = collator.Collate(blocks, BatchKey(3L, 0, 0))
            let mutable candidates, selected, masked, replaced, kept = 0, 0, 0, 0, 0
            for r in 0 .. blocks.Length - 1 do
                let original = Array.concat [ [| 101 |]; blocks[r]; [| 102 |] ]
                let ids, labels = batch.InputIds.RowArray r, batch.Labels.RowArray r
                for c in 0 .. batch.InputIds.Columns - 1 do
                    if c >= original.Length then
                        Expect.equal (ids[c], labels[c]) (0L, -100L) "padding: [PAD], no label"
                    elif original[c] = 101 || original[c] = 102 || original[c] = 100 then
                        Expect.equal (ids[c], labels[c]) (int64 original[c], -100L) "special tokens are never selected"
                    else
                        candidates <- candidates + 1
                        if labels[c] = -100L then
                            Expect.equal ids[c] (int64 original[c]) "an unselected token is unchanged"
                        else
                            selected <- selected + 1
                            Expect.equal labels[c] (int64 original[c]) "the label is the original token"
                            if ids[c] = 103L then masked <- masked + 1
                            elif ids[c] = int64 original[c] then kept <- kept + 1
                            else replaced <- replaced + 1
            Expect.isGreaterThan candidates 20000 "enough tokens for tight bounds"
            withinBinomial candidates 0.15 selected "selected"
            // A random replacement equals the original or [MASK] with probability 2/30522: negligible here.
            withinBinomial selected 0.8 masked "[MASK]"
            withinBinomial selected 0.1 replaced "random"
            withinBinomial selected 0.1 kept "kept" }

        test "whole words: a word's pieces are selected together; 15% of the words" {
            let t = bert.Value
            let collator = MaskedLmCollator.For(t, wholeWords = true)
            let continues id = t.Decode([| id |]).StartsWith "##"
            let blocks = bertBlocks.Value |> Seq.take 200 |> Array.ofSeq
            let batch = collator.Collate(blocks, BatchKey(4L, 1, 2))
            let mutable words, selectedWords, splitWords = 0, 0, 0
            for r in 0 .. blocks.Length - 1 do
                let original = Array.concat [ [| 101 |]; blocks[r]; [| 102 |] ]
                let labels = batch.Labels.RowArray r
                // Words: a non-continuation token and the continuation pieces after it (specials stand alone).
                let mutable c = 1
                while c < original.Length - 1 do
                    let mutable e = c + 1
                    if original[c] <> 102 then
                        while e < original.Length - 1 && continues original[e] do e <- e + 1
                        let picked = [ for k in c .. e - 1 -> labels[k] <> -100L ]
                        words <- words + 1
                        if List.forall id picked then selectedWords <- selectedWords + 1
                        elif List.exists id picked then splitWords <- splitWords + 1
                    c <- e
            Expect.equal splitWords 0 "no word partly selected"
            withinBinomial words 0.15 selectedWords "selected words" }

        test "masks are a function of the batch key" {
            let collator = MaskedLmCollator.For(bert.Value)
            let blocks = bertBlocks.Value |> Seq.take 8 |> Array.ofSeq
            let labels key = rows (collator.Collate(blocks, key)).Labels
            Expect.equal (labels (BatchKey(1L, 2, 3))) (labels (BatchKey(1L, 2, 3))) "same key, same masks"
            for other in [ BatchKey(2L, 2, 3); BatchKey(1L, 3, 3); BatchKey(1L, 2, 4) ] do
                Expect.notEqual (labels other) (labels (BatchKey(1L, 2, 3))) $"{other}: other masks" }
    ]

/// Puts the target's spans back into the input's sentinels: the inverse of span corruption.
let private uncorrupt (sentinels: int[]) (eos: int) (input: int[]) (target: int[]) =
    let spans = Collections.Generic.Dictionary<int, ResizeArray<int>>()
    let mutable current = -1
    for id in target[.. target.Length - 2] do
        match Array.tryFindIndex ((=) id) sentinels with
        | Some k -> current <- k; spans[k] <- ResizeArray()
        | None -> spans[current].Add id
    Expect.equal target[target.Length - 1] eos "the target ends with </s>"
    Expect.equal input[input.Length - 1] eos "the input ends with </s>"
    [| for id in input[.. input.Length - 2] do
           match Array.tryFindIndex ((=) id) sentinels with
           | Some k -> yield! spans[k]
           | None -> yield id |]

let private spanTests =
    let sentinels = SpanCorruptionCollator.T5Sentinels(32100)
    let collator = SpanCorruptionCollator(sentinels, 1, 0)
    testList "span corruption" [
        test "T5's sentinels and lengths: <extra_id_0> = 32099; 512 inputs come from 568 tokens with 114 targets" {
            Expect.equal sentinels[.. 2] [| 32099; 32098; 32097 |] "from the end of the vocabulary"
            Expect.equal sentinels.Length 100 "100 sentinels"
            Expect.equal (SpanCorruptionCollator.Lengths 512) (struct (568, 114)) "Hugging Face's run_t5_mlm_flax values"
            // The values below are those of Hugging Face's compute_input_and_target_lengths, run in Python.
            Expect.equal (SpanCorruptionCollator.Lengths 128) (struct (141, 29)) "128 → 141 tokens, 29 targets"
            Expect.equal (SpanCorruptionCollator.Lengths 64) (struct (70, 14)) "64 → 70 tokens, 14 targets"
            Expect.equal (SpanCorruptionCollator.Lengths(4, 0.5, 1.0)) (struct (3, 4)) "density 0.5: the 'minor hack' trims a token" }

        test "noise masks: round(L·0.15) noise tokens in round(noise/3) spans, clean first, noise last" {
            let random = SeededRandom.For(11L, RandomPurpose.SpanCorruption, 0, 0)
            for length in [ 2; 3; 10; 57; 141; 568; 1000 ] do
                for _ in 1 .. 20 do
                    let mask = SpanCorruptionCollator.NoiseMask(length, 0.15, 3.0, random)
                    let noise = mask |> Array.filter id |> Array.length
                    let expectedNoise = Math.Clamp(int (Math.Round(float length * 0.15)), 1, length - 1)
                    Expect.equal noise expectedNoise $"L={length}: noise tokens"
                    let spans = Seq.pairwise (Seq.append [ false ] mask) |> Seq.filter (fun (a, b) -> not a && b) |> Seq.length
                    let expectedSpans = max 1 (int (Math.Round(float (min noise (length - noise)) / 3.0)))
                    Expect.equal spans expectedSpans $"L={length}: spans"
                    Expect.isFalse mask[0] "starts clean"
                    Expect.isTrue mask[length - 1] "ends with noise"
                    if length >= 141 then
                        let mean = float noise / float spans
                        Expect.isTrue (mean >= 2.5 && mean <= 3.5) $"L={length}: mean span {mean}" }

        test "span lengths are a uniform random composition: P(first span = k) = (5 − k)/10 for 6 tokens in 3 spans" {
            // L = 20, density 0.3, mean 2: 6 noise tokens in round(6/2) = 3 spans; C(5, 2) = 10 compositions.
            let random = SeededRandom.For(12L, RandomPurpose.SpanCorruption, 0, 0)
            let n = 20000
            let counts = Array.zeroCreate 7
            for _ in 1 .. n do
                let mask = SpanCorruptionCollator.NoiseMask(20, 0.3, 2.0, random)
                let first = mask |> Array.skipWhile not |> Array.takeWhile id |> Array.length
                counts[first] <- counts[first] + 1
            for k in 1 .. 4 do
                withinBinomial n (float (5 - k) / 10.0) counts[k] $"first span of length {k}" }

        test "round trip: the target's spans put back into the input's sentinels give the block exactly" {
            let t = sentencePiece.Value
            let blocks = TokenBlocks.Build(documentsOf t, Nullable 3, 141)
            let batch = collator.Collate(blocks |> Seq.take 32 |> Array.ofSeq, BatchKey(5L, 0, 7))
            for r in 0 .. 31 do
                let input = batch.InputIds.RowArray r |> Array.map int
                let target = batch.Labels.RowArray r |> Array.filter ((<>) -100L) |> Array.map int
                Expect.equal input.Length 128 "141 tokens corrupt to exactly 128 inputs"
                Expect.equal target.Length 29 "and 29 targets"
                Expect.equal (uncorrupt sentinels 1 input target) blocks[r] $"row {r}"
            // Random blocks and lengths, including the ones a short last block has.
            let random = Random 13
            for trial in 1 .. 300 do
                let block = Array.init (random.Next(2, 700)) (fun _ -> random.Next(5, 32000))
                let mask = SpanCorruptionCollator.NoiseMask(block.Length, 0.15, 3.0, SeededRandom.For(int64 trial, RandomPurpose.SpanCorruption, 0, 0))
                let struct (input, target) = collator.Corrupt(ReadOnlySpan block, ReadOnlySpan mask)
                Expect.equal (uncorrupt sentinels 1 input target) block $"trial {trial}" }

        test "the documented example, and short rows padded: inputs with <pad> and mask 0, labels with -100" {
            let a, b, c, d, e, f, g, h = 10, 11, 12, 13, 14, 15, 16, 17
            let struct (input, target) =
                collator.Corrupt(ReadOnlySpan [| a; b; c; d; e; f; g; h |], ReadOnlySpan [| false; false; true; true; false; false; true; false |])
            Expect.equal input [| a; b; 32099; e; f; 32098; h; 1 |] "a b <X0> e f <X1> h </s>"
            Expect.equal target [| 32099; c; d; 32098; g; 32097; 1 |] "<X0> c d <X1> g <X2> </s>"
            let batch = collator.Collate([| Array.init 40 ((+) 100); Array.init 10 ((+) 100) |], BatchKey())
            let n = batch.AttentionMask.RowArray 1 |> Array.sum |> int
            Expect.isTrue ((batch.InputIds.RowArray 1)[n ..] |> Array.forall ((=) 0L)) "<pad> after the short row"
            Expect.isTrue ((batch.Labels.RowArray 1) |> Array.exists ((=) -100L)) "-100 after the short target"
            throwsWith<ArgumentException> [ "Block 0 has 1 token(s)" ] (fun () -> collator.Collate([| [| 5 |] |], BatchKey()) |> ignore) |> ignore
            throwsWith<ArgumentException> [ "more than 1 spans" ]
                (fun () -> SpanCorruptionCollator([| 99 |], 1, 0).Corrupt(ReadOnlySpan [| 1; 2; 3; 4 |], ReadOnlySpan [| false; true; false; true |]) |> ignore) |> ignore }
    ]

let private streamTests =
    test "a resumed stream makes the same batches, masks and corruption included" {
        let items = bertBlocks.Value |> Array.ofSeq
        let masked = BatchStream(items, BatchSchedule(items.Length, 16, 77L), MaskedLmCollator.For(bert.Value))
        let t5Items = TokenBlocks.Build(documentsOf sentencePiece.Value, Nullable 3, 141, dropRemainder = true) |> Array.ofSeq
        let corrupted = BatchStream(t5Items, BatchSchedule(t5Items.Length, 8, 78L), SpanCorruptionCollator(SpanCorruptionCollator.T5Sentinels 32100, 3, 0))
        let check (stream: BatchStream<int[]>) name =
            let total = stream.Schedule.BatchesPerEpoch + 3
            let straight = stream.From 0L |> Seq.take total |> Array.ofSeq
            for step in [ 1L; int64 stream.Schedule.BatchesPerEpoch - 1L; int64 stream.Schedule.BatchesPerEpoch + 1L ] do
                let resumed = stream.From step |> Seq.take (total - int step) |> Array.ofSeq
                for i in 0 .. resumed.Length - 1 do
                    let struct (b, tokens) = resumed[i]
                    let struct (b0, tokens0) = straight[int step + i]
                    Expect.equal b.Key b0.Key $"{name}: key at step {step} + {i}"
                    Expect.equal (rows tokens.InputIds) (rows tokens0.InputIds) $"{name}: inputs at step {step} + {i}"
                    Expect.equal (rows tokens.Labels) (rows tokens0.Labels) $"{name}: labels at step {step} + {i}"
        check masked "masked LM"
        check corrupted "span corruption" }

[<Tests>]
let tests =
    testList "Data.Batching" [ randomTests; scheduleTests; classificationTests; blockTests; maskingTests; spanTests; streamTests ]
