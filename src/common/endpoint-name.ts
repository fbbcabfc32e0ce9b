/**
 * Endpoint names are the runtime's: podman's generated `elated_lewin`, a Kubernetes pod name
 * such as `web.v1` (a DNS subdomain, up to 253 characters), Docker-style names with capitals.
 * Loom accepts any of them and derives what DNS needs from the name here, in one place, rather
 * than refusing names DNS could not carry as they are.
 */

/** Longest accepted name, in UTF-8 bytes (a Kubernetes object name's limit). */
export const ENDPOINT_NAME_MAX_BYTES = 253;
/** Longest DNS label (RFC 1035). */
export const DNS_LABEL_MAX = 63;

// Control, format, surrogate, private-use and unassigned code points, any whitespace or
// separator, and '/' (names end up in logs, tables and paths; a slash reads as a key separator).
const FORBIDDEN = /[\p{C}\p{Z}\s/]/u;

/** Why `name` is not acceptable as an endpoint name, or null when it is. */
export function endpointNameProblem(name: string): string | null {
  if (name === '') return 'endpoint name is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > ENDPOINT_NAME_MAX_BYTES) return `endpoint name is ${bytes} bytes long; at most ${ENDPOINT_NAME_MAX_BYTES} are allowed`;
  const bad = FORBIDDEN.exec(name);
  if (bad) {
    const cp = bad[0].codePointAt(0)!;
    const shown = bad[0] === '/' ? "'/'" : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    return `endpoint name "${printable(name)}" contains ${shown} at character ${bad.index + 1}; names may not contain whitespace, control characters or '/'`;
  }
  return null;
}

/**
 * The DNS labels an endpoint name stands for: split at '.', each lower-cased, accents dropped,
 * every character other than a-z, 0-9 and '-' mapped to '-', runs of '-' kept as they are,
 * leading and trailing '-' trimmed, cut to 63 characters; empty labels dropped. A name with
 * nothing usable left becomes ['endpoint']. Pure and deterministic; different names can map to
 * the same labels (`Web` and `web`), which is for the DNS feature to resolve, not a reason to
 * refuse the name.
 */
export function dnsLabels(name: string): string[] {
  const labels: string[] = [];
  for (const part of name.split('.')) {
    const label = part
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+/, '')
      .slice(0, DNS_LABEL_MAX)
      .replace(/-+$/, '');
    if (label !== '') labels.push(label);
  }
  return labels.length > 0 ? labels : ['endpoint'];
}

/** The derived labels joined with '.': a valid DNS name of at most 253 characters. */
export function dnsName(name: string): string {
  const labels = dnsLabels(name);
  let out = labels[0]!;
  for (const l of labels.slice(1)) {
    if (out.length + 1 + l.length > ENDPOINT_NAME_MAX_BYTES) break;
    out += `.${l}`;
  }
  return out;
}

/** A name shortened and escaped for an error message. */
function printable(name: string): string {
  const short = name.length > 80 ? `${name.slice(0, 80)}...` : name;
  return JSON.stringify(short).slice(1, -1);
}
