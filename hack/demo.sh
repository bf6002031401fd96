#!/usr/bin/env bash
# Builds hako and runs a real container: a busybox rootfs made from Debian's
# busybox-static (nothing is downloaded), in new PID, mount, UTS, IPC and
# network namespaces, with pivot_root, a fresh /proc and a read-only root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo $0)" >&2; exit 1; }
DEPS=build . hack/deps.sh
go build -tags netgo,osusergo -o hako ./cmd/hako
bundle=$(mktemp -d /tmp/hako-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle"/rootfs/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for a in sh ls cat ps hostname id mount echo; do ln -s busybox "$bundle/rootfs/bin/$a"; done
./hako spec --bundle "$bundle"
sed -i 's/"terminal": true/"terminal": false/; s/"hostname": "runc"/"hostname": "hako"/; s/"sh"$/"sh", "-c", "echo \\"hello from $(hostname), I am pid $$\\"; ps; id; cat \/proc\/self\/mountinfo | head -3"/' "$bundle/config.json"
./hako --root /run/hako-demo run --bundle "$bundle" demo-$$
