#!/usr/bin/env bash
# The test command (npm test): installs what the tests need, lints, builds, packages the VSIX, then runs
# every suite under node's test runner, whose closing summary counts them all:
#   test/unit        engine + math against PyTorch references, offsets, downloads, worker, CLI
#   test/webview     the built panel bundle in real Chromium
#   test/integration mocha inside a real VS Code extension host (code-server)
#   test/e2e         real Chromium driving the real workbench with the VSIX installed
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci
npm run lint                 # fails fast on lint errors (eslint.config.mjs), before the slow steps
bash scripts/setup-tools.sh
npm run package >/dev/null   # every VSIX (dist/, attention-lens.vsix) for the package and end-to-end tests
npm run build                # then the dev build: source maps and the extension-host test suite
mkdir -p test-output

# test/integration/*.test.ts run inside the extension host, started by test/e2e/extension-host.test.ts.
files=(test/unit/*.test.ts test/webview/*.test.ts test/e2e/*.test.ts)
exec node --import tsx --test --test-concurrency=1 --test-timeout=900000 --test-reporter=spec "${files[@]}"
