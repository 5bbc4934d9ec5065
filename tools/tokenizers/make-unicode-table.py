#!/usr/bin/python3
"""Writes src/Mpo.Core.CSharp/Tokenization/CanonicalDecompositions.txt from Python's unicodedata.

BERT's accent stripping decomposes text to NFD before removing non-spacing marks, but .NET's string.Normalize does
nothing when globalization-invariant mode is on (as it is in this repository), so Mpo carries the canonical
decomposition table itself. Run: /usr/bin/python3 tools/tokenizers/make-unicode-table.py
"""
import os
import unicodedata

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # decomposed arithmetically by the reader instead

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, '..', '..', 'src', 'Mpo.Core.CSharp', 'Tokenization', 'CanonicalDecompositions.txt')

lines = [
    f'# Unicode {unicodedata.unidata_version} canonical decompositions and combining classes, from Python\'s unicodedata.',
    '# Written by tools/tokenizers/make-unicode-table.py; do not edit.',
    '# D <code point> <its full canonical decomposition> (hex). Hangul syllables are left to the reader\'s arithmetic.',
    '# C <first> <last> <canonical combining class>: code points in [first, last] have that non-zero class.',
]
for cp in range(0x110000):
    if HANGUL_FIRST <= cp <= HANGUL_LAST:
        continue
    decomposed = unicodedata.normalize('NFD', chr(cp))
    if decomposed != chr(cp):
        lines.append('D ' + ' '.join(f'{ord(c):04X}' for c in [chr(cp), *decomposed]))

run = None  # [first, last, class]
for cp in range(0x110000 + 1):
    ccc = unicodedata.combining(chr(cp)) if cp < 0x110000 else 0
    if run and (ccc != run[2] or cp != run[1] + 1):
        lines.append(f'C {run[0]:04X} {run[1]:04X} {run[2]}')
        run = None
    if ccc and run is None:
        run = [cp, cp, ccc]
    elif ccc:
        run[1] = cp

with open(out, 'w', encoding='ascii', newline='\n') as f:
    f.write('\n'.join(lines) + '\n')
print(f'wrote {os.path.relpath(out)}: {len(lines) - 4} entries')
