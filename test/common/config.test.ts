import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bool, ConfigError, defaultsOf, flagsOf, hostPort, int, joinHostPort, loadSettings, oneOf, settings, settingsHelp, splitHostPort, text, type ConfigOf } from '../../src/common/config.js';

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

describe('settings table', () => {
  const table = settings({
    listen: { parse: hostPort(), default: '0.0.0.0:1', arg: 'ADDR', help: 'where to listen' },
    dbPath: { parse: text(), default: '/var/x.db', arg: 'PATH', aliases: ['db'], help: 'database file' },
    timeoutMs: { parse: int(10, 1000), default: 100, arg: 'N', unit: 'ms', help: 'how long to wait' },
    mode: { parse: oneOf(['fast', 'safe'] as const), default: 'safe', arg: 'fast|safe', help: 'trade-off' },
    verbose: { parse: bool, default: false, help: 'say more' },
    name: { parse: text(/^[a-z]+$/, 'lower-case letters'), default: '', required: true, arg: 'NAME', help: 'who' },
  });
  type Config = ConfigOf<typeof table>;
  const load = (argv: string[]): Config | 'help' => loadSettings(table, argv);
  const withFile = <T>(content: string, fn: (file: string) => T): T => {
    const dir = mkdtempSync(path.join(tmpdir(), 'loom-settings-'));
    try {
      const file = path.join(dir, 'c.json');
      writeFileSync(file, content);
      return fn(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('derives the config type from the parsers, and checks each default against it', () => {
    const c: Config = { ...defaultsOf(table), name: 'x' };
    // @ts-expect-error -- 'turbo' is not a mode
    c.mode = 'turbo';
    // @ts-expect-error -- a number setting
    c.timeoutMs = '5';
    // @ts-expect-error -- a default of the wrong type is refused where the table is written
    settings({ n: { parse: int(0, 1), default: 'one', help: 'n' } });
    expect(defaultsOf(table)).toEqual({ listen: '0.0.0.0:1', dbPath: '/var/x.db', timeoutMs: 100, mode: 'safe', verbose: false, name: '' });
  });

  it('takes every key as a kebab-case flag, and the old names as aliases', () => {
    expect([...flagsOf(table)]).toEqual([
      ['listen', 'listen'],
      ['db-path', 'dbPath'],
      ['db', 'dbPath'],
      ['timeout-ms', 'timeoutMs'],
      ['mode', 'mode'],
      ['verbose', 'verbose'],
      ['name', 'name'],
    ]);
    const c = load(['--name', 'a', '--listen', '[::]:2', '--db-path', '/a.db', '--timeout-ms', '20', '--mode', 'fast', '--verbose']);
    expect(c).toEqual({ listen: '[::]:2', dbPath: '/a.db', timeoutMs: 20, mode: 'fast', verbose: true, name: 'a' });
    expect(load(['--name', 'a', '--db', '/b.db'])).toMatchObject({ dbPath: '/b.db' });
    expect(() => load(['--name', 'a', '--db', '/b.db', '--db-path', '/a.db'])).toThrow('--db-path and --db both set dbPath; give one');
  });

  it('merges defaults, file and flags, flags winning', () => {
    withFile(JSON.stringify({ name: 'file', timeoutMs: 300, mode: 'fast' }), (file) => {
      expect(load(['--config', file, '--timeout-ms', '400'])).toEqual({ ...defaultsOf(table), name: 'file', timeoutMs: 400, mode: 'fast' });
    });
  });

  it.each([
    [['--name', 'a', '--nope'], "Unknown option '--nope'"],
    [['--name', 'a', 'stray'], "Unexpected argument 'stray'"],
    [[], 'name is required: give --name or "name" in the config file'],
    [['--name', 'A1'], 'name must be lower-case letters, got "A1" (from --name)'],
    [['--name', 'a', '--timeout-ms', '5'], 'timeoutMs must be an integer between 10 and 1000, got "5" (from --timeout-ms)'],
    [['--name', 'a', '--timeout-ms', 'soon'], 'timeoutMs must be an integer between 10 and 1000, got "soon" (from --timeout-ms)'],
    [['--name', 'a', '--mode', 'turbo'], 'mode must be one of fast, safe, got "turbo" (from --mode)'],
    [['--name', 'a', '--listen', 'x'], 'listen must look like 0.0.0.0:7400 or [::]:7400, got "x" (from --listen)'],
    [['--name', 'a', '--db'], "Option '--db <value>' argument missing"],
  ])('refuses %j with a message naming the setting and its flag', (argv, message) => {
    expect(() => load(argv)).toThrow(ConfigError);
    expect(() => load(argv)).toThrow(message);
  });

  it('names the file when a bad value or unknown key comes from it', () => {
    withFile('{"name": "a", "verbose": "yes"}', (file) => {
      expect(() => load(['--config', file])).toThrow(`verbose must be true or false, got "yes" (in config file ${file})`);
    });
    withFile('{"name": "a", "timeoutMS": 5}', (file) => {
      expect(() => load(['--config', file])).toThrow(`config file ${file}: unknown setting "timeoutMS" (known: listen, dbPath, timeoutMs, mode, verbose, name)`);
    });
  });

  it('writes --help from the table: flag, argument, text, key, default with unit, aliases', () => {
    const help = settingsHelp(table);
    expect(help).toContain('  --db-path PATH');
    expect(help).toContain('database file. [dbPath; default: /var/x.db; also --db]');
    expect(help).toContain('how long to wait. [timeoutMs; default: 100 ms]');
    expect(help).toContain('  --mode fast|safe');
    expect(help).toMatch(/ {2}--verbose +say more\. \[verbose; default: false\]/);
    expect(help).toContain('who. [name; required]');
    for (const line of help.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('refuses a table whose flags collide', () => {
    expect(() => flagsOf({ a: { parse: bool, default: false, help: 'a', aliases: ['b'] }, b: { parse: bool, default: false, help: 'b' } })).toThrow('flag --b used twice');
  });
});
