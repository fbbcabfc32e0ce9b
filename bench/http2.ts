/**
 * Watch-server transport benchmark: src/http2 (the hand-written gRPC server) against a bare
 * node:http2 server (nghttp2, hardened with its own limits, no grpc-js on top), both serving the
 * same Watch-shaped traffic, side by side in one run:
 *
 * STREAMS agents, each its own TCP connection with one long-lived gRPC call; the server pushes one
 * update (UPDATE_BYTES) to every call per round, every agent answers each with an ack message
 * (ACK_BYTES), and the next round starts when all acks are in (the controller's fan-out). Each
 * server runs alone in a child process, which measures its own CPU (user + system) over ROUNDS
 * rounds after WARMUP; both use the shared gRPC message splitter. The agents are bench/lib/h2-lite.ts
 * clients in this process (cheap, so they take little of the 2 cores from the server).
 *
 * The figure compared is server CPU per update (one message out + one ack in). Decision rule
 * (issue 18): node:http2 replaces src/http2 if its CPU per update is within 20% of src/http2's.
 *
 * Env: LOOM_BENCH_STREAMS (1000), LOOM_BENCH_ROUNDS (200), LOOM_BENCH_WARMUP (20),
 * LOOM_BENCH_UPDATE_BYTES (200), LOOM_BENCH_ACK_BYTES (6).
 */
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { createInterface } from 'node:readline';
import { GrpcStreamServer, type GrpcStreamCall } from '../src/http2/grpc-server.js';
import { GrpcMessageSplitter, encodeGrpcMessage } from '../src/http2/grpc-framing.js';
import { connectH2, grpcCall, type H2Connection } from './lib/h2-lite.js';

const STREAMS = Number(process.env.LOOM_BENCH_STREAMS ?? 1000);
const ROUNDS = Number(process.env.LOOM_BENCH_ROUNDS ?? 200);
const WARMUP = Number(process.env.LOOM_BENCH_WARMUP ?? 20);
const UPDATE_BYTES = Number(process.env.LOOM_BENCH_UPDATE_BYTES ?? 200);
const ACK_BYTES = Number(process.env.LOOM_BENCH_ACK_BYTES ?? 6);
const PATH = '/loom.bench.Watch/Watch';
const HOST = '127.0.0.1';
const MAX_MESSAGE = 4 << 20;

type Impl = 'src-http2' | 'node-http2';

interface Measured {
  impl: Impl;
  updates: number;
  cpuUs: number;
  userUs: number;
  wallMs: number;
  rssMb: number;
}

/** What the server side of one Watch call needs, whichever transport carries it. */
interface BenchCall {
  send(message: Buffer): void;
}

// ---------------------------------------------------------------- server process

/** Pushes rounds of updates once all STREAMS calls are open; prints the measurement. */
class Driver {
  readonly calls: BenchCall[] = [];
  private acks = 0;
  private round = 0;
  private started = false;
  private t0 = 0;
  private cpu0: NodeJS.CpuUsage = { user: 0, system: 0 };

  constructor(private readonly impl: Impl) {}

  opened(call: BenchCall): void {
    this.calls.push(call);
    if (this.calls.length === STREAMS && !this.started) {
      this.started = true;
      setImmediate(() => this.next());
    }
  }

  ack(): void {
    if (++this.acks === this.calls.length) setImmediate(() => this.next());
  }

  private next(): void {
    if (this.round === WARMUP) {
      this.t0 = performance.now();
      this.cpu0 = process.cpuUsage();
    }
    if (this.round === WARMUP + ROUNDS) {
      const cpu = process.cpuUsage(this.cpu0);
      const m: Measured = {
        impl: this.impl,
        updates: ROUNDS * this.calls.length,
        cpuUs: cpu.user + cpu.system,
        userUs: cpu.user,
        wallMs: performance.now() - this.t0,
        rssMb: Math.round(process.memoryUsage().rss / 2 ** 20),
      };
      process.stdout.write(`DONE ${JSON.stringify(m)}\n`);
      return;
    }
    this.round++;
    this.acks = 0;
    // An update of the same size each round, its first octets the round (as a revision would be).
    const update = Buffer.alloc(UPDATE_BYTES, 0x61);
    update.writeUInt32BE(this.round, 0);
    for (const c of this.calls) c.send(update);
  }
}

