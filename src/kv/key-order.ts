/**
 * Keys sort in UTF-8 byte order, which is Unicode code point order (as etcd
 * sorts its byte keys). Plain JS `<` compares UTF-16 code units, which disagrees
 * for astral characters (surrogates 0xD800–0xDFFF) versus U+E000–U+FFFF, so the
 * first differing unit is remapped before comparing.
 *
 * Keys with a common prefix P are contiguous in this order and start at P.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (astral code points) move above U+FFFF; U+E000–U+FFFF move down to fill the gap. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  if (unit >= 0xe000) return unit - 0x800;
  return unit + 0x2000;
}
