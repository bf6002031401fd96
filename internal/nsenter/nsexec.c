// nsexec runs before the Go runtime starts in a re-executed hako process.
//
// Why C: the kernel refuses setns(CLONE_NEWUSER) from a multithreaded
// process and setns(CLONE_NEWNS) from a thread sharing its fs_struct, and the
// Go runtime has several threads before main runs. A cgo constructor runs
// while the process is still single-threaded, as runc's nsexec does.
//
// It is kept to the few steps that must happen single-threaded, in this
// order (each one depends on the one before):
//
//  0. write oom_score_adj, while still dumpable and in hako's user
//     namespace (later it could not be lowered; children inherit it);
//  1. join the container's v1 cgroups by writing "0" to their tasks files
//     (a thread moving itself skips the synchronize_rcu wait that writing a
//     pid into cgroup.procs costs, ~5 ms on a cold start; cgroup2 is joined
//     at birth with clone3(CLONE_INTO_CGROUP) by the parent instead, or,
//     where the kernel refuses the parent that, the parent has the
//     cgroup's owner (systemd) move us while we wait: ns-place);
//  2. setns into namespaces, the user namespace first so that the others,
//     owned by it, are joinable;
//  3. unshare(CLONE_NEWUSER) alone, then ask the parent to write uid_map and
//     gid_map (seed 002: an unprivileged writer must write "deny" to
//     setgroups first, which the parent does), then become root in it;
//  4. unshare every other new namespace, now owned by the new user namespace,
//     and write time namespace offsets before any process lives in it;
//  4a. for bwrap --disable-userns, right after the user namespace: cap it at
//     one nested namespace (user.max_user_namespaces = 1) and make that
//     one, mapping our ids to themselves, so the sandbox, inside it, can
//     neither make another nor lift the cap; for --assert-userns-disabled
//     too, once every namespace is made, check that none can be made;
//  5. fork: a new PID or time namespace applies only to children (seed 002,
//     nsfs shows it as pid_for_children). The child is created with
//     CLONE_PARENT so the hako parent can wait for it; this process reports
//     the child's pid and exits. The child returns into Go, or, asked to
//     (ns-options HAKO_NS_CPLAN, an exec's short plan), applies the plan
//     that follows in C and execs without starting Go (cplan.c).
//
// An init that re-executes itself to enter a user namespace after its setup
// (bwrap --userns2, _HAKO_SETNS_USER) gets that one setns and nothing else
// (setns_user).
//
// It speaks internal/frame's framing on the socket named by _HAKO_SYNC
// (nsframe.h): the parent sends ns-oom-score-adj, then ns-cgroup and
// ns-join frames, each with the file it opened (so no path is resolved
// here, where a setns would change what it means), ns-unshare,
// ns-time-offsets, maybe ns-place, then ns-end. We answer ns-place (and
// wait for ns-place-done) if asked, ns-maps (and wait for ns-maps-done),
// then ns-pid; or ns-error and exit.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsframe.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define NS_GET_NSTYPE 0xb703

#define MAX_JOIN 16
#define MAX_PAYLOAD 4096
#define MAX_FRAME_FDS 4

static int sync_fd = -1;

