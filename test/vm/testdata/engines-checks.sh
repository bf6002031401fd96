#!/bin/sh
# Runs as the oneshot service of the systemd VM that engines_test.go boots
# (pure cgroup v2, systemd 252 as PID 1): hako under containerd 2.x's CRI
# with SystemdCgroup = true (kubeadm's setting), driven by crictl, and
# under Docker with native.cgroupdriver=systemd, each side by side with
# runc; the pods are on a CNI bridge. /hakotest holds hako, images.tar and
# env.sh (the tools' paths). Prints "HAKO-VM-CHECK <name> PASS|FAIL
# <detail>" per check, "HAKO-VM-TIME <phase> <milliseconds>ms", then
# HAKO-VM-DONE, then powers off.
export PATH=/hakotest:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
T=/hakotest
. $T/env.sh
ERR=/tmp/err
pass() { echo "HAKO-VM-CHECK $1 PASS $2"; }
fail() { echo "HAKO-VM-CHECK $1 FAIL $2"; }
# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "want [$2] got [$3] $(tail -c 1200 $ERR 2>/dev/null)"; fi; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }
units() { systemctl list-units --all --no-legend --plain "$@" 2>/dev/null | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//'; }
# the cgroup directories below $1 (empty when none or when $1 is gone)
subcgroups() { [ -d "$1" ] && find "$1" -mindepth 1 -type d | tr '\n' ' ' | sed 's/ $//'; }
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
# phase NAME: the milliseconds since the last phase
phase() { now=$(ms); echo "HAKO-VM-TIME $1 $((now - t0))ms"; t0=$now; }
# wait_for SECONDS CMD...: until CMD succeeds
wait_for() { n=$(($1 * 5)); shift; while ! "$@" >/dev/null 2>&1; do n=$((n - 1)); [ $n -le 0 ] && return 1; sleep 0.2; done; }

expect host-v2 cgroup2fs "$(stat -fc %T /sys/fs/cgroup)"
expect pid1-systemd systemd "$(cat /proc/1/comm)"
# The engines' data on a tmpfs: overlayfs cannot take the VM's overlay
# root as its upper layer.
mkdir -p /var/lib/hako-engines
mount -t tmpfs -o size=512m tmpfs /var/lib/hako-engines
# hako runs from the VM's memory like runc runs from the 9p root with its
# page cache: /hakotest is 9p without cache, where every exec would read
# the whole binary again and the timings would compare the two mounts.
mkdir -p /var/lib/hako-engines/bin
cp $T/hako /var/lib/hako-engines/bin/hako
HAKO=/var/lib/hako-engines/bin/hako

if [ "${ENGINES:-cri}" = cri ]; then
# ---------------------------------------------------------------------
# containerd 2.x, CRI, SystemdCgroup = true; the handlers as a kubeadm
# node's RuntimeClasses would name them.
C=/var/lib/hako-engines/containerd
SOCK=/run/hako-containerd/containerd.sock
mkdir -p $C
cat >$C/config.toml <<EOF
version = 3
root = "$C/root"
state = "/run/hako-containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "registry.k8s.io/pause:3.10"
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$C/cni"
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.hako]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.hako.options]
  BinaryName = "$HAKO"
  SystemdCgroup = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "$RUNC15"
  SystemdCgroup = true
EOF
# Pods on a CNI bridge (Debian's containernetworking-plugins), without
# masquerading: the VM has no uplink, and no iptables is needed.
mkdir -p $C/cni
cat >$C/cni/10-hako-vm.conflist <<EOF
{"cniVersion": "1.0.0", "name": "hako-vm", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$C/ipam", "ranges": [[{"subnet": "10.88.0.0/16"}]]}},
  {"type": "loopback"}]}
EOF
# As containerd.service does: Delegate=yes, KillMode=process (the shims
# live in its cgroup and outlive a restart).
systemd-run --unit hako-test-containerd -p Delegate=yes -p KillMode=process --setenv PATH=$CONTAINERD2:$PATH \
	$CONTAINERD2/containerd --config $C/config.toml >/dev/null 2>$ERR
mkdir -p /tmp/cri
cat >/tmp/cri/crictl.yaml <<EOF
runtime-endpoint: unix://$SOCK
image-endpoint: unix://$SOCK
timeout: 60
EOF
CRI="$CRICTL --config /tmp/cri/crictl.yaml"
wait_for 120 $CRI version
expect containerd-up 0 $?
$CTR --address $SOCK -n k8s.io images import $T/images.tar >/dev/null 2>$ERR
expect ctr-import 0 $?
phase containerd-start

