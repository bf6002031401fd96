#!/bin/sh
# Runs as a oneshot service under systemd (PID 1) in the VM that
# systemd_test.go boots; /hakotest holds hako, the bundles and this script.
# Prints "HAKO-VM-CHECK <name> PASS|FAIL <detail>" per check, then
# HAKO-VM-DONE, then powers off.
export PATH=/hakotest:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
T=/hakotest
HAKO="hako --root /run/hako --systemd-cgroup"
ERR=/tmp/err
pass() { echo "HAKO-VM-CHECK $1 PASS $2"; }
# The seconds since boot, where a section starts (for the test's timings).
at() { echo "HAKO-VM-AT $1 $(cut -d' ' -f1 /proc/uptime)"; }
fail() { echo "HAKO-VM-CHECK $1 FAIL $2"; }
# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "want [$2] got [$3] $(tail -c 400 $ERR 2>/dev/null)"; fi; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }
units() { systemctl list-units --all --no-legend --plain "$1" 2>/dev/null | awk '{print $1}' | tr '\n' ' '; }

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
	MODE=v2
else
	MODE=hybrid
	[ -d /sys/fs/cgroup/unified ] || MODE=v1
fi
echo "mode $MODE, systemd $(systemctl --version | head -1)"
want=$(sed -n "s/.*HAKO_VM_MODE=\([a-z0-9]*\).*/\1/p" /proc/cmdline)
expect host-mode "$want" "$MODE"
expect pid1-systemd systemd "$(cat /proc/1/comm)"

at hako
# --- create/start/exec/update/pause/resume/ps/events/delete, empty cgroupsPath
B=$T/bundles
$HAKO create --bundle $B/limits c1 2>$ERR
expect create-c1 0 $?
expect unit-active active "$(systemctl is-active hako-c1.scope)"
expect unit-slice system.slice "$(prop hako-c1.scope Slice)"
expect unit-delegate yes "$(prop hako-c1.scope Delegate)"
expect unit-tasksmax 50 "$(prop hako-c1.scope TasksMax)"
expect unit-cpuquota 500ms "$(prop hako-c1.scope CPUQuotaPerSecUSec)"
if [ $MODE = v2 ]; then
	expect unit-memory 67108864 "$(prop hako-c1.scope MemoryMax)"
	CG=/sys/fs/cgroup/system.slice/hako-c1.scope
	expect file-memory 67108864 "$(cat $CG/memory.max)"
else
	expect unit-memory 67108864 "$(prop hako-c1.scope MemoryLimit)"
	CG=/sys/fs/cgroup/memory/system.slice/hako-c1.scope
	expect file-memory 67108864 "$(cat $CG/memory.limit_in_bytes)"
