#!/bin/sh
# The rootless half of the systemd VM checks (systemd_test.go): run by
# systemd-checks.sh on the pure cgroup v2 boot as an unprivileged user, from
# a login session (runuser -l: pam_systemd gives it session-N.scope in
# user-UID.slice, which is root's, not the user's, and starts the user's
# systemd). hako with --systemd-cgroup then talks to the user's systemd over
# the user bus, and its container's unit lives in that manager's user.slice.
# Prints "HAKO-VM-CHECK rl-<name> PASS|FAIL <detail>" per check; runc (1.1.5
# and 1.5 where present) runs the same bundle beside it.
export PATH=/hakotest:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
T=/hakotest
B=$T/bundles
ERR=/tmp/rl-err.$(id -u)
: "${XDG_RUNTIME_DIR:=/run/user/$(id -u)}"
: "${DBUS_SESSION_BUS_ADDRESS:=unix:path=$XDG_RUNTIME_DIR/bus}"
export XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS
pass() { echo "HAKO-VM-CHECK rl-$1 PASS $2"; }
fail() { echo "HAKO-VM-CHECK rl-$1 FAIL $2"; }
expect() { if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "want [$2] got [$3] $(tail -c 400 $ERR 2>/dev/null)"; fi; }
uprop() { systemctl --user show -P "$2" "$1" 2>/dev/null; }
uunits() { systemctl --user list-units --all --no-legend --plain "$1" 2>/dev/null | awk '{print $1}' | tr '\n' ' '; }
statusof() { $1 state $2 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
pidof1() { $1 state $2 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }

U=$(id -u)
MGR=$(systemctl --user show -P ControlGroup) # /user.slice/user-U.slice/user@U.service
expect uid-unprivileged yes "$([ "$U" != 0 ] && echo yes)"
expect manager-cgroup "/user.slice/user-$U.slice/user@$U.service" "$MGR"
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
# The case the driver must handle: our own cgroup is not the user's.
case "$own" in
*/session-*.scope) pass login-session "$own" ;;
*) fail login-session "not in a login session: $own" ;;
esac
expect delegated-controllers "cpu memory pids" "$(cat /sys/fs/cgroup$MGR/cgroup.controllers | tr ' ' '\n' | grep -E '^(cpu|memory|pids)$' | tr '\n' ' ' | sed 's/ $//')"

H="hako --systemd-cgroup"
CG=/sys/fs/cgroup$MGR/user.slice/hako-u1.scope
$H create --bundle $B/rootless u1 2>$ERR
expect create 0 $?
expect unit-active active "$(systemctl --user is-active hako-u1.scope 2>&1)"
expect unit-slice user.slice "$(uprop hako-u1.scope Slice)"
expect unit-cgroup "$MGR/user.slice/hako-u1.scope" "$(uprop hako-u1.scope ControlGroup)"
expect unit-delegate yes "$(uprop hako-u1.scope Delegate)"
expect unit-memory 67108864 "$(uprop hako-u1.scope MemoryMax)"
expect unit-tasksmax 50 "$(uprop hako-u1.scope TasksMax)"
expect file-memory 67108864 "$(cat $CG/memory.max 2>&1)"
expect file-pids 50 "$(cat $CG/pids.max 2>&1)"
pid=$(pidof1 hako u1)
# Only the container's init in the unit: the placeholder has gone.
expect unit-procs "$pid" "$(cat $CG/cgroup.procs 2>&1 | tr '\n' ' ' | sed 's/ $//')"
$H start u1 2>$ERR
expect start 0 $?
expect limits-inside "67108864 50 " "$(hako exec u1 cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>$ERR | tr '\n' ' ')"
hako exec -d u1 sleep 101 2>$ERR
sp=$(pgrep -n -u "$U" -f 'sleep 101')
grep -q "user.slice/hako-u1.scope" /proc/$sp/cgroup 2>/dev/null && pass exec-in-unit "$(cat /proc/$sp/cgroup)" || fail exec-in-unit "$(cat /proc/$sp/cgroup 2>&1) $(cat $ERR)"
hako update --memory 134217728 --pids-limit 60 u1 2>$ERR
expect update 0 $?
expect update-unit 134217728 "$(uprop hako-u1.scope MemoryMax)"
expect update-file 134217728 "$(cat $CG/memory.max 2>&1)"
expect update-tasksmax 60 "$(uprop hako-u1.scope TasksMax)"
expect update-pids-file 60 "$(cat $CG/pids.max 2>&1)"
hako pause u1 2>$ERR
expect pause "paused 1" "$(statusof hako u1) $(cat $CG/cgroup.freeze 2>&1)"
hako resume u1 2>$ERR
expect resume "running 0" "$(statusof hako u1) $(cat $CG/cgroup.freeze 2>&1)"
expect ps 2 "$(hako ps u1 2>$ERR | grep -c sleep)"
hako events --stats u1 >/tmp/rl-ev.$U 2>$ERR
grep -q '"pids":{"current":2' /tmp/rl-ev.$U && pass events-stats "$(grep -o '"pids":{[^}]*}' /tmp/rl-ev.$U)" || fail events-stats "$(head -c 300 /tmp/rl-ev.$U) $(cat $ERR)"
hako kill u1 KILL 2>$ERR
sleep 1
hako delete u1 2>$ERR
expect delete 0 $?
expect no-unit-after-delete "" "$(uunits 'hako-*')"
[ ! -e $CG ] && pass cgroup-removed "" || fail cgroup-removed "$CG still there"

