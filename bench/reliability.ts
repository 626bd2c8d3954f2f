// Runs in a row in the real extension host (bench/ext-suite/reliability.test.ts): Show Attention
// pressed every 2.3 s, 50 times, on a whole 20,000-line file with stories260K (what the trial that
// found runs piling up did). Reports
// - host_rss_growth: the extension host's resident memory after all runs / after 5 (target <= 1.2);
// - newest_run_shown_ms: from the newest run's completion on the host to the panel showing it,
//   its grid painted (target <= 2000).
// BENCH_RELIABILITY_EXTENSION=/other/checkout measures another build of the extension the same way.
import * as path from 'node:path';
import { ROOT, table } from './util';
import { ensureBuiltAll } from './real-run';
import { runExtSuite } from './ext-suite/run';
import { storyLines } from '../test/harness/texts';
import { TARGETS, verdict } from './targets';

const TARGET_GROWTH = TARGETS.hostRssGrowth;
const TARGET_SHOWN = TARGETS.newestRunShown;


export async function reliabilitySection() {
  ensureBuiltAll();
  const runs = Number(process.env.RELIABILITY_RUNS ?? 50);
  const r = await runExtSuite({
    name: 'reliability',
    files: { 'big.txt': `${storyLines(20_000)}\n` },
    extension: process.env.BENCH_RELIABILITY_EXTENSION ?? ROOT,
    env: { RELIABILITY_MODEL: path.resolve(ROOT, '../shared/models/stories260K'), RELIABILITY_RUNS: String(runs) },
    timeoutMs: 40 * 60_000,
  });
  table(`reliability (Show Attention pressed every ${r.gap_ms} ms, ${runs} times, on a 20,000-line file; stories260K in code-server)`, [
    { measure: 'extension host RSS after all runs / after 5', value: `${r.host_rss_growth} (${r.rss_after_5_mib} -> ${r.rss_after_all_mib} MiB)`, target: TARGET_GROWTH.label, '': verdict(r.host_rss_growth as number, TARGET_GROWTH) },
    { measure: "newest run: host done -> panel painted / all layers in the panel", value: `${r.newest_run_shown_ms} / ${r.newest_run_complete_ms} ms`, target: TARGET_SHOWN.label, '': verdict(r.newest_run_shown_ms as number, TARGET_SHOWN) },
    { measure: 'runs completed in the panel', value: String(r.runs_completed_in_panel), target: '', '': '' },
  ]);
  return r;
}
