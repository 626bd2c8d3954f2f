// Runs the mocha suite of test/integration inside a real VS Code extension host (code-server),
// through test/harness/runIntegration.ts, and fails when any of its tests fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../harness/tools';

test('integration suite inside the real extension host', () => {
  const reportFile = path.join(REPO_ROOT, 'test-output/integration/report.json');
  fs.rmSync(reportFile, { force: true }); // never read a previous run's result
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/harness/runIntegration.ts')], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { passes: number; failures: number; failed: Array<{ title: string; error: string }> };
  assert.deepEqual(report.failed, []);
  assert.equal(r.status, 0, `runIntegration exited ${r.status}`);
  assert.ok(report.passes >= 10, `${report.passes} integration tests passed`);
});
