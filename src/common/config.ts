/**
 * Small helpers for daemon configuration: read a JSON file and check field types with messages
 * that name the file and the field.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Invalid configuration; the message is meant to be printed as is. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads a JSON object from `path`. */
export function readJsonConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must contain a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** Rejects keys not in `known` (a typo in a config file should not be silently ignored). */
export function checkKnownKeys(obj: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw new ConfigError(`${where}: unknown setting "${k}" (known: ${known.join(', ')})`);
  }
}

/** An integer in [min, max]; accepts numeric strings (from flags). */
export function intSetting(value: unknown, name: string, min: number, max: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** One of `choices`. */
export function choiceSetting<T extends string>(value: unknown, name: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new ConfigError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** A non-empty string. */
export function stringSetting(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

/** A string that may be empty (an optional path or name). */
export function optionalString(value: unknown, name: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string, got ${JSON.stringify(value)}`);
  return value;
}

/** "host:port" or "[v6]:port"; port 0 means any free port. */
export function listenSetting(value: unknown, name: string): string {
  const s = stringSetting(value, name);
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${name} must look like 0.0.0.0:7400 or [::]:7400, got "${s}"`);
  return s;
}

/** "host:port" or "[v6]:port" (as listenSetting accepts) -> host without brackets, and port. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** The inverse: brackets around an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A daemon's flags in node:util parseArgs form; `config` and `help` are added by parseDaemonArgs. */
export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/**
 * Defaults, then the JSON file named by --config, then flags: the raw settings a daemon's
 * validate() checks. `flagToKey` maps a flag to its config-file key. Returns 'help' for --help.
 */
export function parseDaemonArgs<C>(
  argv: string[],
  spec: { flags: FlagSpec; flagToKey: Record<string, string>; defaults: object; validate: (raw: Record<string, unknown>) => C },
): C | 'help' {
  let parsed;
  try {
    const options = { ...spec.flags, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) return 'help';
  const raw: Record<string, unknown> = { ...spec.defaults };
  if (typeof v.config === 'string') {
    const file = readJsonConfig(v.config);
    checkKnownKeys(file, Object.keys(spec.defaults), `config file ${v.config}`);
    Object.assign(raw, file);
  }
  for (const [flag, key] of Object.entries(spec.flagToKey)) if (v[flag] !== undefined) raw[key] = v[flag];
  return spec.validate(raw);
}

/**
 * The start of every daemon's main(): the config, or the exit code after printing help (0) or
 * the configuration error as one readable line (2).
 */
export function daemonConfig<C>(name: string, help: string, load: () => C | 'help'): C | number {
  try {
    const config = load();
    if (config !== 'help') return config;
    process.stdout.write(help);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${name}: configuration error: ${err.message}\n`);
    return 2;
  }
}
