#!/usr/bin/python3
"""Trains the SentencePiece vocabulary of the bundled tiny T5 on the training split of the bundled language-modelling
task (data/tasks/lm/train.tsv; dev and test stay unseen), in T5's layout: unigram, nmt_nfkc normalization,
<pad> 0, </s> 1, <unk> 2 and no beginning-of-sentence piece. Like Hugging Face's T5Tokenizer (extra_ids=100), the
model's 100 sentinels <extra_id_0>..<extra_id_99> are not pieces: they take the ids above the pieces, <extra_id_0>
the highest (vocab_size - 1), which tokenizer_config.json records.

    apt-get install -y --no-install-recommends python3-sentencepiece
    /usr/bin/python3 tools/tokenizers/train-t5-spiece.py

Deterministic: one thread, the corpus fed in file order from memory (no file paths in the model's trainer_spec).
"""
import csv
import hashlib
import io
import json
import os
import sys

import sentencepiece

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.normpath(os.path.join(here, '..', '..'))
source = os.path.join(repo, 'data', 'tasks', 'lm', 'train.tsv')
out = os.path.join(repo, 'data', 'tokenizers', 't5-tiny-spiece')
PIECES, EXTRA_IDS = 8000, 100

csv.field_size_limit(sys.maxsize)
with open(source, encoding='utf-8', newline='') as f:
    rows = list(csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
texts = [r['text'] for r in rows]

model = io.BytesIO()
sentencepiece.SentencePieceTrainer.train(
    sentence_iterator=iter(texts), model_writer=model, vocab_size=PIECES, model_type='unigram',
    character_coverage=1.0, normalization_rule_name='nmt_nfkc', pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
    max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'spiece.model'), 'wb') as f:
    f.write(model.getvalue())
with open(os.path.join(out, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
    json.dump({'tokenizer_class': 'T5Tokenizer', 'extra_ids': EXTRA_IDS, 'eos_token': '</s>', 'unk_token': '<unk>',
               'pad_token': '<pad>', 'additional_special_tokens': [f'<extra_id_{i}>' for i in range(EXTRA_IDS)],
               'model_max_length': 512}, f, indent=1)
    f.write('\n')
sp = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
tokens = sum(len(sp.encode(t)) for t in texts)
print(f'wrote {out}/spiece.model: {sp.get_piece_size()} pieces (+{EXTRA_IDS} sentinels), '
      f'{len(texts)} training texts, {tokens} tokens, sha256 {hashlib.sha256(model.getvalue()).hexdigest()}')
