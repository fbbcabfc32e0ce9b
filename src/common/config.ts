/**
 * Daemon settings from one declarative table per daemon: each entry gives a setting's parser,
 * default, help text and old flag names; the config type, defaults, flags, --help and
 * validation are all derived from it. Sources, later ones winning: defaults, the JSON file
 * named by --config, flags.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Invalid configuration; the message is meant to be printed as is. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Thrown by a setting's parser: what the value must be ("must be ..."), without the name. */
export class BadValue extends Error {}

/** One row of a settings table. */
export interface Setting<T> {
  /** Checks a value from the file (any JSON) or a flag (a string, or true for a switch). */
  parse: (value: unknown) => T;
  default: NoInfer<T>;
  /** What the setting does, for --help (wrapped there). */
  help: string;
  /** Placeholder after the flag in --help (N, ADDR, FILE, a|b); absent = a boolean switch. */
  arg?: string;
  /** Unit of a number, shown in --help. */
  unit?: string;
  /** No usable default: must be set by a flag or the file. */
  required?: boolean;
  /** The default as --help shows it, when the raw default says little ('' = "none"). */
  defaultText?: string;
  /** Older flag names that keep working (deployed units and scripts use them). */
  aliases?: readonly string[];
}

export type SettingsTable = Record<string, Setting<unknown>>;

/** The config type a table describes. */
export type ConfigOf<S extends SettingsTable> = { [K in keyof S]: ReturnType<S[K]['parse']> };

/** Identity that lets TypeScript infer each row's value type and check its default against it. */
export function settings<C>(table: { [K in keyof C]: Setting<C[K]> }): { [K in keyof C]: Setting<C[K]> } {
  return table;
}

/** hostDownAfterMs -> host-down-after-ms: every setting's flag. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function defaultsOf<S extends SettingsTable>(table: S): ConfigOf<S> {
  return Object.fromEntries(Object.entries(table).map(([k, s]) => [k, s.default])) as ConfigOf<S>;
}

// ---- Parsers for the usual kinds of setting.

/** An integer in [min, max]; numeric strings too (flags are strings). */
export function int(min: number, max: number): (value: unknown) => number {
  return (value) => {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new BadValue(`must be an integer between ${min} and ${max}`);
    return n;
  };
}

/** One of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): (value: unknown) => T {
  return (value) => {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) throw new BadValue(`must be one of ${choices.join(', ')}`);
    return value as T;
  };
}

/** A non-empty string, optionally matching `pattern` (then `what` says what it must be). */
export function text(pattern?: RegExp, what?: string): (value: unknown) => string {
  return (value) => {
    if (typeof value !== 'string' || value === '') throw new BadValue('must be a non-empty string');
    if (pattern && !pattern.test(value)) throw new BadValue(`must be ${what ?? `like ${String(pattern)}`}`);
    return value;
  };
}

/** A string that may be empty (an optional path or name). */
export function optionalText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new BadValue('must be a string');
  return value;
}

