// The benchmark's sections, run in this order by `npm run bench`. Each section's result is also
// kept here for the closing `summary` (every target beside its value).
import { engineSection } from './engine';
import { transferSection } from './transfer';
import { renderSection } from './render';
import { hostSection } from './host';
import { memorySection } from './memory';
import { reliabilitySection } from './reliability';
import { fusedSection } from './fused';
import { explainSection } from './explain';
import { longctxSection } from './longctx';
import { summarize } from './summary';
import { loadAvg } from './targets';

const results: Record<string, any> = {};

/**
 * Runs a section, notes the machine's load average before and after, and keeps its result. A
 * section that throws is reported (its error in the JSON) and the benchmark goes on.
 */
const tracked =
  <R extends object>(name: string, section: () => Promise<R>) =>
  async (): Promise<R | { error: string; load_avg: { before: number[]; after: number[] } }> => {
    const before = loadAvg();
    try {
      const r = await section();
      results[name] = r;
      return { ...r, load_avg: { before, after: loadAvg() } };
    } catch (e) {
      const error = String((e as Error)?.stack ?? e);
      console.error(`\n${name} FAILED: ${error}`);
      return { error, load_avg: { before, after: loadAvg() } };
    }
  };

export const sections = {
  engine: tracked('engine', engineSection),
  transfer: tracked('transfer', transferSection),
  render: tracked('render', renderSection),
  host: tracked('host', hostSection),
  memory: tracked('memory', memorySection),
  reliability: tracked('reliability', reliabilitySection),
  fused: tracked('fused', fusedSection),
  explain: tracked('explain', explainSection),
  longctx: tracked('longctx', longctxSection),
  summary: async () => summarize(results),
};
