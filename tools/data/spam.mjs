// The `spam` task: is an e-mail of the SpamAssassin public corpus spam (1) or ham (0)? Text = "Subject: <subject>"
// followed by the readable body: MIME parts decoded (base64, quoted-printable, charsets), HTML reduced to its text,
// quoted reply lines and inline PGP armour dropped, white space normalized, truncated to MAX_CHARS at a word boundary.
import { assignSplits, cleanText, packageFiles, sources, writeTask } from './common.mjs';

/** Longest text kept, in code points: about 200–300 WordPiece tokens, more than a 128- or 256-token model reads. */
export const MAX_CHARS = 1000;

/** A message is handled as a "binary string": one char per byte, so base64 and quoted-printable stay exact. */
const latin1 = (bytes) => Buffer.from(bytes).toString('latin1');
const bytesOf = (binary) => Buffer.from(binary, 'latin1');

/** Bytes to text in the declared charset; undeclared, US-ASCII or unknown: UTF-8 if valid, else Windows-1252. */
function decode(binary, charset) {
  const bytes = bytesOf(binary);
  const label = (charset ?? '').toLowerCase().replace(/^["']|["']$/g, '');
  if (label && !['us-ascii', 'ascii', 'default', 'default_charset', 'unknown-8bit', 'x-unknown'].includes(label)) {
    try {
      return new TextDecoder(label).decode(bytes);
    } catch {
      // An unknown label: fall through to the guess below.
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

/** Splits an entity into unfolded headers (lower-case names, first occurrence kept) and its body. */
function parseEntity(binary) {
  const match = binary.match(/\r?\n\r?\n/);
  const head = match ? binary.slice(0, match.index) : binary;
  const body = match ? binary.slice(match.index + match[0].length) : '';
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** A header value's main token and its parameters: `text/plain; charset="koi8-r"`. */
function parseHeaderValue(value) {
  const [main, ...rest] = (value ?? '').split(';');
  const params = new Map();
  for (const part of rest) {
    const eq = part.indexOf('=');
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim().replace(/^"(.*)"$/s, '$1'));
  }
  return { main: main.trim().toLowerCase(), params };
}

/** RFC 2047 encoded words (=?charset?B|Q?...?=) in a header, decoded; other 8-bit bytes decoded as a body would be. */
function decodeHeader(binary) {
  const joined = binary.replace(/(=\?[^?]+\?[bq]\?[^?]*\?=)\s+(?==\?)/gi, '$1');
  let text = '';
  let last = 0;
  for (const m of joined.matchAll(/=\?([^?]+)\?([bq])\?([^?]*)\?=/gi)) {
    text += decode(joined.slice(last, m.index));
    const payload = m[2].toLowerCase() === 'b'
      ? latin1(Buffer.from(m[3], 'base64'))
      : m[3].replace(/_/g, ' ').replace(/=([0-9a-f]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
    text += decode(payload, m[1].replace(/\*.*$/, ''));
    last = m.index + m[0].length;
  }
  return text + decode(joined.slice(last));
}

function transferDecode(body, encoding) {
  switch ((encoding ?? '').toLowerCase().trim()) {
    case 'base64':
      return latin1(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'));
    case 'quoted-printable':
      return body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    default:
      return body;
  }
}

const entities = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®', trade: '™', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', bull: '•', middot: '·', laquo: '«',
  raquo: '»', pound: '£', euro: '€', yen: '¥', cent: '¢', deg: '°', times: '×', eacute: 'é', egrave: 'è',
  aacute: 'á', agrave: 'à', iacute: 'í', oacute: 'ó', uacute: 'ú', ntilde: 'ñ', uuml: 'ü', ouml: 'ö', auml: 'ä',
  ccedil: 'ç', szlig: 'ß',
};

/** The readable text of an HTML document: no comments, scripts, styles or head; tags become spaces. */
function htmlToText(html) {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);?/gi, (all, name) => {
      if (name[0] === '#') {
        const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
      }
      return entities[name.toLowerCase()] ?? all;
    });
}

/**
 * Plain text without what a reply quotes (lines starting with ">", everything after an "Original Message"
 * separator) and without inline PGP armour.
 */
function plainText(text) {
  return text
    .replace(/^[ \t]*-+ ?Original Message ?-+[\s\S]*/im, ' ')
    .replace(/-----BEGIN PGP SIGNATURE-----[\s\S]*?-----END PGP SIGNATURE-----/g, ' ')
    .replace(/-----BEGIN PGP SIGNED MESSAGE-----\r?\n(Hash: [^\n]*\n)?/g, ' ')
    .split(/\r?\n/)
    .filter((line) => !/^\s*>/.test(line))
    .join('\n');
}

/** The readable text of a MIME entity: text parts decoded; of multipart/alternative the plain part if it has text. */
function entityText({ headers, body }) {
  const type = parseHeaderValue(headers.get('content-type') ?? 'text/plain');
  const disposition = parseHeaderValue(headers.get('content-disposition')).main;
  if (type.main.startsWith('multipart/')) {
    const boundary = type.params.get('boundary');
    if (!boundary) return plainText(decode(body));
    const delimiter = '--' + boundary;
    const parts = [];
    for (const chunk of body.split(delimiter).slice(1)) {
      if (chunk.startsWith('--')) break; // the close delimiter
      parts.push(parseEntity(chunk.replace(/^[ \t]*\r?\n/, '')));
    }
    const texts = parts.map((p) => ({ p, text: entityText(p) }));
    if (type.main === 'multipart/alternative') {
      const plain = texts.find(({ p, text }) => parseHeaderValue(p.headers.get('content-type') ?? 'text/plain').main === 'text/plain' && text.trim());
      return (plain ?? texts.find(({ text }) => text.trim()) ?? { text: '' }).text;
    }
    return texts.map(({ text }) => text).join('\n');
  }
  if (type.main === 'message/rfc822') {
    const inner = parseEntity(body);
    return decodeHeader(inner.headers.get('subject') ?? '') + '\n' + entityText(inner);
  }
  if (disposition === 'attachment' || !(type.main === 'text/plain' || type.main === 'text/html' || type.main === 'text')) return '';
  const text = decode(transferDecode(body, headers.get('content-transfer-encoding')), type.params.get('charset'));
  // Spam often sends HTML labelled text/plain, or no Content-Type at all.
  return type.main === 'text/html' || /<(html|body)\b/i.test(text) ? htmlToText(text) : plainText(text);
}

/** Cuts clean text to at most `max` code points, at the last space in the final tenth if there is one. */
export function truncate(text, max) {
  const points = Array.from(text);
  if (points.length <= max) return text;
  const cut = points.slice(0, max).join('');
  const space = cut.lastIndexOf(' ');
  return space >= cut.length * 0.9 ? cut.slice(0, space) : cut;
}

export function prepareSpam() {
  const files = packageFiles(sources.spamAssassin);
  const list = JSON.parse(files.get('data/file_list.json').toString('utf8'));
  const messages = list.map((path) => {
    const [group, file] = path.split('/');
    const message = parseEntity(latin1(files.get(`data/${path}`)));
    const subject = cleanText(decodeHeader(message.headers.get('subject') ?? ''));
    const full = cleanText(`Subject: ${subject} ${entityText(message)}`);
    const text = truncate(full, MAX_CHARS);
    return {
      document: `${group}/${file.split('.')[0]}`,
      group,
      label: group.startsWith('spam') ? 'spam' : 'ham',
      text,
      truncated: text !== full,
    };
  });

  // Exact duplicates (after clean-up and truncation): the first in the corpus' order stays; a text that occurs
  // with both labels is dropped altogether.
  const labelsOf = new Map();
  for (const m of messages) labelsOf.set(m.text, (labelsOf.get(m.text) ?? new Set()).add(m.label));
  const seen = new Set();
  const rows = [];
  let duplicates = 0;
  let conflicting = 0;
  for (const m of messages) {
    if (labelsOf.get(m.text).size > 1) {
      conflicting++;
      continue;
    }
    if (seen.has(m.text)) {
      duplicates++;
      continue;
    }
    seen.add(m.text);
    rows.push({ id: m.document, ...m });
  }

  const splitOf = assignSplits(rows.map((r) => ({ id: r.document, stratum: r.group })), { dev: 0.1, test: 0.1 });
  const stats = writeTask('spam', ['id', 'document', 'text', 'label'], rows, (r) => splitOf.get(r.document), 'label');
  const truncated = rows.filter((r) => r.truncated).length;
  return { task: 'spam', stats, notes: { messages: messages.length, duplicates, conflicting, truncated } };
}