fi
# Only the container's init is in the unit: the placeholder is gone.
pid=$($HAKO state c1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
expect unit-procs "$pid" "$(systemctl show -P MainPID hako-c1.scope >/dev/null; cat $(dirname $CG)/hako-c1.scope/cgroup.procs 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
systemctl status hako-c1.scope --no-pager >/tmp/status 2>&1
grep -q "hako container c1" /tmp/status && pass systemctl-status "$(grep -m1 Tasks: /tmp/status)" || fail systemctl-status "$(cat /tmp/status)"
$HAKO start c1 2>$ERR
expect start-c1 0 $?
if [ $MODE = v2 ]; then
	in=$($HAKO exec c1 cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>$ERR | tr '\n' ' ')
	expect limits-inside "67108864 50 " "$in"
else
	in=$($HAKO exec c1 cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>$ERR | tr '\n' ' ')
	expect limits-inside "67108864 50 " "$in"
fi
# exec lands in the unit (seen from the host).
$HAKO exec -d c1 sleep 100 2>$ERR
sp=$(pgrep -n -x sleep)
grep -q "hako-c1.scope" /proc/$sp/cgroup && pass exec-in-unit "$(grep -m1 scope /proc/$sp/cgroup)" || fail exec-in-unit "$(cat /proc/$sp/cgroup) $(cat $ERR)"
$HAKO update --memory 134217728 --pids-limit 60 c1 2>$ERR
expect update 0 $?
if [ $MODE = v2 ]; then
	expect update-unit 134217728 "$(prop hako-c1.scope MemoryMax)"
	expect update-file 134217728 "$(cat $CG/memory.max)"
else
	expect update-unit 134217728 "$(prop hako-c1.scope MemoryLimit)"
	expect update-file 134217728 "$(cat $CG/memory.limit_in_bytes)"
fi
expect update-tasksmax 60 "$(prop hako-c1.scope TasksMax)"
$HAKO pause c1 2>$ERR
expect pause paused "$($HAKO state c1 | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')"
$HAKO resume c1 2>$ERR
expect resume running "$($HAKO state c1 | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')"
n=$($HAKO ps c1 2>$ERR | grep -c sleep)
expect ps 2 "$n"
$HAKO events --stats c1 >/tmp/ev 2>$ERR
grep -q '"memory"' /tmp/ev && pass events-stats "" || fail events-stats "$(head -c 300 /tmp/ev) $(cat $ERR)"
# Later commands follow the state, not the flag.
hako --root /run/hako state c1 >/dev/null 2>$ERR
$HAKO kill c1 KILL 2>$ERR
sleep 1
hako --root /run/hako delete c1 2>$ERR
expect delete 0 $?
expect no-unit-after-delete "" "$(units 'hako-*')"
[ ! -e $CG ] && pass cgroup-removed "" || fail cgroup-removed "$CG still there"

# --- explicit slice:prefix:name with a nested slice, then run
$HAKO create --bundle $B/nested c2 2>$ERR
expect create-nested 0 $?
expect nested-cgroup /test.slice/test-a.slice/test-a-b.slice/pfx-c2.scope "$(prop pfx-c2.scope ControlGroup)"
$HAKO delete --force c2 2>$ERR
expect nested-unit-gone "" "$(units 'pfx-*')"
$HAKO run --bundle $B/runonce c5 >/tmp/out 2>$ERR
expect run-exit 0 $?
expect run-no-unit "" "$(units 'hako-*')"

# --- a cgroupfs-form path is refused naming the field
$HAKO run --bundle $B/badpath c3 >/dev/null 2>$ERR
grep -q "linux.cgroupsPath" $ERR && pass bad-path-error "$(head -c 200 $ERR)" || fail bad-path-error "$(cat $ERR)"
$HAKO delete --force c3 >/dev/null 2>&1

# --- kill -9 of hako mid-create, then delete --force
$HAKO create --bundle $B/slowhook c4 >/dev/null 2>$ERR &
hp=$!
i=0
while [ "$(systemctl is-active hako-c4.scope 2>/dev/null)" != active ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
sleep 1
kill -9 $hp
wait $hp 2>/dev/null
$HAKO delete --force c4 2>$ERR
expect kill9-delete-force 0 $?
sleep 1
expect kill9-no-unit "" "$(units 'hako-*')"
expect kill9-no-failed "" "$(systemctl list-units --failed --no-legend --plain 'hako-*' | awk '{print $1}')"

at runc
# --- runc on the same VM, same bundle: the same unit properties, the same
# cgroups in every hierarchy with the same files in them, through update,
# pause and stats, and the same cleanup. runc 1.1.5 (Debian's) and 1.5.
# cgfile PID CONTROLLER FILE: FILE in the cgroup PID is in (v1: in that
# controller's hierarchy; v2: CONTROLLER is "u", the one hierarchy).
# Shell builtins only where it can (every fork and exec costs under TCG).
cgfile() {
	f=
	while IFS=: read -r id c d; do
		if [ $MODE = v2 ]; then
			[ "$id" = 0 ] && f=/sys/fs/cgroup$d/$3 && break
		else
			case ",$c," in *,$2,*) f=/sys/fs/cgroup/$2$d/$3 && break ;; esac
		fi
	done </proc/$1/cgroup
	[ -r "$f" ] || { echo "no $2 $3"; return; }
	# devices.list is in each runtime's write order: sorted.
	[ $3 = devices.list ] && { sort "$f" | tr '\n' ' '; return; }
	v=
	while read -r l || [ -n "$l" ]; do v="$v$l "; done <"$f"
	echo "$v"
}
# props UNIT NAME...: the unit's NAME=value lines, in one systemctl call.
props() {
	u=$1
	shift
	for p; do set -- "$@" -p $p; shift; done
	systemctl show "$@" $u 2>/dev/null
}
# propof LINES NAME: NAME's value from props' lines.
propof() {
	echo "$1" | while IFS= read -r l; do
		case "$l" in "$2="*) echo "${l#*=}" ;; esac
	done
}
if [ $MODE = v2 ]; then
	FILES="u memory.max u memory.low u memory.swap.max u pids.max u cpu.max u cpu.weight u cpuset.cpus u cgroup.subtree_control u cgroup.type"
	FROZEN="u cgroup.freeze"
