// The `sotu-party` task: the party (Democratic or Republican) of the President who delivered a passage of a State
// of the Union address, for the addresses from FIRST_YEAR on. Earlier addresses belong to the `lm` task instead,
// so pre-training on `lm` never reads text of this task. Splits are by address: every passage of an address is in
// the same split, stratified by party.
import { assignSplits, writeTask } from './common.mjs';
import { addresses, passages } from './sotu.mjs';

/** Franklin D. Roosevelt's first address: the modern era of the two parties. */
export const FIRST_YEAR = 1933;
export const PARTIES = ['Democratic', 'Republican'];

export function prepareSotuParty() {
  const chosen = addresses().filter((a) => a.year >= FIRST_YEAR && PARTIES.includes(a.party));
  const rows = chosen.flatMap((a) =>
    passages(a.text).map((text, k) => ({ id: `${a.document}/${k}`, document: a.document, text, label: a.party })));
  const splitOf = assignSplits(chosen.map((a) => ({ id: a.document, stratum: a.party })), { dev: 0.15, test: 0.15 });
  const stats = writeTask('sotu-party', ['id', 'document', 'text', 'label'], rows, (r) => splitOf.get(r.document), 'label');
  const addressesBy = {};
  for (const a of chosen) addressesBy[a.party] = (addressesBy[a.party] ?? 0) + 1;
  return { task: 'sotu-party', stats, notes: { addresses: chosen.length, addressesBy, years: `${FIRST_YEAR}-${Math.max(...chosen.map((a) => a.year))}` } };
}
