// The extension host's side:
// - max_block_ms: the longest the host's event loop stalls during a run at T = 512, in a child
//   process that drives EngineClient with the built worker (out/worker.js) and handles every
//   message as the extension does (bench/host-driver.ts); cold (model load) and warm runs;
// - the host's share of a hover (Run.attended, as RunState.attendedIn calls it: mean, one head, rollout) at T = 512;
// - activation_ms: activate() of the real extension in a real VS Code extension host
//   (code-server), timed by a mocha suite (bench/ext-suite) bundled with the integration runner.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, ensureModel, median, round, table } from './util';
import { runExtSuite } from './ext-suite/run';
import { BENCH_CACHE, ensureBuiltAll } from './real-run';
import { TARGETS, verdict } from './targets';
import type { BlockMeasure } from './host-driver';

const run = promisify(execFile);
const T = 512;
const WARM_RUNS = 4;
const ACTIVATIONS = Number(process.env.BENCH_ACTIVATIONS ?? 1);

/** Runs bench/host-driver.ts in a fresh Node process and returns its RESULT line. */
export async function runDriver(mode: 'block' | 'memory', t: number, n: number): Promise<any> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(ROOT, 'bench/host-driver.ts'), mode, String(t), String(n)], {
    cwd: ROOT,
    maxBuffer: 64 * 2 ** 20,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`host driver printed no result:\n${stdout.slice(-2000)}`);
  return JSON.parse(line.slice(7));
}

/** activate() of the real extension in code-server, timed by bench/ext-suite/activation.test.ts. */
export async function measureActivation(): Promise<Record<string, unknown>> {
  return runExtSuite({ name: 'activation', files: { 'notes.md': 'The quick brown fox jumps over the lazy dog.\n' } });
}

export async function hostSection() {
  ensureBuiltAll();
  ensureModel(); // the driver loads it (generated here when this section runs before engine, e.g. --only host)
  fs.mkdirSync(BENCH_CACHE, { recursive: true });
  const block = await runDriver('block', T, WARM_RUNS);
  const warm = block.warm as Array<BlockMeasure & { runMs: number }>;
  const maxBlock = Math.max(...warm.map((w) => w.maxBlockMs));
  const activations: Array<Record<string, unknown>> = [];
  let activationError: string | null = null;
  for (let i = 0; i < ACTIVATIONS; i++) {
    try {
      activations.push(await measureActivation());
    } catch (e) {
      activationError = String((e as Error).message ?? e).split('\n')[0];
      break;
    }
  }
  const actMs = activations.map((a) => a.activation_ms as number);
  const activation = actMs.length ? round(median(actMs), 1) : null;
  const hover = block.hover as Record<string, number>;
  const out = {
    tokens: block.T,
    run_state: block.runState,
    max_block_ms: round(maxBlock, 1),
    max_block_cold_ms: round(block.cold.maxBlockMs, 1),
    event_loop_p99_ms: round(Math.max(...warm.map((w) => w.p99Ms)), 2),
    // What the longest stalls are made of: one GC pause, one run handler (onLayer includes the
    // emulated VS Code serialisation, which copies the layer's 6 MiB into the outgoing message).
    gc_max_ms: round(Math.max(...warm.map((w) => w.gcMaxMs)), 1),
    handler_max_ms: round(Math.max(...warm.map((w) => w.handlerMaxMs)), 1),
    layer_handler_max_ms: round(Math.max(...warm.map((w) => w.handlerMaxBy.layer ?? 0)), 1),
    // All of a run's layer handlers together (EngineClient delivers one message per turn).
    layer_handlers_total_ms: round(median(warm.map((w) => w.handlerTotalBy.layer ?? 0)), 1),
    start_handler_max_ms: round(Math.max(...warm.map((w) => w.handlerMaxBy.start ?? 0)), 1),
    run_ms: round(median(warm.map((w) => w.runMs)), 0),
    cold_run_ms: round(block.cold.runMs, 0),
    warm_runs: warm,
    hover_attended_mean_ms: hover.mean_ms !== undefined ? round(hover.mean_ms, 1) : null,
    hover_attended_head_ms: hover.head_hidden_specials_ms !== undefined ? round(hover.head_hidden_specials_ms, 1) : null,
    hover_rollout_first_ms: hover.rollout_first_ms !== undefined ? round(hover.rollout_first_ms, 1) : null,
    hover_rollout_next_ms: hover.rollout_next_ms !== undefined ? round(hover.rollout_next_ms, 1) : null,
    // Until the head means are ready the rollout hover answers "being computed"; one is computed per turn.
    hover_rollout_step_max_ms: hover.rollout_step_max_ms !== undefined ? round(hover.rollout_step_max_ms, 1) : null,
    hover_rollout_ready_ms: hover.rollout_ready_ms !== undefined ? round(hover.rollout_ready_ms, 1) : null,
    hover_error: (hover as { error?: string }).error ?? null,
    // A newer request while a run streams its payloads: its start, from the old run's first payload (median of 3).
    supersede_start_ms: round(median(block.supersede as number[]), 1),
    supersede_samples_ms: (block.supersede as number[]).map((x) => round(x, 1)),
    activation_ms: activation,
    activations,
    activation_error: activationError,
  };
  table(`host (event loop of a process driving EngineClient + out/worker.js at T=${block.T}, ${WARM_RUNS} warm runs; activation in code-server)`, [
    { measure: 'max event-loop block during a warm run', value: `${out.max_block_ms} ms`, target: TARGETS.hostBlock.label, '': verdict(out.max_block_ms, TARGETS.hostBlock) },
    {
      measure: '  made of: 12 run/layer handlers (sum; longest) / run/start / GC',
      value: `${out.layer_handlers_total_ms}; ${out.layer_handler_max_ms} / ${out.start_handler_max_ms} / ${out.gc_max_ms} ms`,
      target: '',
      '': '',
    },
    { measure: 'max block during the cold run (model load)', value: `${out.max_block_cold_ms} ms`, target: TARGETS.hostBlock.label, '': verdict(out.max_block_cold_ms, TARGETS.hostBlock) },
    { measure: 'host hover (Run.attended), mean of heads', value: `${out.hover_attended_mean_ms} ms`, target: TARGETS.hostBlock.label, '': verdict(out.hover_attended_mean_ms, TARGETS.hostBlock) },
    {
      measure: 'host hover, rollout: first / longest background step / next (ready after)',
      value: `${out.hover_rollout_first_ms} / ${out.hover_rollout_step_max_ms} / ${out.hover_rollout_next_ms} ms (${out.hover_rollout_ready_ms} ms)`,
      target: TARGETS.hostBlock.label,
      '': verdict(Math.max(out.hover_rollout_first_ms ?? Infinity, out.hover_rollout_step_max_ms ?? Infinity, out.hover_rollout_next_ms ?? Infinity), TARGETS.hostBlock),
    },
    { measure: 'run (request -> last layer), warm / cold', value: `${out.run_ms} / ${out.cold_run_ms} ms`, target: '', '': '' },
    { measure: 'a newer request mid-stream: its start after the old run\'s first payload (median of 3)', value: `${out.supersede_start_ms} ms`, target: '', '': '' },
    {
      measure: 'activation in code-server (activate() of the inactive extension)',
      value: activation === null ? `failed: ${activationError}` : `${activation} ms${activations[0]?.was_active ? ' (was already active!)' : ''}`,
      target: TARGETS.activation.label,
      '': verdict(activation, TARGETS.activation),
    },
  ]);
  return out;
}
