#!/bin/sh
# hako sandbox beside systemd-run on the same VM (systemd_test.go, the pure
# cgroup v2 boot; systemd-checks.sh runs it as root): for each property set,
# one probe runs under `systemd-run --wait --pipe -p ...` (a transient
# service of systemd 252, PID 1) and under `hako sandbox -p ...`, and every
# section of what it prints must match, file list for file list, or differ
# exactly as a difference README's sandbox section documents. Prints
# "HAKO-VM-CHECK sbx-<set>-<section> PASS|FAIL <detail>".
#
# `sh THIS probe HOSTNS...` is the probe itself, run inside each sandbox.
# Shell builtins where it can: every exec costs tens of milliseconds
# under TCG.
export PATH=/hakotest:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ "$1" = probe ]; then
	shift
	hostns=" $* "
	# ls: the file lists; w: what is writable (the shell's own error
	# text, so a read-only file system and a denied directory differ; not
	# `:`, a special builtin, whose failed redirection ends the shell);
	# st: credentials and seccomp; link: network devices and their
	# flags; ns: which namespaces are the host's; mnt: each mount's
	# target, per-mount options and type, /proc's aside (hako always
	# mounts a fresh one in a PID namespace of its own; systemd-run's
	# service sees the host's).
	for d in /tmp /var/tmp /dev /home /root /srv /var/lib/sbx; do
		l=
		for f in "$d"/* "$d"/.[!.]*; do
			[ -e "$f" ] || [ -L "$f" ] && l="$l ${f##*/}"
		done
		echo "ls $d:$l"
	done
	made=
	for d in /tmp /var/tmp /dev/shm /etc /usr /home /root /run /srv /var/lib/sbx /var/lib/sbx/rw /var/lib/sbx/secret; do
		if { true >"$d/.sbx-probe"; } 2>/dev/null; then
			made="$made $d/.sbx-probe"
			echo "w $d: yes"
		else
			err=$({ true >"$d/.sbx-probe"; } 2>&1)
			echo "w $d: ${err##*: }"
		fi
	done
	[ -n "$made" ] && rm -f $made
	while IFS= read -r l; do
		case "$l" in NoNewPrivs:* | Seccomp:* | Seccomp_filters:* | Cap*) echo "st $l" ;; esac
	done </proc/self/status
	ip -br link | while read -r n s _ f; do echo "link $n $s $f"; done
	for id in $(readlink /proc/$$/ns/net /proc/$$/ns/ipc /proc/$$/ns/uts /proc/$$/ns/user /proc/$$/ns/cgroup); do
		case "$hostns" in *" $id "*) echo "ns ${id%%:*}: host" ;; *) echo "ns ${id%%:*}: own" ;; esac
	done
	while read -r _ _ _ _ mp opts rest; do
		t=${rest#*- }
		case "$mp" in /proc | /proc/*) ;; *) echo "mnt $mp $opts ${t%% *}" ;; esac
	done </proc/self/mountinfo
	exit 0
fi

T=/hakotest
ERR=/tmp/sbx-err
pass() { echo "HAKO-VM-CHECK sbx-$1 PASS $2"; }
fail() { echo "HAKO-VM-CHECK sbx-$1 FAIL $2"; }

hostns=
for ns in net ipc uts user cgroup; do hostns="$hostns $(readlink /proc/1/ns/$ns)"; done
# The paths the property sets name, made here (the VM's root is a tmpfs
# overlay: nothing reaches the machine the VM runs on).
mkdir -p /var/lib/sbx/rw /var/lib/sbx/secret /srv /var/tmp
echo s >/var/lib/sbx/secret/key

# The comparison of the two probes' outputs, one line per section:
# "SECTION same LINES" or "SECTION diff systemd-run only: ... hako only:
# ...", lines sorted and joined with |. Normalised, each for what
# legitimately differs between any two sandboxes:
# - ls: systemd-private-<boot id>-<unit>-<random> directories are named
#   per boot and unit, and systemd-run's own is in the host's /tmp while
#   its service runs (hako's PrivateTmp is a tmpfs, named nowhere).
# - mnt: only the top mount of each target, the one a path reaches (both
#   tools stack mounts on the same target: systemd's private /dev on the
#   host's, hako's read-only and writable-again trees as copies on top);
#   and not /run/credentials or /run/systemd/incoming, which systemd
#   mounts for every service with a mount namespace (its credentials
#   and the directory `systemctl bind` passes mounts through), whatever
#   the properties; and under no_new_privs (NoNewPrivs: 1, which the
#   probe prints before the mounts) without nosuid, which systemd adds to
#   its own mounts then, and which changes nothing where execve cannot
#   gain privileges anyway.
# - st: Seccomp_filters only as none or some: systemd loads a filter per
#   architecture it allows (x86-64, x32, i386), hako the native one only
#   (README).
COMPARE='
FNR == 1 { side++ }
{
	sec = $1; sub(/^[^ ]* /, "")
	if (sec == "ls") { gsub(/ systemd-private-[^ ]*/, "") }
	if (sec == "st" && $0 ~ /^NoNewPrivs:[ \t]*1$/) nnp[side] = 1
	if (sec == "st" && $0 ~ /^Seccomp_filters:[ \t]*[1-9]/) $0 = "Seccomp_filters: some"
	if (sec == "mnt") {
		if ($1 ~ /^\/run\/credentials(\/|$)/ || $1 == "/run/systemd/incoming") next
		if (nnp[side]) { o = "," $2 ","; gsub(/,nosuid,/, ",", o); $2 = substr(o, 2, length(o) - 2) }
		top[side, $1] = $0; tgt[$1] = 1; next
	}
	n[side, sec]++; v[side, sec, n[side, sec]] = $0; secs[sec] = 1
}
function sorted(s, sec,   i, j, t, m, a, out) {
	m = n[s, sec]
	for (i = 1; i <= m; i++) a[i] = v[s, sec, i]
	for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	out = ""
	for (i = 1; i <= m; i++) out = out a[i] "|"
	return out
}
END {
	for (t in tgt) for (s = 1; s <= 2; s++) if ((s, t) in top) { n[s, "mnt"]++; v[s, "mnt", n[s, "mnt"]] = top[s, t] }
	secs["mnt"] = 1
	for (sec in secs) {
		a = sorted(1, sec); b = sorted(2, sec)
		if (a == b) { print sec " same " a; continue }
		split(a, x, "|"); split(b, y, "|"); delete inA; delete inB
		for (i in x) if (x[i] != "") inA[x[i]] = 1
		for (i in y) if (y[i] != "") inB[y[i]] = 1
		oa = ""; ob = ""
		m = split(a, x, "|"); for (i = 1; i <= m; i++) if (x[i] != "" && !(x[i] in inB)) oa = oa x[i] "|"
		m = split(b, y, "|"); for (i = 1; i <= m; i++) if (y[i] != "" && !(y[i] in inA)) ob = ob y[i] "|"
		print sec " diff systemd-run only: " oa " hako only: " ob
	}
}'

