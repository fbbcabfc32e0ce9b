/**
 * loomctl's command line: global flags anywhere, and each command's own flags only after that
 * command. Anything else is a UsageError (exit 2) naming the flag or argument.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {}

interface FlagDef {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}

export const GLOBAL_FLAGS = {
  controller: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Record<string, FlagDef>;

/** An endpoint's names and DNS settings (endpoint create and update). */
const ENDPOINT_NAME_FLAGS = {
  'dns-server': { type: 'string', multiple: true },
  'dns-search': { type: 'string', multiple: true },
  'dns-option': { type: 'string', multiple: true },
  hostname: { type: 'string' },
  alias: { type: 'string', multiple: true },
} as const satisfies Record<string, FlagDef>;

/** Each command: its positional arguments (by name, for errors) and its own flags. */
export const COMMANDS: Record<string, { args: readonly string[]; flags: Record<string, FlagDef> }> = {
  'network create': {
    args: ['NAME'],
    flags: {
      ipv4: { type: 'string' },
      ipv6: { type: 'string' },
      vni: { type: 'string' },
      tunnel: { type: 'string' },
      mtu: { type: 'string' },
      gateway: { type: 'string', multiple: true },
      'dns-server': { type: 'string', multiple: true },
      'dns-search': { type: 'string', multiple: true },
      'dns-domain': { type: 'string' },
      'block-prefix': { type: 'string' },
      'ipv6-block-prefix': { type: 'string' },
      egress: { type: 'string' },
      'ipv6-routed': { type: 'boolean' },
      'inbound-source': { type: 'string', multiple: true },
      isolation: { type: 'string' },
    },
  },
  'network update': { args: ['NAME'], flags: { isolation: { type: 'string' } } },
  'policy create': {
    args: ['NAME'],
    flags: {
      network: { type: 'string' },
      'from-endpoint': { type: 'string', multiple: true },
      'from-label': { type: 'string', multiple: true },
      'from-cidr': { type: 'string', multiple: true },
      from: { type: 'string' },
      'to-endpoint': { type: 'string', multiple: true },
      'to-label': { type: 'string', multiple: true },
      protocol: { type: 'string' },
      port: { type: 'string', multiple: true },
    },
  },
  'policy list': { args: [], flags: { network: { type: 'string' } } },
  'policy show': { args: ['NETWORK', 'NAME'], flags: {} },
  'policy delete': { args: ['NETWORK', 'NAME'], flags: {} },
  'policy explain': { args: ['FROM', 'TO', 'PORT'], flags: { network: { type: 'string' }, protocol: { type: 'string' } } },
  link: { args: ['CLIENT', 'SERVER'], flags: { network: { type: 'string' }, port: { type: 'string', multiple: true }, name: { type: 'string' }, alias: { type: 'string' } } },
  'network list': { args: [], flags: {} },
  'network show': { args: ['NAME'], flags: {} },
  'network delete': { args: ['NAME'], flags: {} },
  'host list': { args: [], flags: {} },
  'host register': { args: ['NAME'], flags: { vtep: { type: 'string' } } },
  'endpoint list': { args: [], flags: { network: { type: 'string' }, host: { type: 'string' } } },
  'endpoint show': { args: ['NETWORK', 'CONTAINER_ID'], flags: {} },
  'endpoint create': {
    args: ['NETWORK', 'CONTAINER_ID'],
    flags: {
      host: { type: 'string' },
      name: { type: 'string' },
      ipv4: { type: 'string' },
      ipv6: { type: 'string' },
      mac: { type: 'string' },
      label: { type: 'string', multiple: true },
      ...ENDPOINT_NAME_FLAGS,
    },
  },
  'endpoint update': { args: ['NETWORK', 'CONTAINER_ID'], flags: { ...ENDPOINT_NAME_FLAGS, 'no-dns': { type: 'boolean' }, 'no-aliases': { type: 'boolean' } } },
  status: { args: [], flags: {} },
  wait: { args: [], flags: { revision: { type: 'string' }, timeout: { type: 'string' } } },
  trace: {
    args: ['FROM', 'TO'],
    flags: { proto: { type: 'string' }, port: { type: 'string' }, live: { type: 'boolean' }, 'source-address': { type: 'string' }, timeout: { type: 'string' } },
  },
};

export type FlagValues = Record<string, string | string[] | boolean | undefined>;

export interface ParsedCommand {
  /** 'network create', 'status', 'help', ...; undefined when none was given. */
  command: string | undefined;
  args: string[];
  flags: FlagValues;
}

/** The command named by the leading positionals: 'status', 'network list', ... */
function commandOf(positionals: string[]): { command: string | undefined; args: string[] } {
  const [a, b] = positionals;
  if (a === undefined) return { command: undefined, args: [] };
  if (a === 'help') return { command: 'help', args: positionals.slice(1) };
  if (a in COMMANDS) return { command: a, args: positionals.slice(1) };
  const two = `${a} ${b ?? ''}`.trim();
  if (two in COMMANDS) return { command: two, args: positionals.slice(2) };
  throw new UsageError(`unknown command "${two}" (see loomctl --help)`);
}

export function parseCommandLine(argv: string[]): ParsedCommand {
  const every: Record<string, FlagDef> = { ...GLOBAL_FLAGS };
  for (const c of Object.values(COMMANDS)) Object.assign(every, c.flags);
  // Lenient first pass with every flag known to find the command; the checks below are strict.
  const { tokens } = parseArgs({ args: argv, options: every, allowPositionals: true, strict: false, tokens: true });
  const positionals = tokens.flatMap((t) => (t.kind === 'positional' ? [t.value] : []));
  const options = tokens.flatMap((t) => (t.kind === 'option' ? [t] : []));
  const unknown = options.find((t) => !(t.name in every));
  if (unknown) throw new UsageError(`unknown flag ${unknown.rawName} (see loomctl --help)`);
  const { command, args } = commandOf(positionals);
  const own = (command === undefined ? undefined : COMMANDS[command]?.flags) ?? {};
  const flags: FlagValues = {};
  for (const t of options) {
    const def = (GLOBAL_FLAGS as Record<string, FlagDef>)[t.name] ?? own[t.name];
    if (!def) throw new UsageError(command ? `unknown flag ${t.rawName} for '${command}' (see loomctl --help)` : `flag ${t.rawName} needs a command (see loomctl --help)`);
    if (def.type === 'string' && (t.value === undefined || (!t.inlineValue && /^-./.test(t.value)))) {
      throw new UsageError(`flag ${t.rawName} needs a value${t.value === undefined ? '' : ` (got "${t.value}"; write ${t.rawName}=${t.value} if you mean it)`}`);
    }
    if (def.type === 'boolean' && t.value !== undefined) throw new UsageError(`flag ${t.rawName} takes no value`);
    const value = t.value ?? true;
    if (def.multiple) flags[t.name] = [...((flags[t.name] as string[] | undefined) ?? []), value as string];
    else flags[t.name] = value;
  }
  if (command !== undefined && command !== 'help') {
    const want = COMMANDS[command]!.args;
    if (args.length > want.length) throw new UsageError(`unexpected argument "${args[want.length]}" for '${command}' (it takes ${want.length ? want.join(' ') : 'no arguments'})`);
  }
  return { command, args, flags };
}