/** A JSON boolean in the file; a switch on the command line. */
export function bool(value: unknown): boolean {
  if (typeof value !== 'boolean') throw new BadValue('must be true or false');
  return value;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** "host:port" or "[v6]:port"; port 0 means any free port. With `orEmpty`, '' (off) too. */
export function hostPort(orEmpty = false): (value: unknown) => string {
  return (value) => {
    if (orEmpty && value === '') return '';
    const m = typeof value === 'string' ? HOST_PORT.exec(value) : null;
    if (!m || Number(m[2]) > 65535) throw new BadValue(`must look like 0.0.0.0:7400 or [::]:7400${orEmpty ? " (or '' for off)" : ''}`);
    return value as string;
  };
}

/** "host:port" or "[v6]:port" (as hostPort accepts) -> host without brackets, and port. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** The inverse: brackets around an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---- Loading.

/** Reads a JSON object from `path`. */
export function readJsonConfig(path: string): Record<string, unknown> {
  let textContent: string;
  try {
    textContent = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(textContent);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must contain a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

type ParseArgsOptions = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** Every flag the table accepts (kebab-case key and aliases) -> its key. */
export function flagsOf(table: SettingsTable): Map<string, string> {
  const flags = new Map<string, string>();
  for (const [key, s] of Object.entries(table)) {
    for (const flag of [flagName(key), ...(s.aliases ?? [])]) {
      if (flags.has(flag) || flag === 'config' || flag === 'help') throw new Error(`settings table: flag --${flag} used twice`);
      flags.set(flag, key);
    }
  }
  return flags;
}

/**
 * Defaults, then the JSON file named by --config, then flags, each checked by its row's parser;
 * then `check` for rules between settings (it may also derive values). A bad value's error
 * names the key and where the value came from. Returns 'help' for --help.
 */
export function loadSettings<S extends SettingsTable>(table: S, argv: string[], check: (c: ConfigOf<S>) => ConfigOf<S> = (c) => c): ConfigOf<S> | 'help' {
  const flags = flagsOf(table);
  const options: ParseArgsOptions = { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
  for (const [flag, key] of flags) options[flag] = { type: table[key]!.arg === undefined ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values as typeof values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  if (values.help) return 'help';
  const raw = new Map<string, { value: unknown; from: string }>();
  if (typeof values.config === 'string') {
    const file = readJsonConfig(values.config);
    for (const [k, value] of Object.entries(file)) {
      if (!Object.hasOwn(table, k)) throw new ConfigError(`config file ${values.config}: unknown setting "${k}" (known: ${Object.keys(table).join(', ')})`);
      raw.set(k, { value, from: `in config file ${values.config}` });
    }
  }
  const setBy = new Map<string, string>();
  for (const [flag, key] of flags) {
    if (values[flag] === undefined) continue;
    const earlier = setBy.get(key);
    if (earlier) throw new ConfigError(`--${earlier} and --${flag} both set ${key}; give one`);
    setBy.set(key, flag);
    raw.set(key, { value: values[flag], from: `from --${flag}` });
  }
  const config: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(table)) {
    const given = raw.get(key);
    if (!given && s.required) throw new ConfigError(`${key} is required: give --${flagName(key)} or "${key}" in the config file`);
    const value = given ? given.value : s.default;
    try {
      config[key] = s.parse(value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      throw new ConfigError(`${key} ${err.message}, got ${JSON.stringify(value)} (${given ? given.from : 'the default'})`);
    }
  }
  return check(config as ConfigOf<S>);
}

/** --help's flag list, from the table: flag, aliases, what it does, unit, file key, default. */
export function settingsHelp(table: SettingsTable): string {
  const col = 30;
  const width = 100;
  const pad = ' '.repeat(col);
  const lines: string[] = [];
  const row = (left: string, words: string): void => {
    let line = left.length >= col - 1 ? (lines.push(left), pad) : left.padEnd(col);
    let empty = true;
    for (const w of words.split(/\s+/)) {
      if (!empty && line.length + 1 + w.length > width) {
        lines.push(line);
        line = pad;
        empty = true;
      }
      line += (empty ? '' : ' ') + w;
      empty = false;
    }
    lines.push(line);
  };
  row('  --config FILE', 'JSON config file; its keys are the names in brackets below. Flags override it.');
  for (const [key, s] of Object.entries(table)) {
    const names = [flagName(key), ...(s.aliases ?? [])].map((f) => `--${f}`);
    const shown = s.defaultText ?? (s.default === '' ? 'none' : String(s.default));
    const dflt = s.required ? 'required' : `default: ${shown}${s.unit && s.defaultText === undefined ? ` ${s.unit}` : ''}`;
    row(`  ${names[0]}${s.arg ? ` ${s.arg}` : ''}`, `${s.help}. [${key}; ${dflt}${names.length > 1 ? `; also ${names.slice(1).join(', ')}` : ''}]`);
  }
  row('  -h, --help', 'this help');
  return `${lines.join('\n')}\n`;
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
