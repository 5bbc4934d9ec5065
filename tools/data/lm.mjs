// The `lm` task: text for pre-training the small models and for their held-out perplexity. Two sources, each split
// by document: the State of the Union addresses from FIRST_YEAR up to the year before `sotu-party` starts (passages
// of whole sentences, as there), and Moby-Dick's chapters and epilogue (the book's own paragraphs).
import { assignSplits, cleanText, packageFiles, sources, writeTask } from './common.mjs';
import { addresses, passages } from './sotu.mjs';
import { FIRST_YEAR as PARTY_FIRST_YEAR } from './sotu-party.mjs';

/** Abraham Lincoln's first address, the first by a Republican: the two-party era that `sotu-party` continues. */
export const FIRST_YEAR = 1861;

/** Moby-Dick's chapters (heading line dropped) and epilogue as documents of paragraphs (blank-line separated). */
function mobyDick() {
  const files = packageFiles(sources.mobyDick);
  const names = [...Array(135).keys()].map((k) => `chapter_${k + 1}`).concat(['epilogue']);
  return names.map((name) => {
    const text = files.get(`data/${name}.txt`).toString('utf8');
    const paragraphs = text.split(/\r?\n\s*\r?\n/).slice(1).map(cleanText).filter((p) => p !== '');
    const document = name === 'epilogue' ? 'moby-dick/epilogue' : `moby-dick/chapter-${String(name.split('_')[1]).padStart(3, '0')}`;
    return { document, source: 'moby-dick', paragraphs };
  });
}

export function prepareLm() {
  const speeches = addresses()
    .filter((a) => a.year >= FIRST_YEAR && a.year < PARTY_FIRST_YEAR)
    .map((a) => ({ document: a.document, source: 'sotu', paragraphs: passages(a.text) }));
  const documents = [...speeches, ...mobyDick()];
  const rows = documents.flatMap((d) => d.paragraphs.map((text, k) => ({ id: `${d.document}/${k}`, document: d.document, text })));
  const splitOf = assignSplits(documents.map((d) => ({ id: d.document, stratum: d.source })), { dev: 0.1, test: 0.1 });
  const stats = writeTask('lm', ['id', 'document', 'text'], rows, (r) => splitOf.get(r.document), null);
  return { task: 'lm', stats, notes: { addresses: speeches.length, chapters: documents.length - speeches.length } };
}
