#!/bin/sh
# /init of the test VM (see vm_test.go). It proves hako on a pure cgroup v2
# host and prints one "HAKO-VM-CHECK <name> PASS|FAIL <detail>" line per
# check, then "HAKO-VM-DONE", then powers the VM off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# Stage 1. The kernel's initramfs is "rootfs", which pivot_root(2) cannot
# leave (EINVAL), so hako could not pivot into a container's root. Copy
# everything onto a tmpfs and switch_root there; stage 2 is this script
# again, on a root that is an ordinary mount.
if [ ! -e /.stage2 ]; then
	mount -t proc proc /proc
	mkdir -p /newroot
	mount -t tmpfs -o mode=755 tmpfs /newroot
	for d in /*; do
		case "$d" in /newroot | /proc) continue ;; esac
		cp -a "$d" /newroot/
	done
	mkdir -p /newroot/proc
	touch /newroot/.stage2
	umount /proc
	exec switch_root /newroot /init
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Pure cgroup v2: only the unified hierarchy, no v1 controllers anywhere.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpu +memory +pids +io +cpuset" >/sys/fs/cgroup/cgroup.subtree_control
# overlay (and anything else vm_test.go found as a module) is loaded when
# packed; hako's busybox bundles do not need it, but other runtimes' do.
for m in /modules/*.ko; do [ -e "$m" ] && insmod "$m"; done

uname -r
cat /sys/fs/cgroup/cgroup.subtree_control

CG=/sys/fs/cgroup
HAKO="hako --root /run/hako"
ERR=/tmp/hako.err

pass() { echo "HAKO-VM-CHECK $1 PASS $2"; }
fail() { echo "HAKO-VM-CHECK $1 FAIL $2"; }
# check NAME DETAIL CMD...: PASS when CMD succeeds.
check() {
	n=$1 d=$2
	shift 2
	if "$@"; then pass "$n" "$d"; else fail "$n" "$d"; fi
}
one_line() { tr '\n' ' ' <"$1" | cut -c1-300; }

# pid_of ID: the container's init pid, from hako state.
pid_of() {
	$HAKO state "$1" 2>>$ERR | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'
}
# cg_of PID: the absolute cgroup directory of PID, from /proc/PID/cgroup.
cg_of() {
	p=$(sed -n 's/^0:://p' "/proc/$1/cgroup")
	echo "$CG$p"
}
status_of() {
	$HAKO state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'
}

# (0) the host is what this test claims: a 6.1 kernel and cgroup2 only.
v1=$(grep -c ' cgroup ' /proc/mounts)
check host-pure-v2 "kernel=$(uname -r) v1-mounts=$v1 controllers=[$(cat $CG/cgroup.subtree_control)]" \
	[ "$v1" = 0 -a -e $CG/cgroup.controllers ]

# (1) run, output and exit code.
out=$(cd /bundles/echo && $HAKO run echo1 2>$ERR)
rc=$?
if [ "$rc" = 7 ] && [ "$out" = hello-from-container ]; then
	pass run-exit-code "rc=$rc out=$out"
else
	fail run-exit-code "rc=$rc out=$out err=$(one_line $ERR)"
fi

# (1b) the default config's "cgroup" mount at /sys/fs/cgroup must become a
# cgroup2 mount on a v2 host.
out=$(cd /bundles/cgmount && $HAKO run cgm1 2>&1)
rc=$?
cgm() { [ "$rc" = 0 ] && echo "$out" | grep -q " - cgroup2 "; }
check container-cgroup2-mount "rc=$rc mountinfo: $(echo "$out" | tr '\n' ' ')" cgm

# (2) memory and pids limits, read from the host side.
(cd /bundles/limits && $HAKO run -d lim </dev/null >/tmp/lim.out 2>$ERR)
rc=$?
pid=$(pid_of lim)
if [ "$rc" != 0 ] || [ -z "$pid" ]; then
	fail limits "run -d rc=$rc pid=$pid err=$(one_line $ERR)"
	LCG=
else
	LCG=$(cg_of "$pid")
	mem=$(cat "$LCG/memory.max" 2>&1)
	pids=$(cat "$LCG/pids.max" 2>&1)
	check limits "cgroup=$LCG memory.max=$mem pids.max=$pids" \
		[ "$mem" = 67108864 -a "$pids" = 20 ]
fi

# (3) update.
if [ -n "$LCG" ]; then
	$HAKO update --memory 128m --pids-limit 30 lim 2>$ERR
	rc=$?
	mem=$(cat "$LCG/memory.max" 2>&1)
	pids=$(cat "$LCG/pids.max" 2>&1)
	check update "rc=$rc memory.max=$mem pids.max=$pids err=$(one_line $ERR)" \
		[ "$rc" = 0 -a "$mem" = 134217728 -a "$pids" = 30 ]
else
	fail update "no container from the limits check"
fi

# (4) pause and resume through cgroup.freeze.
if [ -n "$LCG" ]; then
	$HAKO pause lim 2>$ERR
	rc=$?
	fz=$(cat "$LCG/cgroup.freeze")
	ev=$(grep frozen "$LCG/cgroup.events")
	st=$(status_of lim)
	check pause "rc=$rc freeze=$fz events=[$ev] status=$st err=$(one_line $ERR)" \
		[ "$rc" = 0 -a "$fz" = 1 -a "$ev" = "frozen 1" -a "$st" = paused ]
	$HAKO resume lim 2>$ERR
	rc=$?
	fz=$(cat "$LCG/cgroup.freeze")
	ev=$(grep frozen "$LCG/cgroup.events")
	st=$(status_of lim)
	check resume "rc=$rc freeze=$fz events=[$ev] status=$st err=$(one_line $ERR)" \
		[ "$rc" = 0 -a "$fz" = 0 -a "$ev" = "frozen 0" -a "$st" = running ]
else
	fail pause "no container from the limits check"
	fail resume "no container from the limits check"
fi

# (5) a fork loop under pids.max 20: the container tries for 60 sleeps.
(cd /bundles/forkbomb && $HAKO run -d fb </dev/null >/tmp/fb.out 2>&1)
rc=$?
pid=$(pid_of fb)
if [ "$rc" != 0 ] || [ -z "$pid" ]; then
	fail pids-fork-loop "run -d rc=$rc pid=$pid err=$(one_line $ERR)"
else
	FCG=$(cg_of "$pid")
	i=0
	# Under TCG the loop takes a while; wait for it to report.
	while [ $i -lt 60 ] && ! grep -q spawned /tmp/fb.out; do
		sleep 1
		i=$((i + 1))
	done
	cur=$(cat "$FCG/pids.current")
	peak=$(cat "$FCG/pids.peak" 2>/dev/null || echo n/a)
	maxev=$(sed -n 's/^max //p' "$FCG/pids.events")
	forkerr=$(grep -c "can't fork" /tmp/fb.out)
	check pids-fork-loop "pids.current=$cur peak=$peak pids.events-max=$maxev fork-errors=$forkerr after ${i}s output=$(one_line /tmp/fb.out)" \
		[ "$cur" -le 20 -a "$forkerr" -gt 0 -a "${maxev:-0}" -ge 1 ]
	# (5b) kill --all KILL through cgroup.kill (runc 1.2+): the kernel
	# kills the full cgroup at once, no freeze. Death is asynchronous, so
	# wait (bounded) for "populated 0" rather than timing anything.
	before=$(wc -l <"$FCG/cgroup.procs")
	$HAKO --debug kill --all fb KILL >/tmp/kill.out 2>&1
	rc=$?
	i=0
	while [ $i -lt 30 ] && ! grep -q "populated 0" "$FCG/cgroup.events"; do
		sleep 1
		i=$((i + 1))
	done
	pop=$(grep populated "$FCG/cgroup.events")
	viakill=$(grep -c "cgroup.kill: complete=true err=<nil>" /tmp/kill.out)
	check kill-all-cgroup-kill "rc=$rc procs-before=$before events=[$pop] via-cgroup.kill=$viakill after ${i}s log=$(one_line /tmp/kill.out)" \
		[ "$rc" = 0 -a "$before" -gt 1 -a "$pop" = "populated 0" -a "$viakill" -ge 1 ]
	$HAKO delete --force fb 2>>$ERR
fi

# (6) delete --force removes the cgroup.
if [ -n "$LCG" ]; then
	$HAKO delete --force lim 2>$ERR
	rc=$?
	left=no
	[ -e "$LCG" ] && left=yes
	check delete-removes-cgroup "rc=$rc cgroup=$LCG still-there=$left err=$(one_line $ERR)" \
		[ "$rc" = 0 -a "$left" = no ]
else
	fail delete-removes-cgroup "no container from the limits check"
fi

# (7) devices (eBPF device filter on v2). /xkmsg in the bundle's rootfs is
# c 1:11 (kmsg), packed as a node: writing kmsg needs no capability, so
# only the device filter can stop it. The host side can write it.
echo "hako-vm: host write to kmsg" >/bundles/rootfs/xkmsg 2>/dev/null
hostrc=$?
out=$(cd /bundles/devdeny && $HAKO run dd1 2>&1)
rc=$?
# The container prints "mknod=RC write=RC pre=RC": denied when the packed
# node cannot be written and a fresh node either cannot be made or written.
denied() {
	[ "$hostrc" = 0 -a "$rc" = 0 ] &&
		echo "$out" | grep -q "pre=[1-9]" &&
		echo "$out" | grep -q -e "mknod=[1-9]" -e "write=[1-9]"
}
check devices-denied "host-write-rc=$hostrc rc=$rc container: $(echo "$out" | tr '\n' ' ')" denied
# Control: the same write with a rule allowing c 1:11 must work, or the
# check above proves nothing.
out=$(cd /bundles/devallow && $HAKO run da1 2>&1)
rc=$?
allowed() { [ "$rc" = 0 ] && echo "$out" | grep -q "pre=0"; }
check devices-allowed-rule "rc=$rc container: $(echo "$out" | tr '\n' ' ')" allowed

# (8) hako doctor and hako inspect on a pure cgroup v2 host.
out=$($HAKO doctor 2>&1)
rc=$?
doctor_v2() { echo "$out" | grep -q "cgroup mode *v2"; }
check doctor-v2 "rc=$rc $(echo "$out" | grep 'cgroup mode' | head -1)" doctor_v2
(cd /bundles/limits && $HAKO run -d insp </dev/null >/dev/null 2>$ERR)
ipid=$(pid_of insp)
out=$($HAKO inspect --json insp 2>&1)
rc=$?
# Its own PID namespace (it is pid 1 there), and its cgroup named.
inspected() {
	[ "$rc" = 0 ] && [ -n "$ipid" ] &&
		echo "$out" | grep -q "\"pid\": *$ipid" &&
		echo "$out" | grep -q '"nspid": *\[' &&
		echo "$out" | grep -q "/insp\""
}
check inspect-container "rc=$rc pid=$ipid $(echo "$out" | head -c 200 | tr '\n' ' ')" inspected
$HAKO delete --force insp 2>>$ERR

# (9) the same as an unprivileged user (uid 1000, no /etc/subuid range, no
# newuidmap here): doctor --rootless probes for real (it fails the missing
# newuidmap, exit 1), and inspect --properties reads the user's own process
# (its namespaces readable to its owner; no property in force; PID 1's
# network namespace, unreadable to it and not of fixed inode on 6.1, is not
# taken for another).
printf 'root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/tmp:/bin/sh\n' >/etc/passwd
printf 'root:x:0:\nu:x:1000:\n' >/etc/group
# busybox su: root needs no password, and it execs the shell.
as_u() { su -s /bin/sh u -c "$*"; }
out=$(as_u hako doctor --rootless 2>&1)
rc=$?
doctor_user() {
	[ "$rc" = 1 ] && echo "$out" | grep -q "uid 1000, rootless" &&
		echo "$out" | grep -q "^ok   user namespaces" && echo "$out" | grep -q "cgroup mode *v2"
}
check doctor-unprivileged "rc=$rc $(echo "$out" | grep -e 'user namespaces' -e 'cgroup mode' | tr '\n' ' ')" doctor_user
su -s /bin/sh u -c "exec sleep 1000" &
upid=$!
sleep 1
out=$(as_u hako inspect --properties $upid 2>&1)
rc=$?
inspected_user() {
	[ "$rc" = 0 ] && echo "$out" | grep -q "^  user  *[0-9]* *host" &&
		echo "$out" | grep -q "not in force: PrivateTmp" && ! echo "$out" | grep -q "permission denied" &&
		! echo "$out" | grep -q -e "^  PrivateNetwork=" -e "^  net  *[0-9]* *own"
}
check inspect-unprivileged "rc=$rc $(echo "$out" | grep -e '^  user' -e '^  net' -e 'PrivateNetwork' | cut -c1-120 | tr '\n' ' ')" inspected_user
kill $upid

# (10) hako sandbox on a pure cgroup v2 host. A private /tmp under a
# read-only tree; nothing of it reaches the host. (stdin from /dev/null:
# the console is a terminal, and the sandbox would give COMMAND a pty.)
mkdir -p /var/tmp
out=$(cd / && hako sandbox -p PrivateTmp=yes -p ProtectSystem=strict -- sh -c 'echo x >/tmp/sbx-file && cat /tmp/sbx-file && touch /etc/sbx-file 2>/dev/null; echo etc=$?' </dev/null 2>&1)
rc=$?
leak=no
[ -e /tmp/sbx-file -o -e /etc/sbx-file ] && leak=yes
check sandbox-private-tmp-strict "rc=$rc leak=$leak out=$(echo "$out" | tr '\n' ' ')" \
	[ "$rc" = 0 -a "$out" = "x
etc=1" -a "$leak" = no ]

# (11) resource properties through the cgroup manager, read back from
# inside: COMMAND runs in <sandbox>/command with TasksMax, the other
# limits sit on <sandbox>; a fork loop stays within TasksMax.
cat >/tmp/sbx-limits.sh <<'EOS'
d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "cg=${d##*/} pids.max=$(cat $d/pids.max) memory.max=$(cat $d/../memory.max) memory.high=$(cat $d/../memory.high) cpu.max=$(cat $d/../cpu.max) cpu.weight=$(cat $d/../cpu.weight)"
# busybox sh exits at a fork that fails: the storm runs in a subshell.
(i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i + 1)); done) 2>/dev/null
read peak <$d/pids.peak
echo "pids.peak=$peak max-events=$(sed -n 's/^max //p' $d/pids.events)"
EOS
out=$(cd / && hako sandbox --receipt /tmp/sbx-receipt.json -p MemoryMax=64M -p MemoryHigh=48M -p TasksMax=8 -p CPUQuota=50% -p CPUWeight=50 -- sh /tmp/sbx-limits.sh </dev/null 2>&1)
rc=$?
okreceipt=$(grep -c '"ok": true' /tmp/sbx-receipt.json)
badreceipt=$(grep -c '"ok": false' /tmp/sbx-receipt.json)
left=$(find $CG -name 'hako-sandbox-*' | tr '\n' ' ')
limits_ok() {
	[ "$rc" = 0 -a "$badreceipt" = 0 -a -z "$left" ] &&
		echo "$out" | grep -q "cg=command pids.max=8 memory.max=67108864 memory.high=50331648 cpu.max=50000 100000 cpu.weight=50" &&
		echo "$out" | grep -q "pids.peak=8 max-events=[1-9]"
}
check sandbox-limits-v2 "rc=$rc receipt-ok=$okreceipt receipt-failed=$badreceipt left=[$left] out=$(echo "$out" | tr '\n' ' ')" limits_ok

