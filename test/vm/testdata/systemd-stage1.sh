#!/bin/sh
# /init of the systemd VM (systemd_test.go): boot Debian's systemd as PID 1
# on the test machine's own userland, shared read-only over virtio 9p with
# a tmpfs overlay on top, so the VM has exactly the systemd, dbus and
# engines installed here without building an image.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay; do
	[ -e /modules/$m.ko ] && insmod /modules/$m.ko
done
mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower || { echo "HAKO-VM-CHECK boot FAIL 9p mount"; poweroff -f; }
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot
# The build machine is a Docker container: systemd takes /.dockerenv (and
# podman's /run/.containerenv) to mean it runs in a container and then
# ignores the kernel command line, systemd.unified_cgroup_hierarchy=0
# included. Deleting them on the overlay hides them.
rm -f /newroot/.dockerenv /newroot/run/.containerenv
mount -t tmpfs tmpfs /newroot/run
mount -t tmpfs tmpfs /newroot/tmp
mkdir -p /newroot/hakotest
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hakotest /newroot/hakotest
# The test's units: a target with just what the checks need, reached
# instead of the host's default.target.
u=/newroot/etc/systemd/system
mkdir -p $u
cat >$u/vmcheck.target <<'UNIT'
[Unit]
Description=hako systemd driver test
Requires=basic.target vmcheck.service dbus.socket
After=basic.target
AllowIsolate=yes
UNIT
cat >$u/vmcheck.service <<'UNIT'
[Unit]
Description=hako systemd driver checks
After=basic.target dbus.socket
[Service]
Type=oneshot
ExecStart=/bin/sh /hakotest/checks.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
UNIT
umount /proc /sys /dev
exec switch_root /newroot /lib/systemd/systemd