for h in hako runc; do
	cat >/tmp/cri/pod-$h.json <<EOF
{"metadata": {"name": "vm-$h", "namespace": "default", "uid": "uid-$h", "attempt": 0},
 "log_directory": "/tmp/cri/logs-$h",
 "linux": {"cgroup_parent": "kubepods-burstable-pod$h.slice"}}
EOF
done
cat >/tmp/cri/c1.json <<EOF
{"metadata": {"name": "c1"}, "image": {"image": "hako.test/busybox:latest"},
 "command": ["sleep", "1000"], "log_path": "c1.log",
 "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512}}}
EOF
cat >/tmp/cri/c2.json <<EOF
{"metadata": {"name": "c2"}, "image": {"image": "hako.test/busybox:latest"},
 "command": ["sleep", "1000"], "log_path": "c2.log",
 "linux": {"resources": {"memory_limit_in_bytes": 33554432}}}
EOF
cat >/tmp/cri/c3.json <<EOF
{"metadata": {"name": "c3"}, "image": {"image": "hako.test/busybox:latest"},
 "command": ["tail", "/dev/zero"], "log_path": "c3.log",
 "linux": {"resources": {"memory_limit_in_bytes": 16777216}}}
EOF

# cri HANDLER: one pod of two containers; sets SIG_<handler> to what must
# match between the handlers.
cri() {
	h=$1
	slice=kubepods-burstable-pod$h.slice
	PS=/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/$slice
	phase cri-$h-before
	pod=$($CRI runp --runtime $h /tmp/cri/pod-$h.json 2>$ERR)
	expect cri-$h-runp 0 $?
	phase cri-$h-runp
	c1=$($CRI create $pod /tmp/cri/c1.json /tmp/cri/pod-$h.json 2>$ERR) && $CRI start $c1 >/dev/null 2>>$ERR
	expect cri-$h-c1-start 0 $?
	c2=$($CRI create $pod /tmp/cri/c2.json /tmp/cri/pod-$h.json 2>$ERR) && $CRI start $c2 >/dev/null 2>>$ERR
	expect cri-$h-c2-start 0 $?
	phase cri-$h-create-start-2
	for c in pod:$pod c1:$c1 c2:$c2; do
		u=cri-containerd-${c#*:}.scope
		expect cri-$h-${c%%:*}-unit active "$(systemctl is-active $u)"
		expect cri-$h-${c%%:*}-cgroup /kubepods.slice/kubepods-burstable.slice/$slice/$u "$(prop $u ControlGroup)"
	done
	ip=$($CRI inspectp -o go-template --template '{{.status.network.ip}}' $pod 2>$ERR)
	case "$ip" in 10.88.*) pass cri-$h-pod-ip "$ip" ;; *) fail cri-$h-pod-ip "[$ip] $(cat $ERR)" ;; esac
	expect cri-$h-exec-pod-net "inet $ip/16" "$($CRI exec $c2 ip -4 -o addr show eth0 2>$ERR | grep -o "inet [0-9./]*")"
	s1=$PS/cri-containerd-$c1.scope
	s2=$PS/cri-containerd-$c2.scope
	expect cri-$h-delegate yes "$(prop cri-containerd-$c1.scope Delegate)"
	expect cri-$h-c1-memory-unit 67108864 "$(prop cri-containerd-$c1.scope MemoryMax)"
	expect cri-$h-c1-memory.max 67108864 "$(cat $s1/memory.max)"
	expect cri-$h-c2-memory.max 33554432 "$(cat $s2/memory.max)"
	expect cri-$h-c1-cpu.max "50000 100000" "$(cat $s1/cpu.max)"
	pid=$($CRI inspect -o go-template --template '{{.info.pid}}' $c1 2>$ERR)
	grep -qx "$pid" $s1/cgroup.procs && pass cri-$h-c1-pid-in-scope "$pid" || fail cri-$h-c1-pid-in-scope "pid [$pid] procs [$(cat $s1/cgroup.procs | tr '\n' ' ')] $(cat $ERR)"
	# exec: lands at the root of the container's cgroup namespace, that
	# is in its scope, and sees the scope's limit.
	expect cri-$h-exec "0::/ 67108864" "$($CRI exec $c1 sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max' 2>$ERR | tr '\n' ' ' | sed 's/ $//')"
	expect cri-$h-exec-c2 33554432 "$($CRI exec $c2 cat /sys/fs/cgroup/memory.max 2>$ERR)"
	# A container over its limit: the kernel kills it in its scope, and
	# removing the container removes its unit while the pod runs on. The
	# CRI's reason is OOMKilled or Error by chance: with scopes, containerd
	# races systemd's removal of the emptied cgroup for its memory.events
	# (said in containerd 2.4's internal/cri/server/events.go), so the
	# kernel's own line is the evidence here.
	c3=$($CRI create $pod /tmp/cri/c3.json /tmp/cri/pod-$h.json 2>$ERR) && $CRI start $c3 >/dev/null 2>>$ERR
	expect cri-$h-c3-start 0 $?
	wait_for 60 sh -c "$CRI inspect -o go-template --template '{{.status.state}}' $c3 | grep -qx CONTAINER_EXITED"
	expect cri-$h-oom-exit 137 "$($CRI inspect -o go-template --template '{{.status.exitCode}}' $c3 2>$ERR)"
	echo "cri $h: the OOM-killed container's reason: $($CRI inspect -o go-template --template '{{.status.reason}}' $c3 2>&1)"
	oom=$(dmesg | grep -o "oom-kill:.*oom_memcg=[^,]*cri-containerd-$c3.scope,.*task=[a-z]*" | tail -1)
	[ -n "$oom" ] && pass cri-$h-oom-in-scope "$oom" || fail cri-$h-oom-in-scope "no oom-kill line for the scope: $(dmesg | grep oom-kill | tail -2)"
	$CRI rm $c3 >/dev/null 2>$ERR
	expect cri-$h-c3-rm 0 $?
	expect cri-$h-c3-no-unit "" "$(units cri-containerd-$c3.scope)"
	[ ! -e $PS/cri-containerd-$c3.scope ] && pass cri-$h-c3-no-cgroup "" || fail cri-$h-c3-no-cgroup "still there"
	expect cri-$h-c1-still-active active "$(systemctl is-active cri-containerd-$c1.scope)"
	# kubelet's in-place resize: UpdateContainerResources, the shim's
	# update, the runtime's `update --resources -`
	$CRI update --memory 134217728 $c1 >/dev/null 2>$ERR
	expect cri-$h-update 0 $?
	expect cri-$h-update-unit 134217728 "$(prop cri-containerd-$c1.scope MemoryMax)"
	expect cri-$h-update-file 134217728 "$(cat $s1/memory.max)"
	eval SIG_$h=\"$(prop cri-containerd-$c1.scope MemoryMax) $(prop cri-containerd-$c1.scope CPUQuotaPerSecUSec) $(prop cri-containerd-$c1.scope CPUWeight) $(prop cri-containerd-$c2.scope MemoryMax) $(cat $s1/memory.max $s1/cpu.max $s1/cpu.weight $s1/pids.max $s2/memory.max | tr '\n' ' ')\"
	phase cri-$h-checks-exec
	$CRI stopp $pod >/dev/null 2>$ERR
	expect cri-$h-stopp 0 $?
	phase cri-$h-stopp
	$CRI rmp $pod >/dev/null 2>$ERR
	expect cri-$h-rmp 0 $?
	phase cri-$h-rmp
	expect cri-$h-no-unit "" "$(units 'cri-containerd-*')"
	expect cri-$h-ip-released "" "$(grep -l . $C/ipam/hako-vm/10.* 2>/dev/null)"
	expect cri-$h-no-veth "" "$(ip -o link show type veth)"
	expect cri-$h-no-cgroup "" "$(subcgroups $PS)"
	expect cri-$h-no-failed "" "$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
	# kubelet removes the pod's slice; here it is this script's job.
	systemctl stop $slice 2>$ERR
	expect cri-$h-slice-stopped "" "$(units $slice | grep active)"
}
cri hako
cri runc
echo "cri hako: $SIG_hako"
echo "cri runc: $SIG_runc"
[ "${SIG_runc#134217728 }" != "$SIG_runc" ] && expect cri-same-as-runc "$SIG_runc" "$SIG_hako" || fail cri-same-as-runc "runc's side did not run: [$SIG_runc]"
# The engines' error lines, for reading next to the verdicts.
journalctl -u hako-test-containerd --no-pager -o cat >/tmp/clog 2>&1
echo "containerd's log: $(wc -l </tmp/clog) lines, $(grep -c level=error /tmp/clog) at level=error"
grep 'level=error\|TaskOOM' /tmp/clog | sed 's/^/containerd: /' | tail -40
systemctl stop hako-test-containerd 2>$ERR
expect containerd-stopped inactive "$(systemctl is-active hako-test-containerd)"
systemctl stop kubepods.slice 2>/dev/null
expect cri-no-units-left "" "$(units 'kubepods*' 'cri-containerd-*' 'hako-test-containerd*')"

