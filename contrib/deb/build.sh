#!/usr/bin/env bash
# Builds the Debian package: the release binary, its man page and shell completions
# (generated from the command-line definitions), the configuration, and the systemd unit.
# Prints the package's path. Needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
mkdir -p target/assets
bin=target/release/meridian
"$bin" generate man > target/assets/meridian.1
"$bin" generate bash > target/assets/meridian.bash
"$bin" generate zsh > target/assets/_meridian
"$bin" generate fish > target/assets/meridian.fish
cargo deb --no-build --locked --strip 2>&1 | tail -1