// send_frame writes one frame (internal/frame's layout) in one send, with
// MSG_NOSIGNAL: a parent that is gone ends us through the error path, not
// through SIGPIPE. It returns -1 if the frame did not go.
static int send_frame(int type, const void *payload, size_t len)
{
	unsigned char buf[HAKO_FRAME_HEADER + MAX_PAYLOAD];
	if (len > MAX_PAYLOAD)
		len = MAX_PAYLOAD;
	buf[0] = HAKO_FRAME_MAGIC;
	buf[1] = (unsigned char)type;
	buf[2] = buf[3] = 0;
	buf[4] = len & 0xff;
	buf[5] = (len >> 8) & 0xff;
	buf[6] = (len >> 16) & 0xff;
	buf[7] = (len >> 24) & 0xff;
	memcpy(buf + HAKO_FRAME_HEADER, payload, len);
	size_t n = HAKO_FRAME_HEADER + len;
	for (size_t off = 0; off < n;) {
		ssize_t w = send(sync_fd, buf + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static void bail(const char *what, const char *arg)
{
	int e = errno;
	// The errno travels as a number, so that the parent can explain it
	// (internal/explain) without parsing strerror's words.
	unsigned char p[MAX_PAYLOAD];
	hako_put_le32(p, (uint32_t)e);
	int n = snprintf((char *)p + 4, sizeof(p) - 4, "%s%c%s%c%s", what, 0, arg ? arg : "", 0, strerror(e));
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(p) - 5)
		n = (int)sizeof(p) - 5;
	send_frame(HAKO_FRAME_NS_ERROR, p, 4 + (size_t)n);
	_exit(1);
}

// recv_frame reads one frame: its header, then exactly its payload, never a
// byte more, so that what follows on the socket (the plan) stays for the Go
// code that runs after us. The fds a frame carries arrive with the
// recvmsg that reads its header's first byte (the parent sends each frame
// with one sendmsg), and their count must be the header's.
struct frame {
	int type;
	char payload[MAX_PAYLOAD + 1]; // NUL-terminated
	size_t len;
	int fds[MAX_FRAME_FDS];
	int nfds;
};

// recv_fds reads exactly len bytes, keeping up to max of the fds that come
// with them in fds (closing the rest) and counting them in *nfds.
static int recv_fds(void *buf, size_t len, int *fds, int max, int *nfds)
{
	for (size_t got = 0; got < len;) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * HAKO_MAX_FDS)];
		} ctl;
		struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
		ssize_t r = recvmsg(sync_fd, &m, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = EPIPE;
		if (r <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*nfds < max)
					fds[(*nfds)++] = fd;
				else
					close(fd);
			}
		}
		if (m.msg_flags & MSG_CTRUNC) {
			errno = EMSGSIZE;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

// recv_full reads exactly len bytes, queueing in f the fds that come with
// them.
static int recv_full(void *buf, size_t len, struct frame *f)
{
	return recv_fds(buf, len, f->fds, MAX_FRAME_FDS, &f->nfds);
}

static int recv_frame(struct frame *f)
{
	unsigned char h[HAKO_FRAME_HEADER];
	f->nfds = 0;
	if (recv_full(h, sizeof(h), f) < 0)
		return -1;
	size_t len = (size_t)h[4] | (size_t)h[5] << 8 | (size_t)h[6] << 16 | (size_t)h[7] << 24;
	int nfds = h[2] | h[3] << 8;
	if (h[0] != HAKO_FRAME_MAGIC || nfds != f->nfds) {
		errno = EPROTO;
		return -1;
	}
	if (len > MAX_PAYLOAD) {
		errno = E2BIG;
		return -1;
	}
	f->type = h[1];
	if (recv_full(f->payload, len, f) < 0)
		return -1;
	// Every fd of a frame comes with its header.
	if (f->nfds != nfds) {
		errno = EPROTO;
		return -1;
	}
	f->payload[len] = '\0';
	f->len = len;
	return 0;
}

int hako_send_frame(int type, const void *payload, size_t len)
{
	return send_frame(type, payload, len);
}

int hako_recv_with_fds(void *buf, size_t len, int *fds, int max, int *nfds)
{
	return recv_fds(buf, len, fds, max, nfds);
}

// expect_fd checks that a request frame brought exactly one fd.
static int expect_fd(struct frame *f)
{
	if (f->nfds != 1 || strlen(f->payload) != f->len) {
		errno = EPROTO;
		bail("malformed request", f->payload);
	}
	return f->fds[0];
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		bail("open", path);
	size_t len = strlen(data);
	if (write(fd, data, len) != (ssize_t)len)
		bail("write", path);
	close(fd);
}

// hold_cgroup is the whole life of the systemd driver's placeholder
// (internal/linux/cgroups/systemd/hold.go): a process that exists only so
// that systemd can be asked to start a scope with it, and so keeps the scope
// populated until the container's first process has joined it. It never
// reaches the Go runtime: it blocks on stdin (a pipe whose write end only
// hako holds, close-on-exec) and exits when that closes, including when hako
// dies. (No PDEATHSIG: it fires when the forking *thread* exits, which in a
// Go parent is not the process.)
static void hold_cgroup(void)
{
	char c;
	prctl(PR_SET_NAME, "hako:[cg-hold]", 0, 0, 0);
	while (read(0, &c, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

// nest_userns is bubblewrap's --disable-userns: the user namespace we are
// in (just made, its maps written, our capabilities full in it) allows one
// more, which we enter at once; the sandbox, inside that one, has no
// capability over this one's limit. Done while still dumpable: a
// non-dumpable process cannot open its own uid_map.
static void nest_userns(void)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	write_file("/proc/sys/user/max_user_namespaces", "1");
	if (unshare(CLONE_NEWUSER) < 0)
		bail("unshare", "nested user namespace (--disable-userns)");
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	write_file("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	write_file("/proc/self/gid_map", map);
}

int hako_setns_user_errno;

// setns_user is the whole of the constructor's work in an init that has
// re-executed itself, its sandbox set up, to enter another user namespace
// (bwrap --userns2): the Go side goes on with the rest of its plan in this
// same process. A refusal is left in hako_setns_user_errno for Go, which
// holds the socket to the parent, to report in bubblewrap's words.
static void setns_user(const char *fdstr)
{
	int fd = atoi(fdstr);
	prctl(PR_SET_NAME, "hako:[init]", 0, 0, 0);
	// The exec made us dumpable again; nothing of the sandbox may ptrace
	// a process that is still the hako binary (as in hako_nsexec).
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (setns(fd, CLONE_NEWUSER) < 0)
		hako_setns_user_errno = errno;
	close(fd);
}

long hako_caller_slack = -1;

// A hako command is a Go process that lives for a few milliseconds, in
// which the runtime's sysmon thread wakes every 20 µs for its first
// millisecond and then doubles its sleep: ~60 wake-ups a `run`, each a pair
// of context switches, about 1 ms of CPU a run on this project's VM (20
// containers started at once took 10 % longer for it). A timer slack of
// HAKO_TIMER_SLACK_NS lets the kernel let those sleeps run long; nothing in
// a hako command waits on a timer for its correctness. Set here, before the
// runtime makes its threads, so every thread of the process has it. Every
// process hako starts gets the caller's slack back (nsenter.WithCallerSlack):
// a container's timers are the caller's business. Not for a container
// process, which the parent started with the caller's slack already, nor
// where the caller's slack is 0 (a real-time caller; set to 0, a thread's
// slack goes back to its default, which would then be ours).
static void set_slack(void)
{
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (cur <= 0)
		return;
	if (prctl(PR_SET_TIMERSLACK, HAKO_TIMER_SLACK_NS, 0, 0, 0) == 0)
		hako_caller_slack = cur;
}

__attribute__((constructor)) static void hako_nsexec(void)
{
	const char *hold = getenv("_HAKO_CGROUP_HOLD");
	if (hold != NULL && *hold != '\0')
		hold_cgroup();
	const char *userns = getenv("_HAKO_SETNS_USER");
	if (userns != NULL && *userns != '\0') {
		setns_user(userns);
		return;
	}
	const char *env = getenv("_HAKO_SYNC");
	if (env == NULL || *env == '\0') {
		set_slack();
		return;
	}
	sync_fd = atoi(env);
	// The process was exec'd through the sealed binary's fd, so its name
	// would be a number; name it for ps and for people reading it.
	prctl(PR_SET_NAME, "hako:[nsexec]", 0, 0, 0);

	static struct frame f;
	char *join_paths[MAX_JOIN];
	int join_fds[MAX_JOIN];
	int njoin = 0;
	unsigned long flags = 0;
	char timens[512] = "";
	uint32_t opts = 0;
	int joined_pidns = 0;
	int place = 0;

	// Nothing from the container may ptrace or open /proc/<pid>/ of a
	// process that is still the hako binary. With a new user namespace the
	// parent must still write our id maps, which needs us dumpable.
	int dumpable_later = 0;

	for (;;) {
		if (recv_frame(&f) < 0)
			bail("read", "sync socket");
		if (f.type == HAKO_FRAME_NS_END)
			break;
		switch (f.type) {
		case HAKO_FRAME_NS_OOM_SCORE_ADJ:
			// Before anything else, while we are dumpable and in hako's
			// user namespace: every process we fork inherits it.
			if (f.nfds != 0 || strlen(f.payload) != f.len) {
				errno = EPROTO;
				bail("malformed request", "ns-oom-score-adj");
			}
			write_file("/proc/self/oom_score_adj", f.payload);
			break;
		case HAKO_FRAME_NS_CGROUP: {
			int fd = expect_fd(&f);
			if (write(fd, "0", 1) != 1)
				bail("write", f.payload);
			close(fd);
			break;
		}
		case HAKO_FRAME_NS_JOIN:
			if (njoin == MAX_JOIN) {
				errno = E2BIG;
				bail("join", f.payload);
			}
			join_fds[njoin] = expect_fd(&f);
			join_paths[njoin] = strdup(f.payload);
			njoin++;
			break;
		case HAKO_FRAME_NS_UNSHARE:
			if (f.len != 8 || f.nfds != 0) {
				errno = EPROTO;
				bail("malformed request", "ns-unshare");
			}
			flags = 0;
			for (int i = 7; i >= 0; i--)
				flags = flags << 8 | (unsigned char)f.payload[i];
			break;
		case HAKO_FRAME_NS_OPTIONS:
			if (f.len != 4 || f.nfds != 0) {
				errno = EPROTO;
				bail("malformed request", "ns-options");
			}
			opts = (uint32_t)(unsigned char)f.payload[0] | (uint32_t)(unsigned char)f.payload[1] << 8 |
			       (uint32_t)(unsigned char)f.payload[2] << 16 | (uint32_t)(unsigned char)f.payload[3] << 24;
			break;
		case HAKO_FRAME_NS_PLACE:
			if (f.len != 0 || f.nfds != 0) {
				errno = EPROTO;
				bail("malformed request", "ns-place");
			}
			place = 1;
			break;
		case HAKO_FRAME_NS_TIME_OFFSETS:
			if (f.len + 1 > sizeof(timens) || strlen(f.payload) != f.len || f.nfds != 0) {
				errno = E2BIG;
				bail("timens", f.payload);
			}
			memcpy(timens, f.payload, f.len + 1);
			break;
		default:
			for (int i = 0; i < f.nfds; i++)
				close(f.fds[i]);
			errno = EPROTO;
			{
				char what[32];
				snprintf(what, sizeof(what), "frame type %d", f.type);
				bail("unexpected request", what);
			}
		}
	}

	// Before every namespace step: the cgroup namespace unshared below
	// is rooted at the cgroup we are in then, and the process we fork
	// inherits our cgroup.
	if (place) {
		send_frame(HAKO_FRAME_NS_PLACE, NULL, 0);
		if (recv_frame(&f) < 0)
			bail("wait to be placed in the cgroup", "sync socket");
		if (f.type != HAKO_FRAME_NS_PLACE_DONE) {
			errno = EPROTO;
			bail("wait to be placed in the cgroup", "sync socket");
		}
	}

	dumpable_later = (flags & CLONE_NEWUSER) != 0;
	if (!dumpable_later && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		bail("prctl", "PR_SET_DUMPABLE");

	// User namespace first: the rest may be owned by it.
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < njoin; i++) {
			if (join_fds[i] < 0)
				continue;
			int type = ioctl(join_fds[i], NS_GET_NSTYPE);
			if (type < 0)
				bail("not a namespace file (ioctl NS_GET_NSTYPE)", join_paths[i]);
			int want = (pass == 0 && type == CLONE_NEWUSER) ||
				   (pass == 1 && type != CLONE_NEWUSER && type != CLONE_NEWNS) ||
				   (pass == 2 && type == CLONE_NEWNS);
			if (!want)
				continue;
			if (setns(join_fds[i], type) < 0)
				bail("setns", join_paths[i]);
			if (type == CLONE_NEWPID)
				joined_pidns = 1;
			close(join_fds[i]);
			join_fds[i] = -1;
			if (type == CLONE_NEWUSER && !(opts & HAKO_NS_KEEPIDS)) {
				// setns keeps our ids, and the host's root is not
				// mapped in a container's user namespace: files we
				// would create (mount points in a tmpfs it owns, or
				// on an idmapped rootfs) fail with EOVERFLOW. Become
				// its root, as runc's init does (setuid(0)).
				(void)setresgid(0, 0, 0);
				(void)setresuid(0, 0, 0);
			}
		}
	}

	if (flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("unshare", "user namespace");
		send_frame(HAKO_FRAME_NS_MAPS, NULL, 0);
		if (recv_frame(&f) < 0)
			bail("wait for id maps", "sync socket");
		if (f.type != HAKO_FRAME_NS_MAPS_DONE) {
			errno = EPROTO;
			bail("wait for id maps", "sync socket");
		}
		if (opts & HAKO_NS_DISABLE_USERNS)
			nest_userns();
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			bail("prctl", "PR_SET_DUMPABLE");
		// Become root of the new namespace where 0 is mapped; where it
		// is not, the Go side switches to the configured user anyway.
		if (!(opts & HAKO_NS_KEEPIDS)) {
			(void)setresgid(0, 0, 0);
			(void)setresuid(0, 0, 0);
		}
	}

	unsigned long rest = flags & ~(unsigned long)CLONE_NEWUSER;
	// A new PID namespace below a joined one (bwrap --pidns with
	// --unshare-pid) is made by a child already in the joined one: unshare
	// refuses CLONE_NEWPID while ours for children differs from our own.
	int nested_pidns = joined_pidns && (rest & CLONE_NEWPID);
	if (nested_pidns)
		rest &= ~(unsigned long)CLONE_NEWPID;
	if (rest && unshare((int)rest) < 0) {
		char what[64];
		snprintf(what, sizeof(what), "flags 0x%lx", rest);
		bail("unshare", what);
	}
	if ((flags & CLONE_NEWTIME) && timens[0] != '\0')
		write_file("/proc/self/timens_offsets", timens);
	if ((opts & HAKO_NS_ASSERT_USERNS_DISABLED) && unshare(CLONE_NEWUSER) == 0) {
		// Not a syscall's failure; the parent gives bubblewrap's words.
		errno = EPERM;
		bail("assert-userns-disabled", "");
	}

	if (nested_pidns) {
		pid_t mid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (mid < 0)
			bail("clone", "into the joined PID namespace");
		if (mid > 0)
			_exit(0); // the child reports
		if (unshare(CLONE_NEWPID) < 0)
			bail("unshare", "PID namespace below the joined one");
	}
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		bail("clone", "container process");
	if (pid > 0) {
		// From inside the joined PID namespace the pid is that
		// namespace's: the second word says so, and the parent finds
		// the process by it (NSpid).
		unsigned char p[8];
		hako_put_le32(p, (uint32_t)pid);
		hako_put_le32(p + 4, (uint32_t)nested_pidns);
		send_frame(HAKO_FRAME_NS_PID, p, nested_pidns ? 8 : 4);
		_exit(0);
	}
	// The child goes on into the Go runtime with the same sync fd, or,
	// for a plan whose every step cplan.c knows, applies it here and
	// execs; cplan.c returns only to hand a step it could not apply to
	// Go, which goes on from there.
	prctl(PR_SET_NAME, "hako:[init]", 0, 0, 0);
	if (opts & HAKO_NS_CPLAN)
		hako_run_cplan();
}
