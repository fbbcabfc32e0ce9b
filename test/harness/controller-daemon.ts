/** Spawns the real loom-controller daemon as a child process (for restart and CLI tests). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Daemon {
  proc: ChildProcess;
  grpcPort: number;
  /** The dedicated Watch server's port (0 when it is off). */
  watchPort: number;
  httpPort: number;
  target: string;
  output: () => string;
  /** SIGKILL by PID and wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM by PID; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-ctl-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts the daemon with `args` (plus loopback ports 0) and waits for its "ready" log line. */
export function startDaemon(args: string[]): Promise<Daemon> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/controller/main.ts', '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`controller did not start:\n${out}`));
    }, 30_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('loom-controller ready')) continue;
        const ready = JSON.parse(line) as { grpcPort: number; watchPort: number; httpPort: number };
        clearTimeout(timer);
        resolve({
          proc,
          grpcPort: ready.grpcPort,
          watchPort: ready.watchPort,
          httpPort: ready.httpPort,
          target: `127.0.0.1:${ready.grpcPort}`,
          output: () => out,
          async kill9() {
            if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGKILL');
            await exited;
          },
          async stop() {
            if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
            return exited;
          },
        });
        return;
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`controller exited with ${code} before ready:\n${out}`));
    });
  });
}
