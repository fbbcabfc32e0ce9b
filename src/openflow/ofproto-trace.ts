// Parses the text ovs-vswitchd answers to `ofproto/trace` (OVS 2.x/3.x): the flow traced, each
// bridge's tables in the order the packet visited them with the matching flow's match, priority,
// cookie and actions, and the final flow, megaflow and datapath actions. Knows nothing of Loom.

export interface TraceStep {
  bridge: string;
  table: number;
  /** The matching flow's match in ovs-ofctl text ('' for a catch-all), or undefined on "No match". */
  match?: string;
  priority?: number;
  cookie?: bigint;
  /** Actions executed, one per line as OVS prints them ("goto_table:10", "output:65001", "drop"). */
  actions: string[];
  /** OVS's remarks on the actions ("-> output to native tunnel", "-> tunneling to ..."). */
  notes: string[];
}

export interface OfprotoTrace {
  /** The flow as OVS completed it ("Flow: ..."). */
  flow: string;
  steps: TraceStep[];
  finalFlow?: string;
  megaflow?: string;
  /** "drop" or the datapath's actions. */
  datapathActions?: string;
}

export class TraceParseError extends Error {
  override name = 'TraceParseError';
}

const STEP = /^ *(\d+)\. (.*)$/;
const FLOW_HEAD = /^(.*?)(?:, )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$/;

export function parseOfprotoTrace(text: string): OfprotoTrace {
  const lines = text.split('\n');
  const flowLine = lines.find((l) => l.startsWith('Flow: '));
  if (!flowLine) throw new TraceParseError(`not an ofproto/trace answer (no "Flow:" line): ${text.slice(0, 200)}`);
  const out: OfprotoTrace = { flow: flowLine.slice('Flow: '.length), steps: [] };
  let bridge = '';
  let step: TraceStep | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const b = /^bridge\("(.+)"\)$/.exec(line);
    if (b) {
      bridge = b[1]!;
      step = undefined;
      continue;
    }
    if (line.startsWith('Final flow: ')) out.finalFlow = line.slice('Final flow: '.length);
    else if (line.startsWith('Megaflow: ')) out.megaflow = line.slice('Megaflow: '.length);
    else if (line.startsWith('Datapath actions: ')) out.datapathActions = line.slice('Datapath actions: '.length);
    if (!bridge || /^-+$/.test(line) || line.trim() === '') continue;
    if (/^(Final flow|Megaflow|Datapath actions|Flow): /.test(line)) {
      bridge = '';
      continue;
    }
    const s = STEP.exec(line);
    if (s) {
      const rest = s[2]!;
      step = { bridge, table: Number(s[1]), actions: [], notes: [] };
      if (!/^No match/.test(rest)) {
        const h = FLOW_HEAD.exec(rest);
        if (!h) throw new TraceParseError(`unrecognised table line: ${line}`);
        step.match = h[1]!;
        step.priority = Number(h[2]);
        if (h[3]) step.cookie = BigInt(h[3]);
      }
      out.steps.push(step);
      continue;
    }
    if (!step) continue;
    const body = line.trim();
    if (body.startsWith('->')) step.notes.push(body.slice(2).trim());
    else step.actions.push(body);
  }
  return out;
}