fi

if [ "${ENGINES:-docker}" = docker ]; then
# ---------------------------------------------------------------------
# Docker, native.cgroupdriver=systemd; dockerd starts its own containerd
# (Debian's), whose shim calls the runtime by the path --add-runtime gives.
D=/var/lib/hako-engines/docker
DS=/run/hako-docker.sock
systemd-run --unit hako-test-docker -p Delegate=yes -p KillMode=process \
	/usr/sbin/dockerd --data-root $D --exec-root /run/hako-docker --pidfile /run/hako-docker.pid -H unix://$DS \
	--exec-opt native.cgroupdriver=systemd --add-runtime hako=$HAKO \
	--bridge none --iptables=false --ip6tables=false --storage-driver overlay2 >/dev/null 2>$ERR
DK="/usr/bin/docker -H unix://$DS"
wait_for 120 $DK version
expect dockerd-up 0 $?
expect docker-cgroupdriver systemd "$($DK info -f '{{.CgroupDriver}}' 2>$ERR)"
$DK load -i $T/images.tar >/dev/null 2>$ERR
expect docker-load 0 $?
phase docker-start

# docker_run RUNTIME: sets DSIG_<runtime>
docker_run() {
	r=$1
	phase docker-$r-before
	id=$($DK run -d --runtime $r --network none -m 64m --pids-limit 40 hako.test/busybox sleep 1000 2>$ERR)
	expect docker-$r-run 0 $?
	phase docker-$r-run-d
	u=docker-$id.scope
	S=/sys/fs/cgroup/system.slice/$u
	expect docker-$r-unit active "$(systemctl is-active $u)"
	expect docker-$r-slice system.slice "$(prop $u Slice)"
	expect docker-$r-memory-unit 67108864 "$(prop $u MemoryMax)"
	expect docker-$r-tasksmax 40 "$(prop $u TasksMax)"
	expect docker-$r-files "67108864 40" "$(cat $S/memory.max $S/pids.max 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	pid=$($DK inspect -f '{{.State.Pid}}' $id 2>$ERR)
	grep -qx "$pid" $S/cgroup.procs && pass docker-$r-pid-in-scope "$pid" || fail docker-$r-pid-in-scope "pid [$pid] procs [$(cat $S/cgroup.procs | tr '\n' ' ')]"
	expect docker-$r-exec "0::/ 67108864 40" "$($DK exec $id sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max' 2>$ERR | tr '\n' ' ' | sed 's/ $//')"
	$DK update -m 128m --memory-swap 256m $id >/dev/null 2>$ERR
	expect docker-$r-update 0 $?
	expect docker-$r-update-unit 134217728 "$(prop $u MemoryMax)"
	expect docker-$r-update-files "134217728 134217728" "$(cat $S/memory.max $S/memory.swap.max 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	eval DSIG_$r=\"$(prop $u Delegate) $(prop $u MemoryMax) $(prop $u TasksMax) $(prop $u DefaultDependencies) $(cat $S/memory.max $S/pids.max $S/memory.swap.max | tr '\n' ' ')\"
	phase docker-$r-checks-exec
	$DK stop -t 1 $id >/dev/null 2>$ERR
	expect docker-$r-stop 0 $?
	$DK rm $id >/dev/null 2>$ERR
	expect docker-$r-rm 0 $?
	phase docker-$r-stop-rm
	expect docker-$r-no-unit "" "$(units 'docker-*.scope')"
	[ ! -e $S ] && pass docker-$r-no-cgroup "" || fail docker-$r-no-cgroup "$S still there"
	# docker run --rm: the whole lifecycle in one command
	out=$($DK run --rm --runtime $r --network none -m 32m hako.test/busybox cat /sys/fs/cgroup/memory.max 2>$ERR)
	expect docker-$r-run-rm 33554432 "$out"
	phase docker-$r-run-rm
	expect docker-$r-run-rm-no-unit "" "$(units 'docker-*.scope')"
}
docker_run hako
docker_run runc
echo "docker hako: $DSIG_hako"
echo "docker runc: $DSIG_runc"
[ "${DSIG_runc#yes 134217728 }" != "$DSIG_runc" ] && expect docker-same-as-runc "$DSIG_runc" "$DSIG_hako" || fail docker-same-as-runc "runc's side did not run: [$DSIG_runc]"
journalctl -u hako-test-docker --no-pager -o cat >/tmp/dlog 2>&1
echo "dockerd's log: $(wc -l </tmp/dlog) lines, $(grep -c level=error /tmp/dlog) at level=error"
grep 'level=error' /tmp/dlog | sed 's/^/dockerd: /' | tail -40
systemctl stop hako-test-docker 2>$ERR
expect dockerd-stopped inactive "$(systemctl is-active hako-test-docker)"
fi

# Nothing of either engine is left: the services stop only their daemon
# (KillMode=process), so a shim still here is one that never exited.
# pgrep matches at most 15 characters of a name (the kernel's comm).
expect no-engine-processes "" "$(for n in containerd dockerd containerd-shim; do pgrep -x $n; done | tr '\n' ' ')"
expect no-failed-units "" "$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"

echo HAKO-VM-DONE
sync
echo o >/proc/sysrq-trigger
