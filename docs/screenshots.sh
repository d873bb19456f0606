#!/usr/bin/env bash
# Starts the demo (Meridian on the shipped configuration, six fake Vault nodes), makes
# something worth looking at (node 1 sealed, node 4 leading), and screenshots the status
# page into docs/ at 1200 px and at a phone's 390 px, failing if the page overflows
# sideways. Needs Debian's chromium and npm (playwright-core is installed in a
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "install chromium (apt-get install chromium)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
npm install --silent --prefix "$tmp" playwright-core@1 >/dev/null
cp docs/screenshots.mjs "$tmp/"
cargo build --quiet
target/debug/meridian serve --config meridian.yaml 2>"$tmp/meridian.log" &
python3 demo/fake-vault.py serve >"$tmp/vault.log" 2>&1 &
for _ in $(seq 100); do
  curl -sf 127.0.0.1:9153/healthz >/dev/null && break
  sleep 0.2
done
sleep 6
python3 demo/fake-vault.py step-down 4 >/dev/null
python3 demo/fake-vault.py seal 1 >/dev/null
sleep 7
node "$tmp/screenshots.mjs" http://127.0.0.1:9153/ docs
