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
//  1. join the container's v1 cgroups by writing "0" to their tasks files
//     (a thread moving itself skips the synchronize_rcu wait that writing a
//     pid into cgroup.procs costs, ~5 ms on a cold start; cgroup2 is joined
//     at birth with clone3(CLONE_INTO_CGROUP) by the parent instead);
//  2. setns into namespaces given by path, the user namespace first so that
//     the others, owned by it, are joinable;
//  3. unshare(CLONE_NEWUSER) alone, then ask the parent to write uid_map and
//     gid_map (seed 002: an unprivileged writer must write "deny" to
//     setgroups first, which the parent does), then become root in it;
//  4. unshare every other new namespace, now owned by the new user namespace,
//     and write time namespace offsets before any process lives in it;
//  5. fork: a new PID or time namespace applies only to children (seed 002,
//     nsfs shows it as pid_for_children). The child is created with
//     CLONE_PARENT so the hako parent can wait for it; this process reports
//     the child's pid and exits. The child returns into Go.
//
// Protocol on the fd named by _HAKO_SYNC, one request per line:
//   cg PATH | join PATH | unshare HEXFLAGS | timens CLOCK SEC NSEC | end
// Replies: "maps" (waits for "ok"), "pid N", or "err MESSAGE".
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
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define NS_GET_NSTYPE 0xb703

#define MAX_JOIN 16
#define MAX_CG 16
#define MAX_LINE 4096

static int sync_fd = -1;

static void send_line(const char *fmt, ...)
{
	char buf[MAX_LINE];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(sync_fd, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static void bail(const char *what, const char *arg)
{
	int e = errno;
	// The errno travels as a number too, so that the parent can explain
	// it (internal/explain) without parsing strerror's words.
	send_line("err %d %s|%s: %s", e, what, arg ? arg : "", strerror(e));
	_exit(1);
}

// The parent sends nothing past what we are reading until we answer, so
// whatever read() returns belongs to the current request: a block is read at
// a time and split into lines here, without ever consuming bytes meant for
// the Go code that runs after us.
static char rbuf[MAX_LINE * 4];
static size_t rlen, rpos;

static int read_line(char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		if (rpos == rlen) {
			ssize_t r = read(sync_fd, rbuf, sizeof(rbuf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			rlen = (size_t)r;
			rpos = 0;
		}
		char c = rbuf[rpos++];
		if (c == '\n')
			break;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
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

__attribute__((constructor)) static void hako_nsexec(void)
{
	const char *hold = getenv("_HAKO_CGROUP_HOLD");
	if (hold != NULL && *hold != '\0')
		hold_cgroup();
	const char *env = getenv("_HAKO_SYNC");
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);
	// The process was exec'd through the sealed binary's fd, so its name
	// would be a number; name it for ps and for people reading it.
	prctl(PR_SET_NAME, "hako:[nsexec]", 0, 0, 0);

	char line[MAX_LINE];
	char *join_paths[MAX_JOIN];
	int join_fds[MAX_JOIN];
	int njoin = 0;
	unsigned long flags = 0;
	char timens[512] = "";

	// Nothing from the container may ptrace or open /proc/<pid>/ of a
	// process that is still the hako binary. With a new user namespace the
	// parent must still write our id maps, which needs us dumpable.
	int dumpable_later = 0;

	for (;;) {
		if (read_line(line, sizeof(line)) < 0) {
			errno = EPIPE;
			bail("read", "sync pipe");
		}
		if (strcmp(line, "end") == 0)
			break;
		if (strncmp(line, "cg ", 3) == 0) {
			write_file(line + 3, "0");
		} else if (strncmp(line, "join ", 5) == 0) {
			if (njoin == MAX_JOIN) {
				errno = E2BIG;
				bail("join", line + 5);
			}
			// Open every path before entering any namespace: after
			// setns(mnt) the paths would resolve in the container.
			join_fds[njoin] = open(line + 5, O_RDONLY | O_CLOEXEC);
			if (join_fds[njoin] < 0)
				bail("open namespace", line + 5);
			join_paths[njoin] = strdup(line + 5);
			njoin++;
		} else if (strncmp(line, "unshare ", 8) == 0) {
			flags = strtoul(line + 8, NULL, 16);
		} else if (strncmp(line, "timens ", 7) == 0) {
			size_t l = strlen(timens), add = strlen(line + 7);
			if (l + add + 2 > sizeof(timens)) {
				errno = E2BIG;
				bail("timens", line + 7);
			}
			memcpy(timens + l, line + 7, add);
			timens[l + add] = '\n';
			timens[l + add + 1] = '\0';
		} else {
			errno = EINVAL;
			bail("unknown request", line);
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
			close(join_fds[i]);
			join_fds[i] = -1;
			if (type == CLONE_NEWUSER) {
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
		send_line("maps");
		if (read_line(line, sizeof(line)) < 0 || strcmp(line, "ok") != 0) {
			errno = EPERM;
			bail("write id maps", line);
		}
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			bail("prctl", "PR_SET_DUMPABLE");
		// Become root of the new namespace where 0 is mapped; where it
		// is not, the Go side switches to the configured user anyway.
		(void)setresgid(0, 0, 0);
		(void)setresuid(0, 0, 0);
	}

	unsigned long rest = flags & ~(unsigned long)CLONE_NEWUSER;
	if (rest && unshare((int)rest) < 0) {
		char what[64];
		snprintf(what, sizeof(what), "flags 0x%lx", rest);
		bail("unshare", what);
	}
	if ((flags & CLONE_NEWTIME) && timens[0] != '\0')
		write_file("/proc/self/timens_offsets", timens);

	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		bail("clone", "container process");
	if (pid > 0) {
		send_line("pid %d", pid);
		_exit(0);
	}
	// The child goes on into the Go runtime with the same sync fd.
	prctl(PR_SET_NAME, "hako:[init]", 0, 0, 0);
}
