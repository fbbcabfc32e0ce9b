import { describe, expect, it } from 'vitest';
import { joinHostPort, splitHostPort } from '../../src/common/config.js';

describe('host:port addresses', () => {
  it('splits and joins IPv4, IPv6 and names alike', () => {
    for (const [text, host, port] of [
      ['10.0.0.1:7400', '10.0.0.1', 7400],
      ['[fd00::1]:7403', 'fd00::1', 7403],
      ['[::]:0', '::', 0],
      ['controller.example:7400', 'controller.example', 7400],
    ] as const) {
      expect(splitHostPort(text)).toEqual({ host, port });
      expect(joinHostPort(host, port)).toBe(text);
    }
  });
});
