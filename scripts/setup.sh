#!/usr/bin/env bash
# Sets up splice on a fresh Debian machine that has only Node and npm: Deno from the npm registry
# into .tools/, Debian's mesa-vulkan-drivers (llvmpipe, a Vulkan device on the CPU) where no
# Vulkan driver is installed, and the npm dependencies. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6

if [ ! -x .tools/node_modules/.bin/deno ]; then
  echo "setup: installing deno@$DENO_VERSION from npm into .tools/" >&2
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
fi

have_vulkan_driver() {
  compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null
}
if ! have_vulkan_driver; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: no Vulkan driver found; installing mesa-vulkan-drivers (llvmpipe)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq mesa-vulkan-drivers >&2
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq >&2 && sudo apt-get install -y -qq mesa-vulkan-drivers >&2
  else
    echo "setup: no Vulkan driver found. Install one, e.g.: sudo apt-get install -y mesa-vulkan-drivers" >&2
    exit 1
  fi
fi

./deno install --quiet >&2
echo "setup: ok ($(./deno --version | head -1))" >&2
