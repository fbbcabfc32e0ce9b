/**
 * Schemas of the local API's request bodies. Every body is checked before it reaches the agent;
 * a bad one is answered 400 with a message naming the field. Unknown fields are refused too,
 * so a misspelt optional field is not silently ignored.
 */
import { z } from 'zod';
import type { AttachRequest, DetachRequest } from '../api/local.js';
import { AgentError } from './agent.js';

const MAX_TEXT = 1024;

/** A string; the messages say what it is, and tell a missing field from a mistyped one. */
const str = (what: string) => z.string({ error: (issue) => (issue.input === undefined ? `is missing (${what})` : `must be a string (${what})`) });
const text = (what: string) => str(what).max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`);
const required = (what: string) => text(what).min(1, `must not be empty (${what})`);
const ifname = str('the interface name in the container')
  .min(1, 'must not be empty')
  .max(15, 'must be at most 15 characters (a Linux interface name)')
  .regex(/^[^/\s]+$/, "must not contain '/' or whitespace");

export const attachRequest: z.ZodType<AttachRequest> = z.strictObject({
  containerId: required('the container ID'),
  netns: required("the container's network namespace file"),
  ifname,
  network: required('the Loom network name'),
  name: text('the container name').optional(),
  ipv4: text('a static IPv4 address').optional(),
  ipv6: text('a static IPv6 address').optional(),
  mac: text('a static MAC address').optional(),
  dns: z
    .strictObject({
      servers: z.array(text('an upstream DNS server address')).max(3, 'must list at most 3 servers (the resolv.conf limit)').optional(),
      searches: z.array(text('a DNS search domain')).max(6, 'must list at most 6 search domains').optional(),
      options: z.array(text('a resolv.conf option')).max(16, 'must list at most 16 options').optional(),
    })
    .optional(),
  hostname: text('a DNS name for the container').optional(),
  aliases: z.array(text('a DNS alias')).max(32, 'must list at most 32 aliases').optional(),
  labels: z
    .record(z.string().max(320, 'label keys are at most 320 characters'), z.string().max(63, 'label values are at most 63 characters'))
    .refine((o) => Object.keys(o).length <= 64, 'at most 64 labels')
    .optional(),
});

export const detachRequest: z.ZodType<DetachRequest> = z.strictObject({
  containerId: required('the container ID'),
  ifname,
  network: text('the Loom network name').optional(),
});

/** POST /v1/cni from the `loom` plugin binary: its environment and its stdin. */
export const cniRequest = z.strictObject({
  env: z.record(z.string(), str('an environment variable').max(64 * 1024, 'must be at most 65536 characters'), { error: (issue) => (issue.input === undefined ? 'is missing (the CNI_* variables)' : 'must be an object of CNI_* variables') }),
  stdin: str('the network configuration'),
});

/** `body` checked against `schema`, or AgentError 'invalid' naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path, issue.keys[0]].join('.');
    throw new AgentError('invalid', `${what}: unknown field "${field}"`);
  }
  const field = issue.path.join('.');
  throw new AgentError('invalid', field ? `${what}: field "${field}" ${issue.message}` : `${what}: ${issue.message}`);
}

/** POST /v1/trace: a simulated trace from one of this host's endpoints. */
export const traceRequest = z.strictObject({
  containerId: required('the container ID of the source endpoint'),
  ifname: ifname.optional(),
  destination: required('the destination address').max(64),
  proto: z.enum(['icmp', 'tcp', 'udp'], { error: 'must be icmp, tcp or udp' }).optional(),
  port: z.number({ error: 'must be a number (tcp/udp destination port)' }).int().min(0).max(65535).optional(),
  source: text('a source address to claim').max(64).optional(),
});