# run (create+start+wait+delete in one) from the login session, then from
# a user service, whose cgroup is the user's: both must place the process.
$H run --bundle $B/rootless-once u2 >/tmp/rl-out.$U 2>$ERR
expect run-session "0 67108864" "$? $(cat /tmp/rl-out.$U)"
systemd-run --user --quiet --wait --pipe --collect -p Delegate=yes hako --systemd-cgroup run --bundle $B/rootless-once u3 >/tmp/rl-out.$U 2>$ERR
expect run-user-service "0 67108864" "$? $(cat /tmp/rl-out.$U)"
expect run-no-unit "" "$(uunits 'hako-*')"

# kill -9 of hako mid-create, then delete --force: nothing left.
$H create --bundle $B/rootless-slowhook u4 >/dev/null 2>$ERR &
hp=$!
i=0
while [ "$(systemctl --user is-active hako-u4.scope 2>/dev/null)" != active ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
sleep 1
kill -9 $hp
wait $hp 2>/dev/null
hako delete --force u4 2>$ERR
expect kill9-delete-force 0 $?
sleep 1
expect kill9-no-unit "" "$(uunits 'hako-*')"

# runc beside it: the same bundle, the same properties, files and cleanup.
for R in runc runc-1.5; do
	command -v $R >/dev/null || { echo "$R not installed: no rootless comparison"; continue; }
	n=$(echo $R | tr -d .)
	RC="$R --systemd-cgroup --root $XDG_RUNTIME_DIR/$n"
	$RC create --bundle $B/rootless r1 2>$ERR
	expect $n-create 0 $?
	rcg=/sys/fs/cgroup$MGR/user.slice/runc-r1.scope
	$H create --bundle $B/rootless h1 2>>$ERR
	hcg=/sys/fs/cgroup$MGR/user.slice/hako-h1.scope
	weight="CPUWeight cpu.weight"
	if [ $R = runc ]; then
		# runc 1.1.5 converts cpu shares 512 to weight 20 (linear);
		# runc 1.3+ and hako give 59 (the quadratic mapping that
		# keeps 1024 at 100): compared with runc 1.5 only.
		weight=
		echo "rootless: cpu weight not compared with runc 1.1.5: $(uprop runc-r1.scope CPUWeight) there, $(uprop hako-h1.scope CPUWeight) here"
	fi
	for p in Slice Delegate MemoryMax TasksMax CPUQuotaPerSecUSec DefaultDependencies ActiveState ${weight% *}; do
		expect $n-same-$p "$(uprop runc-r1.scope $p)" "$(uprop hako-h1.scope $p)"
	done
	for f in memory.max pids.max cpu.max cgroup.subtree_control ${weight#* }; do
		expect $n-same-$f "$(cat $rcg/$f 2>&1)" "$(cat $hcg/$f 2>&1)"
	done
	expect $n-same-nprocs "$(wc -l <$rcg/cgroup.procs)" "$(wc -l <$hcg/cgroup.procs)"
	$RC delete --force r1 2>>$ERR
	hako delete --force h1 2>>$ERR
	expect $n-no-unit "" "$(uunits 'runc-*')$(uunits 'hako-*')"
done

# rootless podman with cgroup_manager=systemd and hako as its runtime, and
# with runc for comparison. No registry in the VM: --rootfs, a copy the
# user owns (podman and the runtime make mount points in it, which they
# cannot in root's files: those are nobody's in the user namespace).
if command -v podman >/dev/null; then
	cp -a $B/rootfs $HOME/rootfs
	for rt in /hakotest/hako runc; do
		n=$(basename $rt)
		P="podman --cgroup-manager systemd --runtime $rt --storage-driver vfs --root $HOME/pstore-$n --runroot $XDG_RUNTIME_DIR/prun-$n"
		out=$($P run --rm --network none -m 64m --pids-limit 40 --rootfs $HOME/rootfs sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cat /proc/self/cgroup' 2>$ERR | tr '\n' ' ')
		expect podman-$n-run-limits "67108864 40 0::/ " "$out"
		$P run -d --name pd --network none -m 64m --rootfs $HOME/rootfs sleep 1000 >/dev/null 2>$ERR
		cid=$($P inspect -f '{{.Id}}' pd 2>>$ERR)
		expect podman-$n-unit "active user.slice 67108864" "$(systemctl --user is-active libpod-$cid.scope) $(uprop libpod-$cid.scope Slice) $(uprop libpod-$cid.scope MemoryMax)"
		expect podman-$n-exec hi "$($P exec pd echo hi 2>>$ERR)"
		$P stop -t 1 pd >/dev/null 2>>$ERR
		$P rm pd >/dev/null 2>>$ERR
		expect podman-$n-no-unit "" "$(uunits 'libpod-*')"
	done
else
	echo "podman not installed: no rootless podman checks"
fi
echo "rootless checks done"