async function serveSrcHttp2(driver: Driver): Promise<number> {
  const server = new GrpcStreamServer({
    maxMessageBytes: MAX_MESSAGE,
    maxConnectionsPerPeer: STREAMS + 10, // every simulated agent comes from 127.0.0.1
    handlers: {
      [PATH]: (call: GrpcStreamCall) => {
        call.onMessage = () => driver.ack();
        driver.opened({ send: (m) => void call.send(m) });
      },
    },
  });
  return server.listen(HOST, 0);
}

/** node:http2 with the limits it offers against the floods of issue 18, and gRPC framing on top. */
async function serveNodeHttp2(driver: Driver): Promise<number> {
  const server = http2.createServer({
    maxSessionMemory: 16, // MiB of nghttp2 state + queued output per session, then ENHANCE_YOUR_CALM
    maxHeaderListPairs: 64,
    maxSettings: 32,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 1000,
    unknownProtocolTimeout: 10_000,
    settings: { maxConcurrentStreams: 100, maxHeaderListSize: 16 << 10, initialWindowSize: 8 << 20, enablePush: false },
  });
  server.setTimeout(300_000);
  server.on('session', (session) => session.setLocalWindowSize(2 ** 31 - 1));
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== PATH || headers[':method'] !== 'POST') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    const splitter = new GrpcMessageSplitter(MAX_MESSAGE);
    splitter.onMessage = () => driver.ack();
    splitter.onProblem = () => stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    stream.on('data', (d: Buffer) => splitter.push(d));
    stream.on('error', () => {});
    driver.opened({ send: (m) => void stream.write(encodeGrpcMessage(m)) });
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve((server.address() as { port: number }).port)));
}

async function serverMain(impl: Impl): Promise<void> {
  const driver = new Driver(impl);
  const port = impl === 'src-http2' ? await serveSrcHttp2(driver) : await serveNodeHttp2(driver);
  process.stdout.write(`PORT ${port}\n`);
}

// ---------------------------------------------------------------- agents (this process)

async function run(impl: Impl): Promise<Measured> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/http2.ts', '--server', impl], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waitLine = (prefix: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const onLine = (l: string): void => {
        if (!l.startsWith(prefix)) return;
        lines.off('line', onLine);
        resolve(l.slice(prefix.length));
      };
      lines.on('line', onLine);
      child.once('exit', (code) => reject(new Error(`${impl} server exited with ${code}`)));
    });
  try {
    const port = Number(await waitLine('PORT '));
    const done = waitLine('DONE ');
    const conns: H2Connection[] = [];
    const ack = Buffer.alloc(ACK_BYTES, 0x62);
    const received = new Array<number>(STREAMS).fill(0);
    let closing = false;
    for (let i = 0; i < STREAMS; i++) {
      const conn = await connectH2(HOST, port);
      conns.push(conn);
      const call = grpcCall(conn, PATH, `${HOST}:${port}`, () => {
        received[i]++;
        call.send(ack);
      });
      call.onError = (err) => {
        if (!closing) process.stderr.write(`agent ${i}: ${err.message}\n`);
      };
    }
    const m = JSON.parse(await done) as Measured;
    const short = received.filter((n) => n !== WARMUP + ROUNDS).length;
    if (short > 0) throw new Error(`${impl}: ${short} agents did not receive all ${WARMUP + ROUNDS} updates`);
    closing = true;
    for (const c of conns) c.close();
    return m;
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const results: Measured[] = [];
  for (const impl of ['src-http2', 'node-http2'] as const) {
    const m = await run(impl);
    results.push(m);
    process.stdout.write(
      `${impl}: ${m.updates} updates to ${STREAMS} streams in ${m.wallMs.toFixed(0)} ms, server CPU ${(m.cpuUs / 1000).toFixed(0)} ms ` +
        `= ${(m.cpuUs / m.updates).toFixed(2)} us/update (user ${(m.userUs / m.updates).toFixed(2)}), RSS ${m.rssMb} MiB\n`,
    );
  }
  const [own, node] = results.map((m) => m.cpuUs / m.updates);
  const ratio = node / own;
  const decision = ratio <= 1.2 ? 'replace-with-node-http2' : 'keep-src-http2';
  process.stdout.write(
    `RESULT streams=${STREAMS} rounds=${ROUNDS} update_bytes=${UPDATE_BYTES} src_http2_cpu_us_per_update=${own.toFixed(2)} ` +
      `node_http2_cpu_us_per_update=${node.toFixed(2)} ratio=${ratio.toFixed(2)} decision=${decision}\n`,
  );
}

const serverArg = process.argv.indexOf('--server');
if (serverArg >= 0) {
  await serverMain(process.argv[serverArg + 1] as Impl);
} else {
  await main();
}
