#!/usr/bin/env bash
# Runs the OCI runtime-tools validation suite against hako and fails if a
# program listed in test/conformance/expected-pass-<version>.txt fails.
# Not listed, by design: "mounts", whose bind mounts carry tmpfs data
# (mode=755,size=1k) that the kernel would ignore; runc 1.5 refuses such a
# config ("bind mounts cannot have any filesystem-specific options
# applied") and so does hako, where runc 1.1.5 dropped the options
# silently.
# The suite harness (run-suite) is not part of hako: set CONFORMANCE_SUITE
# to it, or keep the workspace's ../shared/tools checkout beside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${CONFORMANCE_SUITE:-}
for s in ../shared/tools/conformance/run-suite /work/shared/tools/conformance/run-suite; do
	[ -z "$suite" ] && [ -x "$s" ] && suite=$s
done
if [ -z "$suite" ]; then
	echo "conformance: run-suite not found; skipped (set CONFORMANCE_SUITE)"
	exit 0
fi
. hack/deps.sh
go build -tags netgo,osusergo -o hako ./cmd/hako
# The suite's hugetlb cases make hako enable hugetlb in a hybrid host's
# cgroup2 root, which (like runc) it never turns off: put the host back as
# it was, so that later runs and other runtimes see the same host.
uni=/sys/fs/cgroup/unified/cgroup.subtree_control
before=$(cat "$uni" 2>/dev/null || true)
restore() {
	[ -w "$uni" ] || return 0
	for c in $(cat "$uni"); do
		case " $before " in *" $c "*) ;; *) echo "-$c" > "$uni" || true ;; esac
	done
}
trap restore EXIT
status=0
for v in v0.9.1-0.20250303011046-260e151b8552 v0.9.1-0.20251205004911-5e639034dcdc; do
	out=$(mktemp)
	"$suite" --version "$v" -o "$out" ./hako | tail -1 || true
	while read -r t; do
		case "$t" in "" | "#"*) continue ;; esac
		st=$(awk -F'\t' -v t="$t" '$1==t{print $2}' "$out")
		if [ "$st" != pass ]; then
			echo "conformance $v: $t: ${st:-missing} (expected pass)"
			status=1
		fi
	done < "test/conformance/expected-pass-$v.txt"
	rm -f "$out"
done
exit $status
