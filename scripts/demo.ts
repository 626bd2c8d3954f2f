// npm run demo [-- --screenshot out.png] [-- --port N]
// Builds the VSIX, starts a real VS Code (code-server) on 127.0.0.1 with it installed, a sample
// file open and the model set to ../shared/models/stories260K when present (else the default),
// and prints the URL. With --screenshot it also drives Chromium through select, Show Attention and
// a hover, saves the picture and exits.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startCodeServer } from '../test/harness/codeServer';
import { launchBrowser, openWorkbench, workbenchUrl } from '../test/harness/browser';
import { makeTempDir, REPO_ROOT } from '../test/harness/tools';
import { STORY, hoverPanelToken, showAttentionOn } from '../test/harness/flow';
import { hostTarget } from './package';

const SAMPLE_CODE = `// Attention Lens works on code too: select a function and run Show Attention.
export function fibonacci(n: number): number {
  let [a, b] = [0, 1];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}
`;

async function main() {
  const { values } = parseArgs({ options: { screenshot: { type: 'string' }, 'skip-build': { type: 'boolean', default: false } } });
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: REPO_ROOT, stdio: 'inherit' });
  run('bash', ['scripts/setup-tools.sh']);
  if (!values['skip-build'] || !fs.existsSync(path.join(REPO_ROOT, 'attention-lens.vsix'))) run(process.execPath, ['--import', 'tsx', 'scripts/package.ts', '--target', hostTarget()]); // this machine's VSIX only

  const local = path.resolve(REPO_ROOT, '../shared/models/stories260K');
  const model = fs.existsSync(path.join(local, 'config.json')) ? local : undefined;
  const workspace = makeTempDir('attention-lens-demo');
  fs.writeFileSync(path.join(workspace, 'story.txt'), `${STORY}\n`);
  fs.writeFileSync(path.join(workspace, 'fibonacci.ts'), SAMPLE_CODE);

  const server = await startCodeServer({
    workspace,
    name: 'demo',
    vsix: [path.join(REPO_ROOT, 'attention-lens.vsix')],
    settings: {
      ...(model ? { 'attentionLens.model': model, 'attentionLens.offline': true } : {}),
      'workbench.colorTheme': 'Default Dark Modern',
    },
  });
  const url = workbenchUrl(server.url, workspace);
  console.log(`\nAttention Lens demo: open ${url}`);
  console.log(`Model: ${model ?? 'the default (downloaded on first use)'}. Open story.txt, select text, run "Attention Lens: Show Attention" (Ctrl+Alt+A).`);

  if (values.screenshot) {
    const browser = await launchBrowser();
    try {
      await openWorkbench(browser.page, url);
      const frame = await showAttentionOn(browser.page, 'story.txt', STORY);
      const words = await hoverPanelToken(frame, 'Lily');
      await browser.page.waitForTimeout(1500); // let the editor decorations arrive
      fs.mkdirSync(path.dirname(path.resolve(values.screenshot)), { recursive: true });
      await browser.page.screenshot({ path: values.screenshot });
      console.log(`"Lily" attends to: ${words.join(', ')}`);
      console.log(`Saved ${values.screenshot}`);
    } finally {
      await browser.close();
      await server.stop();
    }
    return;
  }
  console.log('Press Ctrl+C to stop.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
