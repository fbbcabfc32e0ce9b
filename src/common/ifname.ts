/**
 * Linux interface names as the kernel accepts them (dev_valid_name() in net/core/dev.c): 1 to
 * IFNAMSIZ-1 = 15 bytes (bytes, not characters: the name is a C string), not "." or "..", and no
 * '/', ':', NUL or whitespace (isspace(): space, \t, \n, \v, \f, \r).
 */

/** IFNAMSIZ (include/uapi/linux/if.h) including the terminating NUL. */
export const IFNAMSIZ = 16;

/** Why the kernel would refuse `name` as an interface name, or undefined when it would take it. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > IFNAMSIZ - 1) return `is ${bytes} bytes long; the kernel allows at most ${IFNAMSIZ - 1} (IFNAMSIZ-1)`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  const bad = /[/:\0 \t\n\v\f\r]/.exec(name);
  if (bad) return `contains ${JSON.stringify(bad[0])}; the kernel refuses '/', ':', NUL and whitespace`;
  return undefined;
}