# compare SET PROPERTY... [-- KNOWN...]: the probe under systemd-run and
# under hako sandbox, section by section. KNOWN are "SECTION DIFF" lines:
# a difference README documents, which must then be exactly DIFF.
compare() {
	set_=$1
	shift
	sp=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		sp="$sp -p '$1'"
		shift
	done
	[ "$1" = -- ] && shift
	start=$(cut -d' ' -f1 /proc/uptime)
	eval "systemd-run --wait --pipe --quiet $sp -- /bin/sh $T/sbx.sh probe $hostns" </dev/null >/tmp/sbx-sd 2>$ERR
	src=$?
	eval "hako sandbox $sp -- /bin/sh $T/sbx.sh probe $hostns" </dev/null >/tmp/sbx-hako 2>>$ERR
	hrc=$?
	if [ $src = 0 ] && [ $hrc = 0 ]; then
		pass $set_-run "$sp"
	else
		fail $set_-run "systemd-run rc=$src hako rc=$hrc $(tail -c 300 $ERR)"
	fi
	awk "$COMPARE" /tmp/sbx-sd /tmp/sbx-hako >/tmp/sbx-cmp
	while read -r sec how rest; do
		if [ $how = same ]; then
			pass $set_-$sec "$rest"
			continue
		fi
		ok=
		for k; do
			[ "$k" = "$sec $rest" ] && ok=1
		done
		if [ -n "$ok" ]; then
			pass $set_-$sec "documented difference: $rest"
		else
			fail $set_-$sec "$rest"
		fi
	done </tmp/sbx-cmp
	echo "sbx $set_: $(awk -v s=$start '{print $1 - s}' /proc/uptime)s for both"
}

# The known differences, each in README's sandbox section ("Side by side
# with systemd-run").
compare tmp-net-caps-homero PrivateTmp=yes PrivateNetwork=yes ProtectHome=read-only NoNewPrivileges=yes "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_CHOWN" -- \
	"mnt systemd-run only: /tmp rw,relatime tmpfs|/var/tmp rw,relatime overlay| hako only: /tmp rw,nodev,relatime tmpfs|/var/tmp rw,nodev,relatime tmpfs|"
compare strict ProtectSystem=strict ReadWritePaths=/var/lib/sbx/rw
compare home-yes ProtectHome=yes InaccessiblePaths=/var/lib/sbx/secret -- \
	"mnt systemd-run only: /home ro,noexec,relatime tmpfs|/root ro,noexec,relatime tmpfs|/run/user ro,noexec,relatime tmpfs|/var/lib/sbx/secret ro,noexec,relatime tmpfs| hako only: /home ro,relatime tmpfs|/root ro,relatime tmpfs|/run/user ro,relatime tmpfs|/var/lib/sbx/secret ro,relatime tmpfs|"
compare home-tmpfs ProtectHome=tmpfs "TemporaryFileSystem=/srv:ro" "BindReadOnlyPaths=/etc:/srv/etc" -- \
	"w systemd-run only: /home: yes|/root: yes| hako only: /home: Read-only file system|/root: Read-only file system|" \
	"mnt systemd-run only: /home rw,relatime tmpfs|/root rw,relatime tmpfs|/run/user rw,relatime tmpfs| hako only: /home ro,nosuid,nodev,relatime tmpfs|/root ro,nosuid,nodev,relatime tmpfs|/run/user ro,nosuid,nodev,relatime tmpfs|"
compare dev PrivateDevices=yes -- \
	"ls systemd-run only: /dev: char core fd full hugepages log mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero| hako only: /dev: core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero|" \
	"mnt systemd-run only: /dev ro,nosuid,noexec tmpfs|/dev/shm rw,nosuid,nodev tmpfs| hako only: /dev rw,nosuid,noexec tmpfs|/dev/shm rw,nosuid,nodev,noexec,relatime tmpfs|"