# (12) unprivileged: limits in a delegated subtree (as systemd's
# user@.service gets one), refused with the cause in one that is not.
echo "sb:x:1001:1001::/tmp:/bin/sh" >>/etc/passwd
echo "sb:x:1001:" >>/etc/group
mkdir -p $CG/u/shell
echo "+memory +pids +cpu" >$CG/u/cgroup.subtree_control
chown 1001:1001 $CG/u $CG/u/cgroup.procs $CG/u/cgroup.subtree_control $CG/u/cgroup.threads \
	$CG/u/shell $CG/u/shell/cgroup.procs $CG/u/shell/cgroup.subtree_control $CG/u/shell/cgroup.threads
cat >/tmp/sbx-user.sh <<'EOS'
hako sandbox -p TasksMax=6 -p MemoryMax=32M -- sh -c 'id -u; cat /sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/pids.max'
EOS
out=$(sh -c "echo \$\$ >$CG/u/shell/cgroup.procs && cd /tmp && exec su -s /bin/sh sb /tmp/sbx-user.sh" </dev/null 2>&1)
rc=$?
left=$(find $CG/u -name 'hako-sandbox-*' | tr '\n' ' ')
check sandbox-rootless-delegated "rc=$rc left=[$left] out=$(echo "$out" | tr '\n' ' ')" \
	[ "$rc" = 0 -a "$out" = "1001
6" -a -z "$left" ]
out=$(cd /tmp && su -s /bin/sh sb -c 'hako sandbox -p TasksMax=6 -- echo RAN' </dev/null 2>&1)
rc=$?
refused() { [ "$rc" = 1 ] && echo "$out" | grep -q "delegated to its user" && ! echo "$out" | grep -q RAN; }
check sandbox-rootless-undelegated-refused "rc=$rc out=$(echo "$out" | tr '\n' ' ')" refused
rmdir $CG/u/shell $CG/u 2>/dev/null

# (13) --overlay needs layers as fds (fsconfig lowerdir+, Linux 6.13): on
# this 6.1 kernel it is refused, saying so, before COMMAND runs.
mkdir -p /tmp/ovl
out=$(cd / && hako sandbox --overlay /tmp/ovl -- echo RAN </dev/null 2>&1)
rc=$?
ovl_refused() { [ "$rc" = 1 ] && echo "$out" | grep -q "Linux 6.13 or later" && ! echo "$out" | grep -q RAN; }
check sandbox-overlay-needs-6.13 "rc=$rc out=$(echo "$out" | tr '\n' ' ')" ovl_refused

# Nothing may be left behind in the cgroup tree.
left=$(find $CG -mindepth 1 -type d | tr '\n' ' ')
check no-cgroups-left "dirs=[$left]" [ -z "$left" ]

echo HAKO-VM-DONE
sync
poweroff -f
