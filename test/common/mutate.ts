// fast-check arbitraries that mutate real encodings the way a broken or hostile peer would:
// truncate, flip bytes, overwrite a 16/32-bit field (lengths, counts, types), splice or append.
import fc from 'fast-check';

/** One mutation of `valid` (never the identical buffer guaranteed, but usually). */
export function mutated(valid: Buffer): fc.Arbitrary<Buffer> {
  const n = valid.length;
  const at = fc.nat({ max: Math.max(0, n - 1) });
  return fc.oneof(
    fc.nat({ max: n }).map((len) => Buffer.from(valid.subarray(0, len))),
    fc.array(fc.tuple(at, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((flips) => {
      const b = Buffer.from(valid);
      for (const [i, v] of flips) if (i < b.length) b[i] = v;
      return b;
    }),
    fc.tuple(at, fc.constantFrom(0, 1, 3, 4, 7, 8, 0x7fff, 0xfff8, 0xffff, 0xffffffff), fc.boolean()).map(([i, v, wide]) => {
      const b = Buffer.from(valid);
      if (wide && i + 4 <= b.length) b.writeUInt32BE(v >>> 0, i);
      else if (i + 2 <= b.length) b.writeUInt16BE(v & 0xffff, i);
      return b;
    }),
    fc.tuple(fc.nat({ max: n }), fc.uint8Array({ minLength: 1, maxLength: 24 })).map(([i, bytes]) =>
      Buffer.concat([valid.subarray(0, i), bytes, valid.subarray(i)])),
  );
}

/** Mutations of any of `valids`, plus random bytes. */
export function mutatedAny(valids: Buffer[], maxRandom = 128): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...valids).chain((v) => mutated(v)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandom }).map((b) => Buffer.from(b)) },
  );
}

/** Calls `fn`; passes when it returns or throws one of `allowed`, and rethrows anything else. */
export function onlyThrows(allowed: Array<abstract new (...args: never[]) => Error>, fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (allowed.some((cls) => err instanceof cls)) return;
    throw err;
  }
}
