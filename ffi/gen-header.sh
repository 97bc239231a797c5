#!/usr/bin/env bash
# Generates include/evqueue.h from the ffi crate with the pinned cbindgen.
#   bash ffi/gen-header.sh            regenerate include/evqueue.h
#   bash ffi/gen-header.sh --verify   fail if regenerating would change a byte
#
# Why a pinned `cargo install` rather than cbindgen as a build-dependency:
# the header is a committed artefact, checked in CI, so generation belongs in
# an explicit step; a build script would recompile cbindgen (syn, serde,
# clap...) into every build of the workspace and rewrite a tracked file as
# a side effect of `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  echo "installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install cbindgen --version "=$CBINDGEN_VERSION" --locked --quiet
fi
out=include/evqueue.h
if [ "${1:-}" = "--verify" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  cbindgen --quiet --config ffi/cbindgen.toml --crate evqueue-ffi --output "$tmp" ffi
  if ! diff -u "$out" "$tmp"; then
    echo "include/evqueue.h is stale: run bash ffi/gen-header.sh and commit it" >&2
    exit 1
  fi
  echo "include/evqueue.h is up to date"
else
  cbindgen --quiet --config ffi/cbindgen.toml --crate evqueue-ffi --output "$out" ffi
  echo "wrote $out"
fi
