import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IFNAMSIZ, interfaceNameProblem } from '../../src/common/ifname.js';

describe('interfaceNameProblem (the kernel\'s dev_valid_name)', () => {
  it.each(['eth0', 'a', 'lm0123456789abc', 'br-int', 'veth.100', 'é1234567890123'])('accepts %j', (name) => {
    expect(interfaceNameProblem(name)).toBeUndefined();
  });
  it.each([
    ['', /is empty/],
    ['a-name-of-16-byt', /is 16 bytes long; the kernel allows at most 15/],
    ['éééééééé', /is 16 bytes long/], // 8 characters, 16 bytes
    ['.', /"\." or "\.\."/],
    ['..', /"\." or "\.\."/],
    ['eth/0', /contains "\/"/],
    ['eth:0', /contains ":"/],
    ['eth 0', /contains " "/],
    ['eth\t0', /contains "\\t"/],
    ['eth\v0', /contains "\\u000b"/],
    ['eth\u00000', /contains "\\u0000"/],
  ])('refuses %j', (name, message) => {
    expect(interfaceNameProblem(name)).toMatch(message);
  });
  it('agrees with the kernel rules on random names', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (name) => {
        const kernelOk = name !== '' && Buffer.byteLength(name) < IFNAMSIZ && name !== '.' && name !== '..' && !/[/:\0 \t\n\v\f\r]/.test(name);
        expect(interfaceNameProblem(name) === undefined).toBe(kernelOk);
      }),
      { numRuns: 300, seed: 18 },
    );
  });
});
