#!/usr/bin/env bash
# Installs what building and testing hako needs on Debian 12, as root;
# sourced with DEPS=build only what building and the demo need.
# Go itself (1.26) is expected on PATH or at /usr/local/go/bin.
set -euo pipefail
pkgs=(gcc libseccomp-dev busybox-static)
if [ "${DEPS:-test}" != build ]; then
	pkgs+=(uidmap iproute2 procps file bsdutils bubblewrap time
		podman containerd docker.io slirp4netns fuse-overlayfs
		# test/cri: the CNI bridge of its private containerd, portmap's
		# iptables, critest's ipcmk (util-linux).
		containernetworking-plugins iptables util-linux
		# test/vm boots Debian's 6.1 kernel (a pure cgroup v2 host) under
		# qemu; installing the image does not change the running kernel.
		qemu-system-x86 linux-image-amd64
		# test/vm's systemd VM boots this machine's own userland with
		# systemd as PID 1 (the systemd cgroup driver's tests).
		systemd dbus dbus-user-session)
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "hako: Go 1.26 is needed (https://go.dev/dl/)" >&2; exit 1; }
