import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMANDS, GLOBAL_FLAGS, parseCommandLine, UsageError } from '../../src/cli/args.js';

describe('loomctl command line', () => {
  it('finds the command, its arguments, its own flags and the global flags anywhere', () => {
    expect(parseCommandLine(['-o', 'json', 'network', 'create', 'blue', '--ipv4', '10.1.0.0/16', '--gateway', '10.1.0.1', '--gateway=10.1.0.2', '--controller', 'c:1'])).toEqual({
      command: 'network create',
      args: ['blue'],
      flags: { output: 'json', ipv4: '10.1.0.0/16', gateway: ['10.1.0.1', '10.1.0.2'], controller: 'c:1' },
    });
    expect(parseCommandLine(['endpoint', 'show', 'blue', 'abc', '--output=json'])).toEqual({ command: 'endpoint show', args: ['blue', 'abc'], flags: { output: 'json' } });
    expect(parseCommandLine(['wait', '--revision', '7', '--timeout', '2'])).toEqual({ command: 'wait', args: [], flags: { revision: '7', timeout: '2' } });
    expect(parseCommandLine(['status', '-h'])).toEqual({ command: 'status', args: [], flags: { help: true } });
    expect(parseCommandLine(['help'])).toMatchObject({ command: 'help' });
    expect(parseCommandLine([])).toMatchObject({ command: undefined });
  });

  it.each([
    [['host', 'list', '--ipv4', 'x'], "unknown flag --ipv4 for 'host list'"],
    [['network', 'list', '--network', 'blue'], "unknown flag --network for 'network list'"],
    [['status', '--timeout', '3'], "unknown flag --timeout for 'status'"],
    [['endpoint', 'list', '--ipv4', 'x'], "unknown flag --ipv4 for 'endpoint list'"],
    [['wait', '--host', 'h1'], "unknown flag --host for 'wait'"],
    [['host', 'list', '--nope'], 'unknown flag --nope'],
    [['-x', 'status'], 'unknown flag -x'],
    [['--ipv4', '10.0.0.0/8'], 'flag --ipv4 needs a command'],
    [['network', 'create', 'x', '--ipv4'], 'flag --ipv4 needs a value'],
    [['network', 'create', 'x', '--ipv4', '--ipv6', 'fd00::/64'], 'flag --ipv4 needs a value (got "--ipv6"; write --ipv4=--ipv6 if you mean it)'],
    [['status', '--help=yes'], 'flag --help takes no value'],
    [['host', 'list', 'extra'], `unexpected argument "extra" for 'host list' (it takes no arguments)`],
    [['network', 'show', 'a', 'b'], `unexpected argument "b" for 'network show' (it takes NAME)`],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['host', 'lsit'], 'unknown command "host lsit"'],
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parseCommandLine(argv)).toThrow(UsageError);
    expect(() => parseCommandLine(argv)).toThrow(message);
  });

  it('documents every command and every flag in --help', () => {
    const source = readFileSync(new URL('../../src/cli/loomctl.ts', import.meta.url), 'utf8');
    const help = source.slice(source.indexOf('const HELP = `'), source.indexOf('`;', source.indexOf('const HELP = `')));
    for (const [command, { flags }] of Object.entries(COMMANDS)) {
      expect(help).toContain(`  ${command}`);
      // The command's lines: its own line and the ones indented under it.
      const lines = help.split('\n');
      const at = lines.findIndex((l) => l.startsWith(`  ${command}`));
      let end = at + 1;
      while (end < lines.length && /^ {6,}/.test(lines[end]!)) end++;
      const block = lines.slice(at, end).join('\n');
      for (const flag of Object.keys(flags)) expect(block, `${command} --${flag}`).toMatch(new RegExp(`--${flag}\\b`));
    }
    for (const flag of Object.keys(GLOBAL_FLAGS)) expect(help).toContain(`--${flag}`);
  });
});
