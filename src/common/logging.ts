/** pino logger setup shared by the daemons: JSON to stdout (or stderr), level from config. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LogOptions {
  name: string;
  level?: LevelWithSilent;
  /** Write to stderr instead of stdout (CLIs keep stdout for their output). */
  stderr?: boolean;
}

/** A structured JSON logger; `err` fields are serialized with stack. */
export function createLogger(opts: LogOptions): Logger {
  return pino(
    { name: opts.name, level: opts.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: opts.stderr ? 2 : 1, sync: false }),
  );
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
