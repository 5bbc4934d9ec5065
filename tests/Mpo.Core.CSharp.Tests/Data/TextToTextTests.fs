/// Classification read as text to text (T5): the formats (T5's GLUE prefixes and words, the bundled tasks' own
/// names), the collator's inputs and labels, and reading generated ids back into classes.
module Mpo.Core.Tests.TextToTextTests

open System
open System.IO
open Expecto
open Mpo.Data
open Mpo.Data.Batching
open Mpo.Tokenization
open Mpo.Core.Tests.Support

/// The bundled tiny T5's own SentencePiece vocabulary (<pad> 0, </s> 1).
let private t5 = lazy (Tokenizers.FromFolder(Path.GetDirectoryName(repoFile "data/tokenizers/t5-tiny-spiece/spiece.model")))
let private example a b label = TextExample("x", a, b, Nullable label, Nullable())
let private longs (ids: int[]) = Array.map int64 ids

[<Tests>]
let tests =
    testList "Data.TextToText" [
        test "formats: T5's GLUE prefixes, field order and class words; other tasks their own names" {
            let rte = TextToTextFormat.For GlueTasks.RTE
            Expect.equal (rte.Input(example "A cat sat." "A cat exists." 0)) "rte sentence1: A cat sat. sentence2: A cat exists." "RTE"
            Expect.equal (rte.Target 1) "not_entailment" "RTE class 1"
            let mnli = TextToTextFormat.For GlueTasks.MNLI
            Expect.equal (mnli.Input(example "P." "H." 0)) "mnli hypothesis: H. premise: P." "MNLI puts the hypothesis first"
            Expect.sequenceEqual (TextToTextFormat.For GlueTasks.CoLA).Targets [ "unacceptable"; "acceptable" ] "CoLA words by class index"
            Expect.equal ((TextToTextFormat.For GlueTasks.MRPC).Input(example "a" "b" 1)) "mrpc sentence1: a sentence2: b" "MRPC's columns renamed as T5 names them"
            let spam = TextToTextFormat.For TextTasks.Spam
            Expect.equal (spam.Input(example "Buy now" null 1)) "spam text: Buy now" "bundled: task and column name"
            Expect.sequenceEqual spam.Targets [ "ham"; "spam" ] "bundled: label names" }

        test "STS-B: T5's prefix, the score rounded to the nearest 0.2 with one decimal, answers parsed back" {
            let stsb = TextToTextFormat.For GlueTasks.STSB
            Expect.isTrue stsb.IsRegression "a regression format"
            Expect.equal (stsb.Input(TextExample("x", "A man sings.", "A man is singing.", Nullable(), Nullable 4.2))) "stsb sentence1: A man sings. sentence2: A man is singing." "input"
            Expect.equal [ for s in [ 3.77; 3.7; 0.0; 5.0; 2.1; 0.09 ] -> stsb.ScoreTarget s ] [ "3.8"; "3.8"; "0.0"; "5.0"; "2.2"; "0.0" ] "round(5·s)/5, one decimal (2.1·5 = 10.5 rounds away from zero)"
            Expect.equal (stsb.ScoreTargets() |> Seq.length) 26 "0.0, 0.2, …, 5.0"
            Expect.equal (TextToTextFormat.ParseScore " 3.8") (Nullable 3.8) "a number"
            Expect.equal (TextToTextFormat.ParseScore "three") (Nullable()) "no number"
            Expect.equal (TextToTextFormat.ParseScore "NaN") (Nullable()) "not finite"
            throwsWith<InvalidOperationException> [ "'spam'"; "classification" ] (fun () -> (TextToTextFormat.For TextTasks.Spam).ScoreTarget 1.0 |> ignore) |> ignore }

        test "regression batches: labels are the written score + </s>; decoding budget covers every score" {
            let t = t5.Value
            let stsb = TextToTextFormat.For GlueTasks.STSB
            let collator = TextToTextCollator.For(t, stsb, 64)
            Expect.isTrue collator.IsRegression "no class targets"
            let examples = [ TextExample("a", "One.", "Two.", Nullable(), Nullable 3.77); TextExample("b", "Three.", "Four.", Nullable(), Nullable 0.0) ]
            let encoded = TextToTextCollator.Encode(t, stsb, examples)
            let batch = collator.Collate(encoded, BatchKey())
            let eos = int64 t.SpecialTokens.EndOfSequence.Value
            for r, target in [ 0, "3.8"; 1, "0.0" ] do
                let expected = Array.append (longs (t.Encode target)) [| eos |]
                Expect.equal (batch.Labels.RowArray r).[.. expected.Length - 1] expected $"row {r}: '{target}' then </s>"
            let longest = stsb.ScoreTargets() |> Seq.map (fun s -> (t.Encode s).Length) |> Seq.max
            Expect.equal collator.MaxTargetTokens (longest + 1) "the longest written score and </s>"
            let generated = Array.concat [ [| 0L |]; longs (t.Encode "3.8"); [| eos; 0L |] ]
            Expect.equal (t.Decode(collator.AnswerIds(ReadOnlySpan generated), skipSpecialTokens = true)) "3.8" "the answer decodes back"
            throwsWith<ArgumentException> [ "Example 0"; "no written score" ] (fun () ->
                collator.Collate([ EncodedExample([| 5 |], null, Nullable(), Nullable 1.0) ], BatchKey()) |> ignore) |> ignore }

        test "formats refuse what they cannot express, naming the problem" {
            throwsWith<ArgumentException> [ "'lm'"; "language modelling" ] (fun () -> TextToTextFormat.For TextTasks.Lm |> ignore) |> ignore
            throwsWith<ArgumentException> [ "'z'"; "lacks a second text"; "pairs" ] (fun () ->
                (TextToTextFormat.For GlueTasks.RTE).Input(TextExample("z", "only one", null, Nullable 0, Nullable())) |> ignore) |> ignore
            throwsWith<ArgumentOutOfRangeException> [ "label"; "0..1" ] (fun () -> (TextToTextFormat.For TextTasks.Spam).Target 2 |> ignore) |> ignore }

        test "batches: formatted input + </s>, <pad> after; labels = class word + </s>, -100 after" {
            let t = t5.Value
            let format = TextToTextFormat.For TextTasks.SotuParty
            let collator = TextToTextCollator.For(t, format, 64)
            let examples = [ example "We must balance the budget." null 1; example "Peace." null 0 ]
            let batch = collator.Collate(TextToTextCollator.Encode(t, format, examples), BatchKey())
            let eos, pad = t.SpecialTokens.EndOfSequence.Value, t.SpecialTokens.Padding.Value
            let inputs = [ for e in examples -> Array.append (t.Encode(format.Input e)) [| eos |] |> longs ]
            let width = inputs |> List.map Array.length |> List.max
            for r, expected in List.indexed inputs do
                let row = batch.InputIds.RowArray r
                Expect.equal row[.. expected.Length - 1] expected $"row {r}: input ids then </s>"
                Expect.isTrue (row[expected.Length ..] |> Array.forall ((=) (int64 pad))) $"row {r}: <pad> after"
                Expect.equal (batch.AttentionMask.RowArray r |> Array.sum) (int64 expected.Length) $"row {r}: mask"
            Expect.equal batch.InputIds.Columns width "padded to the longest row"
            let republican, democratic = t.Encode "Republican", t.Encode "Democratic"
            let labels = [ Array.append republican [| eos |]; Array.append democratic [| eos |] ] |> List.map longs
            let lwidth = labels |> List.map Array.length |> List.max
            for r, expected in List.indexed labels do
                let row = batch.Labels.RowArray r
                Expect.equal row[.. expected.Length - 1] expected $"row {r}: target word then </s>"
                Expect.isTrue (row[expected.Length ..] |> Array.forall ((=) TokenBatch.IgnoreIndex)) $"row {r}: -100 after"
            Expect.equal batch.Labels.Columns lwidth "labels padded to the longest target"
            Expect.equal collator.MaxTargetTokens (max republican.Length democratic.Length + 1) "decoding budget" }

        test "truncation keeps </s> last; an example without a class is refused naming it" {
            let t = t5.Value
            let format = TextToTextFormat.For TextTasks.Spam
            let collator = TextToTextCollator.For(t, format, 8)
            let long = String.replicate 40 "money "
            let batch = collator.Collate(TextToTextCollator.Encode(t, format, [ example long null 1 ]), BatchKey())
            let row = batch.InputIds.RowArray 0
            Expect.equal row.Length 8 "cut to maxLength"
            Expect.equal row[7] (int64 t.SpecialTokens.EndOfSequence.Value) "</s> survives truncation"
            let expected = longs (t.Encode(format.Input(example long null 1)))
            Expect.equal row[.. 6] expected[.. 6] "the text is cut from its end"
            throwsWith<ArgumentException> [ "Example 0"; "class none" ] (fun () ->
                collator.Collate([ EncodedExample([| 5 |], null, Nullable(), Nullable()) ], BatchKey()) |> ignore) |> ignore }

        test "generated rows read back: exact target → its class; anything else → -1" {
            let c = TextToTextCollator(SequenceFraming.T5(SpecialTokenIds(Padding = Nullable 0, EndOfSequence = Nullable 1)), [| [| 7; 8 |]; [| 7 |] |], 1, 16)
            let classOf (row: int64 list) = c.ClassOf(ReadOnlySpan(Array.ofList row))
            Expect.equal (classOf [ 0L; 7L; 8L; 1L; 0L ]) 0 "start, 7 8, </s>, pad"
            Expect.equal (classOf [ 0L; 7L; 1L; 0L; 0L ]) 1 "a target that is a prefix of another is still told apart"
            Expect.equal (classOf [ 0L; 7L; 8L ]) 0 "no </s> within the budget: the whole row counts"
            Expect.equal (classOf [ 0L; 7L; 8L; 9L; 1L ]) -1 "extra tokens"
            Expect.equal (classOf [ 0L; 1L ]) -1 "empty answer"
            Expect.equal (classOf [ 0L; 8L; 7L; 1L ]) -1 "wrong order"
            throwsWith<ArgumentException> [ "Classes 0 and 1"; "same target" ] (fun () ->
                TextToTextCollator(SequenceFraming.T5(SpecialTokenIds(Padding = Nullable 0, EndOfSequence = Nullable 1)), [| [| 7 |]; [| 7 |] |], 1, 16) |> ignore) |> ignore }
    ]
