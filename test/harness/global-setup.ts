// Vitest global setup for the integration project: sweep leftovers of earlier crashed runs before
// the tests, and whatever this run's workers could not clean up after them.
import { sweepDeadOwners } from './registry.js';

export default function setup(): () => void {
  sweepDeadOwners();
  return () => {
    const left = sweepDeadOwners();
    if (left.length > 0) console.warn(`harness: removed namespaces left by workers: ${left.join(' ')}`);
  };
}
