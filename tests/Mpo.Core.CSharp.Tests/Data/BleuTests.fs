/// BLEU and Self-BLEU (Mpo.Data.Bleu): NLTK 3.8's corpus_bleu, sentence_bleu and Texygen's Self-BLEU on the committed
/// fixture (tools/reference/bleu_reference.py), and cases checkable by hand.
module Mpo.Core.Tests.BleuTests

open System
open System.IO
open System.Text.Json
open Expecto
open Mpo.Data
open Mpo.Core.Tests.Support

type private Tokens = Collections.Generic.IReadOnlyList<string>

let private tokens (e: JsonElement) : Tokens = [| for t in e.EnumerateArray() -> t.GetString() |]
let private words (s: string) : Tokens = s.Split(' ', StringSplitOptions.RemoveEmptyEntries)
let private corpus (refs: string list list) (hyps: string list) =
    [| for r in refs -> [| for x in r -> words x |] :> Collections.Generic.IReadOnlyList<Tokens> |], [| for h in hyps -> words h |]

let private fixtureCases () =
    use doc = JsonDocument.Parse(File.ReadAllText(repoFile "tests/fixtures/bleu/nltk_reference.json"))
    [ for c in doc.RootElement.GetProperty("cases").EnumerateArray() -> c.Clone() ]

let private smoothings = [ "none", BleuSmoothing.None; "epsilon", BleuSmoothing.Epsilon ]

