"""NLTK's BLEU and Texygen's Self-BLEU on a few seeded token lists, as the oracle for Mpo.Data.Bleu.

Cases: random sentences over a small vocabulary (so n-grams partly match), one or several references per hypothesis,
some hypotheses shorter than 4 tokens and shorter than their references (the brevity penalty and NLTK's max(1, .)
denominator), and a corpus whose 4-grams never match (where the smoothing decides). For each case: corpus_bleu and
every hypothesis' sentence_bleu at orders 2 and 4, with no smoothing (method0) and with SmoothingFunction().method1
(epsilon 0.1); and Self-BLEU-2/-4 of the hypotheses as Texygen computes it (each hypothesis' sentence_bleu with all
the other hypotheses as references, method1, averaged).

Writes tests/fixtures/bleu/nltk_reference.json.
Run: /usr/bin/python3 tools/reference/bleu_reference.py   (Debian python3-nltk, NLTK 3.8)
"""
import json
import os
import random
import warnings

import nltk
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

warnings.filterwarnings("ignore")  # method0's "0 counts of n-gram overlaps" is what some cases test

VOCAB = "the whale ship sea captain crew of a and to in was".split()
SMOOTHING = {"none": SmoothingFunction().method0, "epsilon": SmoothingFunction().method1}
WEIGHTS = {2: (0.5, 0.5), 4: (0.25, 0.25, 0.25, 0.25)}


def sentence(rng, low, high):
    return [rng.choice(VOCAB) for _ in range(rng.randint(low, high))]


def random_case(name, seed, count, references_per, low, high):
    rng = random.Random(seed)
    hypotheses = [sentence(rng, low, high) for _ in range(count)]
    references = [[sentence(rng, low, high) for _ in range(references_per)] for _ in range(count)]
    return {"name": name, "hypotheses": hypotheses, "references": references}


def self_bleu(samples, order):
    # Texygen utils/metrics/SelfBleu.py get_bleu: the others as references, method1, the mean
    total = 0.0
    for i, hypothesis in enumerate(samples):
        others = samples[:i] + samples[i + 1:]
        total += sentence_bleu(others, hypothesis, WEIGHTS[order], smoothing_function=SmoothingFunction().method1)
    return total / len(samples)


def score(case):
    out = dict(case)
    for order in (2, 4):
        for name, smoothing in SMOOTHING.items():
            key = f"{name}.{order}"
            out[f"corpus.{key}"] = corpus_bleu(case["references"], case["hypotheses"], WEIGHTS[order], smoothing_function=smoothing)
            out[f"sentence.{key}"] = [
                sentence_bleu(refs, hyp, WEIGHTS[order], smoothing_function=smoothing)
                for refs, hyp in zip(case["references"], case["hypotheses"])
            ]
        out[f"self.{order}"] = self_bleu(case["hypotheses"], order)
    return out


def main():
    cases = [
        random_case("one reference each", 1, 6, 1, 5, 12),
        random_case("three references each", 2, 5, 3, 4, 10),
        random_case("short hypotheses", 3, 6, 2, 1, 5),
        {
            "name": "no 4-gram in common",
            "hypotheses": [["the", "whale", "and", "the", "ship"], ["a", "sea", "of", "crew"]],
            "references": [[["the", "whale", "was", "the", "ship"]], [["a", "sea", "to", "crew", "in"]]],
        },
    ]
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "bleu", "nltk_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"nltk": nltk.__version__, "cases": [score(c) for c in cases]}, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
