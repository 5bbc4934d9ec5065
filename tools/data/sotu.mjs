// State of the Union addresses as documents of passages. The source text of each address is one line without
// paragraph breaks, so passages are made from whole sentences: sentences are added until a passage has at least
// PASSAGE_WORDS words (about 100 WordPiece tokens, within a 128-token model's reach). Only the first MAX_PASSAGES
// passages of an address are kept, so that a few very long written messages (Carter's of 1981 has 33,000 words)
// do not outweigh the rest.
import { cleanText, packageFiles, sources, wordCount } from './common.mjs';

export const PASSAGE_WORDS = 60;
export const MAX_PASSAGES = 100;
/** A sentence longer than this is cut into pieces of this many words (some 19th-century sentences run to 300). */
const LONGEST_SENTENCE = 150;
/** A last passage shorter than this joins the one before it; a passage still shorter is dropped. */
export const SHORTEST_PASSAGE = 20;

/** Abbreviations after which a full stop does not end a sentence. */
const abbreviations = new Set([
  'mr', 'mrs', 'ms', 'dr', 'gen', 'gov', 'sen', 'rep', 'hon', 'st', 'no', 'nos', 'jr', 'sr', 'vs', 'co', 'corp',
  'inc', 'ltd', 'dept', 'messrs', 'lt', 'col', 'capt', 'adm', 'cong', 'sess', 'art', 'sec', 'vol', 'ch', 'p', 'pp',
  'u.s', 'u.n', 'etc', 'ft', 'jan', 'feb', 'mar', 'apr', 'aug', 'sept', 'oct', 'nov', 'dec', 'i.e', 'e.g',
]);

/** Sentences: a break after . ! or ? (and closing quotes or brackets) before a capital, digit, quote or bracket. */
export function sentences(text) {
  const out = [];
  let start = 0;
  for (const m of text.matchAll(/[.!?]["'’”)\]]*(?= +["'‘“([]?[A-Z0-9])/g)) {
    const end = m.index + m[0].length;
    const word = text.slice(start, m.index).split(' ').pop().toLowerCase();
    // "Mr. Speaker", "U.S. Government", "Franklin D. Roosevelt": no sentence ends there.
    if (m[0] === '.' && (abbreviations.has(word) || /^[a-z]$/.test(word))) continue;
    out.push(text.slice(start, end).trim());
    start = end;
  }
  out.push(text.slice(start).trim());
  return out.filter((s) => s !== '');
}

/** The first MAX_PASSAGES passages of whole sentences with at least PASSAGE_WORDS words each (see the constants above). */
export function passages(text) {
  const pieces = [];
  for (const sentence of sentences(text)) {
    const words = sentence.split(' ');
    for (let at = 0; at < words.length; at += LONGEST_SENTENCE) pieces.push(words.slice(at, at + LONGEST_SENTENCE).join(' '));
  }
  const out = [];
  let current = [];
  let words = 0;
  for (const piece of pieces) {
    current.push(piece);
    words += wordCount(piece);
    if (words >= PASSAGE_WORDS) {
      out.push(current.join(' '));
      current = [];
      words = 0;
    }
  }
  if (current.length > 0) {
    if (words < SHORTEST_PASSAGE && out.length > 0) out[out.length - 1] += ' ' + current.join(' ');
    else out.push(current.join(' '));
  }
  return out.filter((p) => wordCount(p) >= SHORTEST_PASSAGE).slice(0, MAX_PASSAGES);
}

/**
 * Every address of the corpus: { document: "sotu/<year>-<president>", year, president, party, text }, in the
 * package's file order (by year). `document` is the file name's year and president, which is unique.
 */
export function addresses() {
  const files = packageFiles(sources.sotu);
  return [...files.keys()]
    .filter((path) => /^data\/\d{4}_.*\.json$/.test(path))
    .sort()
    .map((path) => {
      const record = JSON.parse(files.get(path).toString('utf8'));
      const stem = path.slice('data/'.length, -'.json'.length); // 1933_franklin_d_roosevelt_d
      const person = stem.split('_').slice(1, -1).join('-');
      return {
        document: `sotu/${record.year}-${person}`,
        year: Number(record.year),
        president: record.name,
        party: record.party,
        text: cleanText(record.text),
      };
    });
}