else
	FILES="memory memory.limit_in_bytes memory memory.soft_limit_in_bytes pids pids.max cpu cpu.cfs_quota_us cpu cpu.cfs_period_us cpu cpu.shares devices devices.list cpuset cpuset.cpus cpuset.mems blkio blkio.weight"
	FROZEN="freezer freezer.state"
fi
# same NAME: every file of FILES (or the list given) alike for runc's init
# $rp and hako's $hp.
same() {
	set -- $1
	while [ $# -ge 2 ]; do
		expect $n-$name-$1-$2 "$(cgfile $rp $1 $2)" "$(cgfile $hp $1 $2)"
		shift 2
	done
}
for R in runc runc-1.5; do
	command -v $R >/dev/null || { echo "$R not installed: no comparison"; continue; }
	n=$(echo $R | tr -d .)
	RC="$R --root /run/$n --systemd-cgroup"
	$RC create --bundle $B/limits r1 2>$ERR
	expect $n-create 0 $?
	$HAKO create --bundle $B/limits h1 2>>$ERR
	props="TasksMax CPUQuotaPerSecUSec Delegate MemoryMax MemoryLimit MemoryAccounting CPUAccounting TasksAccounting DefaultDependencies Slice ActiveState DevicePolicy"
	files=$FILES
	if [ $MODE = v2 ]; then
		props="$props CPUWeight"
		if [ $R = runc ]; then
			# runc 1.1.5 turns cpu shares 512 into weight 20
			# (linear); runc 1.3+ and hako give 59 (the
			# quadratic map keeping 1024 at 100).
			props=${props% CPUWeight}
			files=$(echo "$FILES" | sed 's/u cpu.weight //')
			echo "$n: cpu weight not compared: runc 1.1.5 $(prop runc-r1.scope CPUWeight), hako $(prop hako-h1.scope CPUWeight)"
		fi
	fi
	rs=$(props runc-r1.scope $props)
	hs=$(props hako-h1.scope $props)
	for p in $props; do
		expect $n-same-$p "$(propof "$rs" $p)" "$(propof "$hs" $p)"
	done
	# Started: runc pauses a created container too, hako does not.
	$RC start r1 2>>$ERR
	$HAKO start h1 2>>$ERR
	rp=$($RC state r1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
	hp=$($HAKO state h1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
	# The cgroup of each init in every hierarchy, its unit's name aside.
	# runc 1.1.5 predates the misc controller (5.13) and leaves it at /.
	nomisc=cat
	[ $R = runc ] && nomisc="grep -v :misc:"
	expect $n-same-cgroups "$(sed 's/runc-r1/X/' /proc/$rp/cgroup | $nomisc | sort | tr '\n' ' ')" "$(sed 's/hako-h1/X/' /proc/$hp/cgroup | $nomisc | sort | tr '\n' ' ')"
	name=created; same "$files"
	$RC update --memory 134217728 --pids-limit 60 --cpu-quota 30000 r1 2>>$ERR
	$HAKO update --memory 134217728 --pids-limit 60 --cpu-quota 30000 h1 2>>$ERR
	ufiles=$files
	if [ $R = runc ] && [ $MODE != v2 ]; then
		# runc 1.1.5's update of a systemd unit on v1 drops the
		# /dev/net/tun rule (10:200) it created the cgroup with; 1.5
		# and hako keep it.
		ufiles=$(echo "$files" | sed 's/devices devices.list //')
		echo "$n: devices.list after update not compared: $(cgfile $rp devices devices.list)"
	fi
	name=updated; same "$ufiles"
	up="TasksMax CPUQuotaPerSecUSec MemoryMax MemoryLimit"
	rs=$(props runc-r1.scope $up)
	hs=$(props hako-h1.scope $up)
	for p in $up; do
		expect $n-updated-$p "$(propof "$rs" $p)" "$(propof "$hs" $p)"
	done
	$RC pause r1 2>>$ERR
	$HAKO pause h1 2>>$ERR
	name=paused; same "$FROZEN"
	$RC resume r1 2>>$ERR
	$HAKO resume h1 2>>$ERR
	name=resumed; same "$FROZEN"
	# The limits events --stats reports (usage differs between any two
	# containers).
	# runc 1.5 leaves out the kernel memory limits (0) 1.1.5 and hako
	# report.
	lim() { grep -o '"limit":[0-9]*' | grep -v '"limit":0$' | sort | tr '\n' ' '; }
	expect $n-same-stats "$($RC events --stats r1 2>>$ERR | lim)" "$($HAKO events --stats h1 2>>$ERR | lim)"
	$RC delete --force r1 2>>$ERR
	$HAKO delete --force h1 2>>$ERR
	expect $n-no-unit "" "$(units 'runc-*')$(units 'hako-*')"
	expect $n-no-cgroup "" "$(find /sys/fs/cgroup -name 'runc-r1.scope' -o -name 'hako-h1.scope' 2>/dev/null)"
done

at podman
# --- podman (root) with cgroup_manager=systemd and hako as its runtime; no
# registry in the VM, so the busybox rootfs is given with --rootfs.
if command -v podman >/dev/null; then
	P="podman --cgroup-manager systemd --runtime /hakotest/hako --storage-driver vfs --root /run/pstore --runroot /run/prun"
	if [ $MODE = v2 ]; then rd="cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"; else rd="cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"; fi
	out=$($P run --rm --network none -m 64m --pids-limit 40 --rootfs $B/rootfs:O sh -c "$rd" 2>$ERR | tr '\n' ' ')
	expect podman-run-limits "67108864 40 " "$out"
	$P run -d --name pd --network none --rootfs $B/rootfs:O sleep 1000 >/dev/null 2>$ERR
	cid=$($P inspect -f '{{.Id}}' pd 2>>$ERR)
	expect podman-unit active "$(systemctl is-active libpod-$cid.scope)"
	expect podman-exec hi "$($P exec pd echo hi 2>>$ERR)"
	$P stop -t 1 pd >/dev/null 2>>$ERR
	$P rm pd >/dev/null 2>>$ERR
	expect podman-no-unit "" "$(units 'libpod-*')"
else
	echo "podman not installed: no podman checks"
fi

at sandbox
# --- hako sandbox beside systemd-run, property set by property set (v2
# only: one boot is enough for what does not depend on the cgroup layout).
[ $MODE = v2 ] && sh $T/sbx.sh 2>&1

at rootless
# --- rootless: an unprivileged user with its own systemd (pure v2 only:
# a user's systemd can delegate only there). The user exists only in the
# VM's tmpfs overlay.
if [ $MODE = v2 ]; then
	RU=hakovm
	useradd -m -u 1500 -s /bin/sh $RU 2>$ERR
	# subuid/subgid for rootless podman's user namespace, where useradd
	# did not allocate them (it does when /etc/subuid exists).
	grep -q "^$RU:" /etc/subuid 2>/dev/null || echo "$RU:300000:65536" >>/etc/subuid
	grep -q "^$RU:" /etc/subgid 2>/dev/null || echo "$RU:300000:65536" >>/etc/subgid
	loginctl enable-linger $RU 2>>$ERR
	i=0
	while [ "$(systemctl is-active user@1500.service)" != active ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
	expect user-manager active "$(systemctl is-active user@1500.service)"
	runuser -l $RU -c "sh $T/rootless.sh" 2>&1
	loginctl disable-linger $RU 2>/dev/null
fi

at done
echo HAKO-VM-DONE
sync
echo o >/proc/sysrq-trigger
