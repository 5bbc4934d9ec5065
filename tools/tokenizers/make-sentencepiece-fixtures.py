#!/usr/bin/python3
"""Trains two small SentencePiece models and writes their reference encodings, for the SentencePiece tests.

No pre-trained spiece.model (ALBERT, T5) can be had offline, so this trains stand-ins with Google's own
SentencePiece (Debian's python3-sentencepiece) on a corpus made here from the words of the bundled BERT vocabulary
plus the fixture strings, then records Google's ids for the same tricky strings as the other tokenizer fixtures:
- sentencepiece-unigram.model: unigram with the nmt_nfkc normalization and ALBERT's special pieces (<pad> 0,
  <unk> 1, [CLS] 2 as beginning of sentence, [SEP] 3 as end of sentence, [MASK] 4);
- sentencepiece-bpe.model: BPE with SentencePiece's default ids (<unk> 0, <s> 1, </s> 2) and no normalization;
- sentencepiece-no-bos.model: unigram with T5's ids (<pad> 0, </s> 1, <unk> 2, no beginning of sentence), which
  Microsoft.ML.Tokenizers 2.0.1 cannot load as it is; Mpo points the missing id at <unk> before handing it over.

    apt-get install -y --no-install-recommends python3-sentencepiece
    /usr/bin/python3 tools/tokenizers/make-sentencepiece-fixtures.py   # after make-fixtures.mjs: it reads gpt2.json
"""
import io
import json
import os
import random

import sentencepiece

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.join(here, '..', '..')
out = os.path.join(repo, 'tests', 'fixtures', 'tokenizers')

# The tricky strings of the other fixtures, without GPT-2's special token (a SentencePiece model has none such).
strings = [(c['name'], c['text'])
           for c in json.load(open(os.path.join(out, 'gpt2.json'), encoding='utf-8'))['cases']
           if '<|endoftext|>' not in c['text']]

with open(os.path.join(repo, 'data', 'tokenizers', 'bert-base-uncased', 'vocab.txt'), encoding='utf-8') as f:
    words = [w for w in (line.strip() for line in f) if w.isascii() and w.isalpha()]
rng = random.Random(20240601)
corpus = []
for _ in range(3000):
    sentence = [rng.choice(words) for _ in range(rng.randint(4, 14))]
    if rng.random() < 0.3:
        sentence[0] = sentence[0].capitalize()
    corpus.append(' '.join(sentence) + rng.choice(['.', '!', '?', ',', ' 123.', '']))
# Each fixture string a few times, so that its characters are in the vocabulary (character_coverage=1).
corpus += [text.replace('\n', ' ').replace('\r', ' ') for _, text in strings for _ in range(3)]

models = {
    'unigram': dict(model_type='unigram', pad_id=0, unk_id=1, bos_id=2, eos_id=3, bos_piece='[CLS]',
                    eos_piece='[SEP]', control_symbols=['[MASK]']),
    'bpe': dict(model_type='bpe', normalization_rule_name='identity'),
    'no-bos': dict(model_type='unigram', pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name='identity'),
}
for name, options in models.items():
    # Training from an iterator into memory keeps file paths out of the model's trainer_spec, so that the bytes
    # depend on the corpus and options only.
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=800, character_coverage=1.0,
        num_threads=1, minloglevel=2, **options)
    model_path = os.path.join(out, f'sentencepiece-{name}.model')
    with open(model_path, 'wb') as f:
        f.write(model.getvalue())
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    cases = []
    for case_name, text in strings:
        ids = processor.encode(text)
        cases.append({'name': case_name, 'text': text, 'ids': ids,
                      'pieces': [processor.id_to_piece(i) for i in ids], 'decoded': processor.decode(ids)})
    fixture = {
        'generator': 'tools/tokenizers/make-sentencepiece-fixtures.py',
        'references': {'sentencepiece': sentencepiece.__version__},
        'model': f'tests/fixtures/tokenizers/sentencepiece-{name}.model',
        'vocabularySize': processor.get_piece_size(),
        'specialIds': {'pad': processor.pad_id(), 'unk': processor.unk_id(),
                       'bos': processor.bos_id(), 'eos': processor.eos_id()},
        'cases': cases,
    }
    with open(os.path.join(out, f'sentencepiece-{name}.json'), 'w', encoding='utf-8') as f:
        json.dump(fixture, f, indent=1, ensure_ascii=True)
        f.write('\n')
    print(f'wrote tests/fixtures/tokenizers/sentencepiece-{name}.model and .json')
