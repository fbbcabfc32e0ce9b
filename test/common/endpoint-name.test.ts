import { describe, expect, it } from 'vitest';
import { dnsLabels, dnsName, endpointNameProblem } from '../../src/common/endpoint-name.js';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

describe('endpoint names', () => {
  it.each([
    ['elated_lewin'],
    ['web.v1'],
    ['My-Container'],
    ['a'],
    ['café'],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`],
  ])('accepts %s', (name) => {
    expect(endpointNameProblem(name)).toBeNull();
  });

  it.each([
    ['', /empty/],
    ['x'.repeat(254), /254 bytes long; at most 253/],
    ['é'.repeat(127), /254 bytes long/],
    ['a b', /U\+0020 at character 2/],
    ['a\tb', /U\+0009/],
    ['a\nb', /U\+000A/],
    ['a\u0000b', /U\+0000/],
    ['a\u007fb', /U\+007F/],
    ['a\u200bb', /U\+200B/],
    ['ns/pod', /'\/' at character 3/],
  ])('refuses %j', (name, msg) => {
    expect(endpointNameProblem(name)).toMatch(msg);
  });

  it('shortens and escapes the name in the message', () => {
    const msg = endpointNameProblem(`${'x'.repeat(100)}\n`)!;
    expect(msg).not.toContain('\n');
    expect(msg).toContain(`${'x'.repeat(80)}...`);
  });
});

describe('DNS labels derived from a name', () => {
  it.each([
    ['elated_lewin', ['elated-lewin']],
    ['web.v1', ['web', 'v1']],
    ['My_Container', ['my-container']],
    ['café.Ünïcode', ['cafe', 'unicode']],
    ['-x-.', ['x']],
    ['a..b', ['a', 'b']],
    ['___', ['endpoint']],
    ['日本', ['endpoint']],
    ['a__b', ['a--b']],
  ])('%s -> %j', (name, labels) => {
    expect(dnsLabels(name)).toEqual(labels);
  });

  it('cuts labels to 63 characters without a trailing hyphen', () => {
    expect(dnsLabels('x'.repeat(100))).toEqual(['x'.repeat(63)]);
    expect(dnsLabels(`${'y'.repeat(62)}_z`)).toEqual(['y'.repeat(62)]);
  });

  it('joins a 253-character dotted name back unchanged when it is already DNS', () => {
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(name).toHaveLength(253);
    expect(dnsName(name)).toBe(name);
  });

  it('always gives valid labels and a valid DNS name, deterministically (3,000 seeded names)', () => {
    const alphabet = [...'abcXYZ019-_.~ é日\u0301'];
    let seed = 42;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 1);
    const bad: string[] = [];
    for (let i = 0; i < 3_000; i++) {
      const name = Array.from({ length: next() % 300 }, () => alphabet[next() % alphabet.length]).join('');
      const labels = dnsLabels(name);
      const full = dnsName(name);
      const ok = labels.length > 0 && labels.every((l) => LABEL.test(l)) && dnsLabels(name).join('.') === labels.join('.') &&
        full.length <= 253 && full.split('.').every((l) => LABEL.test(l));
      if (!ok) bad.push(name);
    }
    expect(bad).toEqual([]);
  });
});
