// Property-based: the HPACK decoder, fed random bytes or the RFC 7541 appendix C blocks (indexed,
// incremental indexing, Huffman) truncated, flipped or spliced, in sequence on one decoder (the
// dynamic table carries over), returns fields or throws HpackError / HeaderListSizeError only.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderListSizeError, HpackDecoder, HpackError, encodeHeaderBlock } from '../../src/http2/hpack.js';
import { mutatedAny } from '../common/mutate.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const BLOCKS = [
  hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'), // C.3.1
  hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'), // C.4.1
  hex('8286 84be 5886 a8eb 1064 9cbf'), // C.4.2
  hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'), // C.4.3
  hex('4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'), // C.5.1
  hex('3fe1 1f'), // table size update to 4096
  encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0']]),
];

describe('HPACK decoder (property-based)', () => {
  it('decodes the unmutated examples (sanity of the seeds)', () => {
    const d = new HpackDecoder();
    expect(d.decode(BLOCKS[1])).toContainEqual([':authority', 'www.example.com']);
  });

  it('throws only HpackError or HeaderListSizeError on random and mutated blocks, in sequence', () => {
    fc.assert(
      fc.property(fc.array(mutatedAny(BLOCKS, 64), { minLength: 1, maxLength: 8 }), fc.constantFrom(0, 256, 4096), (blocks, maxTableSize) => {
        const d = new HpackDecoder({ maxTableSize, maxHeaderListSize: 2048 });
        for (const b of blocks) {
          try {
            const fields = d.decode(b);
            for (const [n, v] of fields) expect(typeof n === 'string' && typeof v === 'string').toBe(true);
          } catch (err) {
            if (err instanceof HeaderListSizeError) continue; // the block was consumed; the connection goes on
            if (err instanceof HpackError) return; // COMPRESSION_ERROR: the connection ends here
            throw err;
          }
          expect(d.tableSize).toBeLessThanOrEqual(d.maxTableSize);
        }
      }),
      { numRuns: 400, seed: 18 },
    );
  });
});