[<Tests>]
let tests =
    testList "Data.Bleu" [
        testList "against NLTK 3.8 (fixture)" [
            for c in fixtureCases () do
                let name = c.GetProperty("name").GetString()
                let hypotheses = [| for h in c.GetProperty("hypotheses").EnumerateArray() -> tokens h |]
                let references = [| for r in c.GetProperty("references").EnumerateArray() -> [| for x in r.EnumerateArray() -> tokens x |] :> Collections.Generic.IReadOnlyList<Tokens> |]
                test name {
                    for order in [ 2; 4 ] do
                        for key, smoothing in smoothings do
                            let expected = c.GetProperty(sprintf "corpus.%s.%d" key order).GetDouble()
                            Expect.floatClose Accuracy.veryHigh (Bleu.Corpus(references, hypotheses, order, smoothing)) expected (sprintf "corpus BLEU-%d, smoothing %s" order key)
                            let sentences = [ for s in c.GetProperty(sprintf "sentence.%s.%d" key order).EnumerateArray() -> s.GetDouble() ]
                            sentences |> List.iteri (fun i expected ->
                                Expect.floatClose Accuracy.veryHigh (Bleu.Sentence(references.[i], hypotheses.[i], order, smoothing)) expected (sprintf "sentence %d BLEU-%d, smoothing %s" i order key))
                        let self = c.GetProperty(sprintf "self.%d" order).GetDouble()
                        Expect.floatClose Accuracy.veryHigh (Bleu.Self(hypotheses, order)) self (sprintf "Self-BLEU-%d (Texygen: method1)" order)
                }
        ]
        testList "by hand" [
            test "a hypothesis equal to its reference scores 1, at every order and smoothing" {
                let refs, hyps = corpus [ [ "the whale and the ship sailed on" ]; [ "call me ishmael some years ago" ] ] [ "the whale and the ship sailed on"; "call me ishmael some years ago" ]
                for order in [ 1; 2; 4 ] do
                    for _, s in smoothings do
                        Expect.floatClose Accuracy.veryHigh (Bleu.Corpus(refs, hyps, order, s)) 1.0 (sprintf "BLEU-%d" order)
            }
            test "no word in common scores 0, whatever the smoothing" {
                let refs, hyps = corpus [ [ "the whale and the ship" ] ] [ "congress passed a law today" ]
                for _, s in smoothings do
                    Expect.equal (Bleu.Corpus(refs, hyps, 2, s)) 0.0 "no unigram match"
            }
            test "a correct prefix of half the reference: precision 1, brevity penalty exp(1 − r/c) = e^-1" {
                let refs, hyps = corpus [ [ "a b c d e f g h" ] ] [ "a b c d" ]
                Expect.floatClose Accuracy.veryHigh (Bleu.BrevityPenalty(8L, 4L)) (exp -1.0) "BP(r = 8, c = 4)"
                Expect.floatClose Accuracy.veryHigh (Bleu.Corpus(refs, hyps, 4, BleuSmoothing.None)) (exp -1.0) "BLEU-4 = BP · 1"
                Expect.equal (Bleu.BrevityPenalty(4L, 5L)) 1.0 "longer than the reference: no penalty"
                Expect.equal (Bleu.BrevityPenalty(4L, 0L)) 0.0 "no hypothesis token"
            }
            test "clipping: a repeated word counts at most as often as in the reference" {
                // Papineni's example: "the the the the the the the" against "the cat is on the mat" has unigram precision 2/7
                let refs, hyps = corpus [ [ "the cat is on the mat" ] ] [ "the the the the the the the" ]
                Expect.floatClose Accuracy.veryHigh (Bleu.Corpus(refs, hyps, 1, BleuSmoothing.None)) (2.0 / 7.0) "BLEU-1 = 2/7 (longer than r: BP 1)"
            }
            test "BLEU-2 is the geometric mean of the unigram and bigram precisions" {
                // 4 of 5 unigrams and 2 of 4 bigrams match; same length as the reference: BP = 1
                let refs, hyps = corpus [ [ "the whale and the ship" ] ] [ "the whale and a ship" ]
                Expect.floatClose Accuracy.veryHigh (Bleu.Corpus(refs, hyps, 2, BleuSmoothing.None)) (sqrt (0.8 * 0.5)) "√(4/5 · 2/4)"
            }
            test "Self-BLEU of identical samples is 1; of samples sharing no word 0" {
                let same = [| for _ in 1 .. 3 -> words "the whale and the ship" |]
                Expect.floatClose Accuracy.veryHigh (Bleu.Self(same, 2)) 1.0 "identical"
                let apart = [| words "the whale"; words "congress passed"; words "a law today" |]
                Expect.equal (Bleu.Self(apart, 2)) 0.0 "disjoint"
            }
            test "words: runs of word characters and single punctuation marks" {
                Expect.sequenceEqual (Bleu.Words "the United States.  It's 1866!") [| "the"; "United"; "States"; "."; "It"; "'"; "s"; "1866"; "!" |] "tokens"
            }
            test "bad input names the argument" {
                let refs, hyps = corpus [ [ "a b" ] ] [ "a b" ]
                let e = throwsWith<ArgumentException> [ "references has 1 entries but hypotheses has 2" ] (fun () -> Bleu.Corpus(refs, Array.append hyps hyps, 2) |> ignore)
                Expect.equal e.ParamName "references" "names references"
                let e = throwsWith<ArgumentException> [ "maxOrder is 0" ] (fun () -> Bleu.Corpus(refs, hyps, 0) |> ignore)
                Expect.equal e.ParamName "maxOrder" "names maxOrder"
                let e = throwsWith<ArgumentException> [ "references[0] is empty" ] (fun () -> Bleu.Corpus([| [||] |], hyps, 2) |> ignore)
                Expect.equal e.ParamName "references" "names references"
                let e = throwsWith<ArgumentException> [ "samples has 1 entries"; "at least two" ] (fun () -> Bleu.Self(hyps, 2) |> ignore)
                Expect.equal e.ParamName "samples" "names samples"
                let e = throwsWith<ArgumentException> [ "hypotheses is empty" ] (fun () -> Bleu.Corpus([||], [||], 2) |> ignore)
                Expect.equal e.ParamName "hypotheses" "names hypotheses"
            }
        ]
    ]
