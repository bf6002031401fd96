// cplan.c applies a plan in the process the constructor forked into the
// container's namespaces, and execs the program, without the Go runtime
// ever starting there (nsenter/cplan.go says why, and what it takes): an
// exec's plan, or a container init's. Each step does what its Go handler in
// internal/initproc does, in the same order.
//
// The process steps (the ones an exec's plan is made of) fail with the Go
// handler's text: the message goes to the parent as an ns-c-error frame
// with the errno as a number, which the parent spells as Go does
// (nsenter.CError). The init's mount steps (cinit.c) do not report: a
// failure there hands the process to Go at that step (hand_to_go), which
// applies it again and the rest after it, and says what went wrong in its
// own words.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cinit.h"
#include "nsframe.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#define MAX_CAPS 64
#define BPF_MAX_INSNS 4096

int hako_cplan_resume = -1;
unsigned char *hako_cplan_wire;
uint32_t hako_cplan_wire_len;
int *hako_cplan_fds;
int hako_cplan_nfds;
int hako_cplan_root = -1;

static uint32_t step_no;
static char step_name[64];
static char *cap_names[MAX_CAPS];
static uint32_t last_cap;

// fail reports the current step's failure and exits: "step N name: " and
// the message, then Go's words for err (if not 0), then suffix.
__attribute__((noreturn, format(printf, 3, 4))) static void fail(int err, const char *suffix, const char *fmt, ...)
{
	unsigned char p[4096];
	hako_put_le32(p, (uint32_t)err);
	int n = snprintf((char *)p + 4, sizeof(p) - 4, "step %u %s: ", step_no, step_name);
	if (n < 0)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf((char *)p + 4 + n, sizeof(p) - 4 - (size_t)n, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += m;
	if ((size_t)n > sizeof(p) - 6)
		n = (int)sizeof(p) - 6;
	p[4 + n] = '\0';
	size_t s = strlen(suffix);
	if (s > sizeof(p) - 5 - (size_t)n - 1)
		s = sizeof(p) - 5 - (size_t)n - 1;
	memcpy(p + 5 + n, suffix, s);
	if (hako_send_frame(HAKO_FRAME_NS_C_ERROR, p, 5 + (size_t)n + s) < 0) {
		// As the Go init: once "ready" is sent, nobody may be
		// listening (create's parent is gone); stderr is the
		// container's, and the last place to say why it died. Go
		// spells an errno as strerror does, but in lower case.
		char e[128] = "";
		if (err != 0) {
			snprintf(e, sizeof(e), ": %s", strerror(err));
			if (e[2] >= 'A' && e[2] <= 'Z')
				e[2] = (char)(e[2] - 'A' + 'a');
		}
		dprintf(2, "hako init: %s%s%s\n", (char *)p + 4, e, (char *)p + 5 + n);
	}
	_exit(1);
}

// The plan's reader: every read is bounds-checked; a short plan is a
// protocol error, never a read past its end.
struct rd {
	const unsigned char *p, *end;
};

static void need(struct rd *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		fail(EPROTO, "", "malformed c-plan");
}

static uint32_t u32(struct rd *r)
{
	need(r, 4);
	uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
	r->p += 4;
	return v;
}

static uint64_t u64(struct rd *r)
{
	uint64_t lo = u32(r);
	return lo | (uint64_t)u32(r) << 32;
}

static uint8_t u8(struct rd *r)
{
	need(r, 1);
	return *r->p++;
}

static char *str(struct rd *r);

// strs reads a count and that many strings.
static char **strs(struct rd *r, uint32_t *n)
{
	*n = u32(r);
	if (*n > (1 << 20))
		fail(EPROTO, "", "malformed c-plan");
	char **v = calloc(*n + 1, sizeof(char *));
	if (v == NULL)
		fail(ENOMEM, "", "read c-plan");
	for (uint32_t i = 0; i < *n; i++)
		v[i] = str(r);
	return v;
}

static char *str(struct rd *r)
{
	uint32_t n = u32(r);
	need(r, n);
	char *s = malloc((size_t)n + 1);
	if (s == NULL)
		fail(ENOMEM, "", "read c-plan");
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	return s;
}

static const char *cap_name(int c)
{
	return c >= 0 && c < MAX_CAPS && cap_names[c] != NULL ? cap_names[c] : "CAP_?";
}

// names is security's capMask.names: "CAP_A, CAP_B".
static void names(uint64_t m, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int c = 0; c < MAX_CAPS; c++) {
		if (!(m & (1ULL << c)))
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", cap_name(c));
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
}

// enter_cwd is initproc's enterCwd: resolved inside the container's root,
// never through a magic link (CVE-2024-21626). It returns 0 or the errno,
// with *what saying which call failed.
static int enter_cwd(const char *cwd, int *opened)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	*opened = 0;
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, cwd, &how, sizeof(how));
	if (fd < 0)
		return errno;
	*opened = 1;
	int e = fchdir(fd) < 0 ? errno : 0;
	close(fd);
	return e;
}

static void fail_cwd(int e, int opened, const char *cwd, const char *more)
{
	char suffix[256];
	if (opened)
		fail(e, more, "chdir to process.cwd %s", cwd);
	snprintf(suffix, sizeof(suffix), "%s%s", e == ELOOP ? " (it goes through a /proc magic link, which could lead outside the container)" : "", more);
	fail(e, suffix, "process.cwd %s", cwd);
}

static uint64_t read_bounding(void)
{
	uint64_t bnd = 0;
	for (uint32_t c = 0; c <= last_cap && c < MAX_CAPS; c++) {
		int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		if (in < 0)
			fail(errno, "", "reading bounding set");
		if (in)
			bnd |= 1ULL << c;
	}
	return bnd;
}

// Go's filepath.Clean, for the paths lookup joins (so that errors and
// /proc/<pid>/cmdline's exec name read as the Go lookup's would).
char *hako_clean(const char *in)
{
	size_t n = strlen(in);
	if (n == 0)
		return strdup(".");
	char *out = malloc(n + 2);
	if (out == NULL)
		fail(ENOMEM, "", "lookup");
	int rooted = in[0] == '/';
	size_t r = 0, w = 0, dotdot = 0;
	if (rooted) {
		out[w++] = '/';
		r = dotdot = 1;
	}
	while (r < n) {
		if (in[r] == '/') {
			r++;
		} else if (in[r] == '.' && (r + 1 == n || in[r + 1] == '/')) {
			r++;
		} else if (in[r] == '.' && in[r + 1] == '.' && (r + 2 == n || in[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			for (; r < n && in[r] != '/'; r++)
				out[w++] = in[r];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	return out;
}

// check_exec is initproc's checkExec: 0, or why p cannot be run, as the
// text after `exec "NAME": ` (suffix, errno).
static int check_exec(const char *p, const char **why)
{
	struct stat st;
	*why = NULL;
	if (stat(p, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode)) {
		*why = "is a directory";
		return -1;
	}
	if (!(st.st_mode & 0111)) {
		*why = "permission denied";
		return -1;
	}
	return 0;
}

// with_home is initproc's withHome: HOME from the container's /etc/passwd
// unless the environment has one.
static char *home_of(uint32_t uid)
{
	char want[16], *line = NULL, *home = NULL;
	size_t cap = 0;
	snprintf(want, sizeof(want), "%u", uid);
	FILE *f = fopen("/etc/passwd", "re");
	if (f == NULL)
		return strdup("/");
	while (home == NULL && getline(&line, &cap, f) >= 0) {
		line[strcspn(line, "\n")] = '\0';
		size_t l = strlen(line);
		if (l > 0 && line[l - 1] == '\r')
			line[l - 1] = '\0';
		char *fields[7] = {0};
		int nf = 0;
		char *s = line;
		for (;;) {
			if (nf < 7)
				fields[nf] = s;
			nf++;
			char *c = strchr(s, ':');
			if (c == NULL)
				break;
			*c = '\0';
			s = c + 1;
		}
		if (nf >= 6 && strcmp(fields[2], want) == 0 && fields[5][0] != '\0')
			home = strdup(fields[5]);
	}
	free(line);
	fclose(f);
	return home != NULL ? home : strdup("/");
}

struct prog {
	char *path;
	char **args, **env;
};

static void lookup(struct rd *r, struct prog *pr)
{
	uint32_t uid = u32(r);
	char *argv0 = str(r);
	uint32_t nargs = u32(r);
	if (nargs == 0 || nargs > (1 << 20))
		fail(EPROTO, "", "malformed c-plan");
	pr->args = calloc(nargs + 1, sizeof(char *));
	if (pr->args == NULL)
		fail(ENOMEM, "", "lookup");
	for (uint32_t i = 0; i < nargs; i++)
		pr->args[i] = str(r);
	uint32_t nenv = u32(r);
	if (nenv > (1 << 20))
		fail(EPROTO, "", "malformed c-plan");
	pr->env = calloc(nenv + 2, sizeof(char *));
	if (pr->env == NULL)
		fail(ENOMEM, "", "lookup");
	int has_home = 0;
	const char *path = NULL;
	for (uint32_t i = 0; i < nenv; i++) {
		pr->env[i] = str(r);
		if (strncmp(pr->env[i], "HOME=", 5) == 0)
			has_home = 1;
		if (strncmp(pr->env[i], "PATH=", 5) == 0)
			path = pr->env[i] + 5;
	}
	if (!has_home) {
		char *home = home_of(uid);
		char *e = malloc(strlen(home) + 6);
		if (e == NULL)
			fail(ENOMEM, "", "lookup");
		sprintf(e, "HOME=%s", home);
		pr->env[nenv] = e;
	}
	const char *name = pr->args[0];
	const char *why;
	if (strchr(name, '/') != NULL) {
		int e = check_exec(name, &why);
		if (e > 0) {
			// os.Stat's PathError: "stat NAME: <errno>".
			fail(e, "", "exec \"%s\": stat %s", name, name);
		}
		if (e < 0)
			fail(0, "", "exec \"%s\": %s", name, why);
		pr->path = strdup(name);
	} else {
		// filepath.SplitList: no PATH is no directory at all.
		char *dirs = strdup(path != NULL ? path : "");
		for (char *d = dirs, *next; path != NULL && path[0] != '\0' && d != NULL; d = next) {
			next = strchr(d, ':');
			if (next != NULL)
				*next++ = '\0';
			const char *dir = d[0] != '\0' ? d : ".";
			char *joined = malloc(strlen(dir) + strlen(name) + 2);
			if (joined == NULL)
				fail(ENOMEM, "", "lookup");
			sprintf(joined, "%s/%s", dir, name);
			char *p = hako_clean(joined);
			free(joined);
			if (check_exec(p, &why) == 0) {
				pr->path = p;
				break;
			}
			free(p);
		}
		free(dirs);
		if (pr->path == NULL)
			fail(0, "", "exec \"%s\": executable file not found in $PATH", name);
	}
	if (argv0[0] != '\0')
		pr->args[0] = argv0;
}

static void caps(struct rd *r)
{
	uint64_t weff = u64(r), wperm = u64(r), winh = u64(r), wamb = u64(r);
	uint64_t supported = last_cap >= 63 ? ~0ULL : (1ULL << (last_cap + 1)) - 1;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &hdr, d) < 0)
		fail(errno, "", "capget");
	uint64_t ceff = d[0].effective | (uint64_t)d[1].effective << 32;
	uint64_t cperm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	uint64_t cinh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	uint64_t cbnd = read_bounding();
	// security.ApplyCaps: capset(2) only lets permitted shrink, and
	// inheritable may only grow within the bounding set and, without
	// CAP_SETPCAP, within permitted.
	uint64_t perm = wperm & supported & cperm;
	uint64_t eff = weff & supported & cperm;
	uint64_t allowed = cinh | cbnd;
	if (!(ceff & (1ULL << CAP_SETPCAP)))
		allowed &= cinh | cperm;
	uint64_t inh = winh & supported & allowed;
	d[0].effective = (uint32_t)eff;
	d[1].effective = (uint32_t)(eff >> 32);
	d[0].permitted = (uint32_t)perm;
	d[1].permitted = (uint32_t)(perm >> 32);
	d[0].inheritable = (uint32_t)inh;
	d[1].inheritable = (uint32_t)(inh >> 32);
	hdr.pid = 0;
	if (syscall(SYS_capset, &hdr, d) < 0) {
		int e = errno;
		char a[1024], b[1024], c[1024];
		names(eff, a, sizeof(a));
		names(perm, b, sizeof(b));
		names(inh, c, sizeof(c));
		fail(e, "", "setting capabilities (effective \"%s\", permitted \"%s\", inheritable \"%s\")", a, b, c);
	}
	// EINVAL: a kernel before ambient capabilities; nothing to reset.
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(errno, "", "clearing ambient capabilities");
	for (int c = 0; c < MAX_CAPS; c++) {
		uint64_t bit = 1ULL << c;
		// Unsupported, or not both permitted and inheritable: left
		// out, as ApplyCaps leaves them (it only warns).
		if ((wamb & bit) && (supported & bit) && (perm & bit) && (inh & bit))
			(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	}
}

static void user(struct rd *r)
{
	uint32_t uid = u32(r), gid = u32(r), groups = u32(r), n = u32(r);
	if (n > 65536)
		fail(EPROTO, "", "malformed c-plan");
	gid_t *gids = calloc(n + 1, sizeof(gid_t));
	if (gids == NULL)
		fail(ENOMEM, "", "user");
	char list[4096];
	size_t off = 0;
	list[0] = '\0';
	for (uint32_t i = 0; i < n; i++) {
		gids[i] = u32(r);
		int w = snprintf(list + off, sizeof(list) - off, "%s%u", i ? " " : "", gids[i]);
		if (w > 0 && (size_t)w < sizeof(list) - off)
			off += (size_t)w;
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(errno, "", "prctl PR_SET_KEEPCAPS");
	if (groups) {
		char allowed[16] = "";
		int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t got = read(fd, allowed, sizeof(allowed) - 1);
			allowed[got > 0 ? got : 0] = '\0';
			close(fd);
		}
		if (strncmp(allowed, "deny", 4) != 0) {
			if (setgroups(n, gids) < 0)
				fail(errno, "", "setgroups [%s]", list);
		} else if (n > 0) {
			fail(0, "", "process.user.additionalGids: setgroups is denied in this user namespace (seed 002: /proc/self/setgroups is \"deny\")");
		}
	}
	// Raw syscalls: glibc's setresgid would signal every thread, and this
	// process has one.
	if (syscall(SYS_setresgid, gid, gid, gid) < 0)
		fail(errno, errno == EINVAL ? " (the id is not mapped in the container's user namespace)" : "", "setgid %u", gid);
	if (syscall(SYS_setresuid, uid, uid, uid) < 0)
		fail(errno, errno == EINVAL ? " (the id is not mapped in the container's user namespace)" : "", "setuid %u", uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail(errno, "", "prctl PR_SET_KEEPCAPS");
}

static void seccomp(struct rd *r)
{
	uint64_t flags = u64(r);
	size_t len = (size_t)(r->end - r->p);
	if (len % sizeof(struct sock_filter) != 0)
		fail(EPROTO, "", "malformed c-plan");
	size_t n = len / sizeof(struct sock_filter);
	if (n > BPF_MAX_INSNS)
		fail(0, "", "seccomp: seccomp filter is %zu instructions long; the kernel takes at most %d", n, BPF_MAX_INSNS);
	struct sock_filter *insns = malloc(len + 1);
	if (insns == NULL)
		fail(ENOMEM, "", "seccomp");
	memcpy(insns, r->p, len);
	r->p += len;
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = insns};
	long ret = flags == 0 ? prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0)
			      : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned int)flags, &prog);
	if (ret < 0 && errno == EACCES)
		fail(errno, " (no_new_privs is not set and the thread lacks CAP_SYS_ADMIN)", "seccomp: loading seccomp filter");
	if (ret < 0)
		fail(errno, "", "seccomp: loading seccomp filter (flags %#llx)", (unsigned long long)flags);
	if (ret > 0)
		fail(0, "", "seccomp: loading seccomp filter: thread %ld could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)", ret);
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void put_le64(unsigned char *p, uint64_t v)
{
	hako_put_le32(p, (uint32_t)v);
	hako_put_le32(p + 4, (uint32_t)(v >> 32));
}

// The plan's fds, as they came with its frame; -1 once a step took one.
static int plan_fds[HAKO_MAX_FDS];
static int plan_nfds;
static int root_fd = -1;

// step_fd is a copy of the plan's fd i for a mount step to use up (-1 for
// none, -2 if it could not be had). The plan keeps its own until the step
// has worked (drop_fd): a step handed to Go runs again there, with it.
static int step_fd(int32_t i)
{
	if (i < 0)
		return -1;
	if (i >= plan_nfds)
		fail(EPROTO, "", "malformed c-plan: fd #%d, but %d fds came with the plan", i, plan_nfds);
	if (plan_fds[i] < 0)
		return -2;
	int fd = fcntl(plan_fds[i], F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? -2 : fd;
}

static void drop_fd(int32_t i)
{
	if (i >= 0 && i < plan_nfds && plan_fds[i] >= 0) {
		close(plan_fds[i]);
		plan_fds[i] = -1;
	}
}

// close_host_fds is applier.closeHostFds: nothing of the host stays open
// past the root change.
static void close_host_fds(void)
{
	if (root_fd >= 0)
		close(root_fd);
	root_fd = -1;
	for (int i = 0; i < plan_nfds; i++) {
		if (plan_fds[i] >= 0)
			close(plan_fds[i]);
		plan_fds[i] = -1;
	}
}

static void read_mount(struct rd *b, struct hako_cmount *m)
{
	m->kind = u8(b);
	m->type = str(b);
	m->source = str(b);
	m->dest = str(b);
	m->recursive = u8(b);
	m->attr = u64(b);
	m->attrclr = u64(b);
	m->rattr = u64(b);
	m->rattrclr = u64(b);
	m->prop = u64(b);
	m->sbflags = strs(b, &m->nsbflags);
	m->data = strs(b, &m->ndata);
	m->ncgroups = u32(b);
	if (m->ncgroups > 1024)
		fail(EPROTO, "", "malformed c-plan");
	m->cgroups = calloc(m->ncgroups + 1, sizeof(*m->cgroups));
	if (m->cgroups == NULL)
		fail(ENOMEM, "", "read c-plan");
	for (uint32_t i = 0; i < m->ncgroups; i++) {
		m->cgroups[i].dir = str(b);
		m->cgroups[i].host = str(b);
		m->cgroups[i].symlinks = strs(b, &m->cgroups[i].nsymlinks);
	}
}

static struct hako_cdev *read_devs(struct rd *b, uint32_t *n)
{
	*n = u32(b);
	if (*n > 65536)
		fail(EPROTO, "", "malformed c-plan");
	struct hako_cdev *d = calloc(*n + 1, sizeof(*d));
	if (d == NULL)
		fail(ENOMEM, "", "read c-plan");
	for (uint32_t i = 0; i < *n; i++) {
		d[i].path = str(b);
		d[i].type = u32(b);
		d[i].mode = u32(b);
		d[i].uid = u32(b);
		d[i].gid = u32(b);
		d[i].rdev = u64(b);
	}
	return d;
}

void hako_run_cplan(void)
{
	uint64_t main_at = now_ns(CLOCK_REALTIME);
	strcpy(step_name, "plan");
	unsigned char h[HAKO_FRAME_HEADER];
	if (hako_recv_with_fds(h, sizeof(h), plan_fds, HAKO_MAX_FDS, &plan_nfds) < 0)
		fail(errno, "", "read c-plan");
	uint32_t len = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
	int want_fds = h[2] | h[3] << 8;
	if (h[0] != HAKO_FRAME_MAGIC || h[1] != HAKO_FRAME_NS_C_PLAN || len > HAKO_C_MAX_PLAN)
		fail(EPROTO, "", "read c-plan");
	unsigned char *buf = malloc(len + 1);
	if (buf == NULL)
		fail(ENOMEM, "", "read c-plan");
	if (hako_recv_with_fds(buf, len, plan_fds, HAKO_MAX_FDS, &plan_nfds) < 0)
		fail(errno, "", "read c-plan");
	if (plan_nfds != want_fds)
		fail(EPROTO, "", "read c-plan: %d fds came, the frame says %d", plan_nfds, want_fds);
	struct rd r = {buf, buf + len};
	uint32_t flags = u32(&r), nsteps = u32(&r);
	last_cap = u32(&r);
	uint32_t nnames = u32(&r);
	for (uint32_t i = 0; i < nnames; i++) {
		char *n = str(&r);
		if (i < MAX_CAPS)
			cap_names[i] = n;
	}
	// The plan in Go's wire form, for Go to go on with if a step is
	// handed to it, and (tests only) a step to hand it unapplied.
	uint32_t wire_len = u32(&r);
	need(&r, wire_len);
	const unsigned char *wire = r.p;
	r.p += wire_len;
	uint32_t bail_at = u32(&r);
	if (nsteps > 4096)
		fail(EPROTO, "", "malformed c-plan");
	uint32_t *took = (flags & HAKO_C_FLAG_TIMINGS) ? calloc(nsteps + 1, sizeof(uint32_t)) : NULL;
	uint64_t plan_at = now_ns(CLOCK_REALTIME);

	struct prog pr = {0};
	int cwd_refused = 0, seccomp_loaded = 0;
	struct hako_cmasker masker = {.null = -1, .tmpfs = -1};
	while (r.p < r.end) {
		need(&r, 1);
		int op = *r.p++;
		step_no = u32(&r);
		char *name = str(&r);
		snprintf(step_name, sizeof(step_name), "%s", name);
		free(name);
		uint32_t blen = u32(&r);
		need(&r, blen);
		struct rd b = {r.p, r.p + blen};
		r.p += blen;
		// The masks of consecutive mask steps share one tmpfs and one
		// /dev/null (rootfs.Masker), closed once the run is over.
		if (op != HAKO_C_MASK)
			hako_c_masker_close(&masker);
		uint64_t t0 = took ? now_ns(CLOCK_MONOTONIC) : 0;
		int opened, e;
		char *path;
		// A mount step's result: -1 hands the step to Go. The process
		// steps (an exec's) report their own failures, in the Go
		// handlers' words: Go would need what the ones before had
		// decided (the lookup's program, the fds kept, a refused cwd).
		int mount_step = op >= HAKO_C_PROPAGATION && op <= HAKO_C_KEYRING;
		int res = mount_step && bail_at == step_no ? -1 : 0;
		if (res < 0)
			goto hand_over;
		switch (op) {
		case HAKO_C_PROPAGATION: {
			uint64_t pflags = u64(&b);
			res = hako_c_propagation(str(&b), (unsigned long)pflags);
			break;
		}
		case HAKO_C_BIND_ROOT:
			res = hako_c_bind_root(str(&b), &root_fd);
			break;
		case HAKO_C_MOUNT: {
			struct hako_cmount m = {0};
			int32_t i = (int32_t)u32(&b);
			read_mount(&b, &m);
			int fd = step_fd(i);
			if (root_fd < 0 || fd == -2) {
				if (fd >= 0)
					close(fd);
				res = -1;
				break;
			}
			res = hako_c_mount(root_fd, &m, fd);
			if (res == 0)
				drop_fd(i);
			break;
		}
		case HAKO_C_DEV: {
			int in_userns = u8(&b);
			uint32_t n;
			struct hako_cdev *d = read_devs(&b, &n);
			res = root_fd < 0 ? -1 : hako_c_dev(root_fd, d, n, in_userns);
			break;
		}
		case HAKO_C_LOOPBACK:
			res = hako_c_loopback();
			break;
		case HAKO_C_HOSTNAME:
			path = str(&b);
			res = sethostname(path, strlen(path));
			break;
		case HAKO_C_DOMAINNAME:
			path = str(&b);
			res = setdomainname(path, strlen(path));
			break;
		case HAKO_C_SYSCTL:
			path = str(&b);
			res = hako_c_sysctl(path, str(&b));
			break;
		case HAKO_C_PIVOT_ROOT:
			close_host_fds();
			res = hako_c_pivot(str(&b));
			break;
		case HAKO_C_SETSID:
			res = setsid() < 0 ? -1 : 0;
			break;
		case HAKO_C_DIR: {
			mode_t mode = (mode_t)u32(&b);
			res = hako_c_dir(root_fd, str(&b), mode);
			break;
		}
		case HAKO_C_MASK:
			path = str(&b);
			res = hako_c_mask(&masker, path, str(&b));
			break;
		case HAKO_C_READONLY:
			res = hako_c_readonly(str(&b));
			break;
		case HAKO_C_REMOUNT_RO:
			res = hako_c_remount_ro(str(&b));
			break;
		case HAKO_C_KEYRING:
			hako_c_keyring();
			break;
		case HAKO_C_WAIT_START: {
			// initproc.waitStart: the exec fifo through the state
			// directory's fd, which needs no /proc in the container.
			int dir = (int)u32(&b);
			char *fifo = str(&b);
			int fd = openat(dir, fifo, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				fail(errno, "", "open exec fifo");
			close(dir);
			if (write(fd, "0", 1) != 1)
				fail(errno, "", "write exec fifo");
			close(fd);
			break;
		}
		case HAKO_C_UMASK:
			umask((mode_t)u32(&b));
			break;
		case HAKO_C_CLOSE_FDS: {
			unsigned int from = u32(&b);
			if (syscall(SYS_close_range, from, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
				fail(errno, "", "close_range");
			while (b.p < b.end) {
				int fd = (int)u32(&b);
				if (fcntl(fd, F_SETFD, 0) < 0)
					fail(errno, "", "keep fd %d open", fd);
			}
			break;
		}
		case HAKO_C_CWD:
			path = str(&b);
			e = enter_cwd(path, &opened);
			if (e == EACCES || e == EPERM)
				cwd_refused = 1; // tried again as the user
			else if (e)
				fail_cwd(e, opened, path, "");
			break;
		case HAKO_C_CWD_AS_USER:
			path = str(&b);
			if (cwd_refused && (e = enter_cwd(path, &opened)) != 0) {
				char more[96];
				snprintf(more, sizeof(more), " (refused as root, then as uid %u)", (unsigned)getuid());
				fail_cwd(e, opened, path, more);
			}
			break;
		case HAKO_C_NO_NEW_PRIVS:
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				fail(errno, "", "prctl(PR_SET_NO_NEW_PRIVS)");
			break;
		case HAKO_C_AFFINITY: {
			char *value = str(&b);
			size_t n = (size_t)(b.end - b.p);
			if (n == 0) {
				// Every CPU, as runc's reset builds it (64Ki ones).
				static unsigned char all[64 * 1024 / 8];
				memset(all, 0xff, sizeof(all));
				if (syscall(SYS_sched_setaffinity, 0, sizeof(all), all) < 0)
					fail(errno, "", "reset CPU affinity: sched_setaffinity");
			} else {
				unsigned char set[128] = {0}; // unix.CPUSet's size
				memcpy(set, b.p, n < sizeof(set) ? n : sizeof(set));
				b.p = b.end;
				if (syscall(SYS_sched_setaffinity, 0, sizeof(set), set) < 0)
					fail(errno, "", "process.execCPUAffinity (%s): sched_setaffinity", value);
			}
			break;
		}
		case HAKO_C_RLIMIT: {
			uint32_t res = u32(&b);
			struct rlimit rl = {.rlim_cur = u64(&b), .rlim_max = u64(&b)};
			char *rname = str(&b);
			if (setrlimit((int)res, &rl) < 0)
				fail(errno, errno == EPERM ? " (raising a hard limit needs CAP_SYS_RESOURCE, which this host's bounding set may lack)" : "",
				     "setrlimit %s soft=%llu hard=%llu", rname, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
			break;
		}
		case HAKO_C_BOUNDING: {
			uint64_t keep = u64(&b);
			for (uint32_t c = 0; c <= last_cap && c < MAX_CAPS; c++) {
				if (keep & (1ULL << c))
					continue;
				int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
				if (in < 0)
					fail(errno, "", "reading bounding set");
				if (in && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
					fail(errno, "", "dropping %s from the bounding set", cap_name((int)c));
			}
			break;
		}
		case HAKO_C_USER:
			user(&b);
			break;
		case HAKO_C_CAPS:
			caps(&b);
			break;
		case HAKO_C_LOOKUP:
			lookup(&b, &pr);
			break;
		case HAKO_C_SECCOMP:
			seccomp(&b);
			seccomp_loaded = 1;
			break;
		case HAKO_C_READY: {
			if (took == NULL) {
				hako_send_frame(HAKO_FRAME_READY, NULL, 0);
				break;
			}
			// timing.Report's layout: two Unix-ns stamps, a count,
			// then each step's microseconds.
			size_t n = 20 + 4 * (size_t)nsteps;
			unsigned char *rep = calloc(1, n);
			if (rep == NULL)
				fail(ENOMEM, "", "ready");
			put_le64(rep, main_at);
			put_le64(rep + 8, plan_at);
			hako_put_le32(rep + 16, nsteps);
			for (uint32_t i = 0; i < nsteps; i++)
				hako_put_le32(rep + 20 + 4 * i, took[i + 1]);
			hako_send_frame(HAKO_FRAME_READY, rep, n);
			break;
		}
		case HAKO_C_EXEC:
			if (pr.path == NULL)
				fail(0, "", "exec before lookup");
			execve(pr.path, pr.args, pr.env);
			fail(errno, "", "exec %s", pr.path);
		default:
			fail(EPROTO, "", "c-plan step kind %d", op);
		}
		if (took && step_no <= nsteps)
			took[step_no] = (uint32_t)((now_ns(CLOCK_MONOTONIC) - t0) / 1000);
	hand_over:
		if (res == 0)
			continue;
		// Go runs this step again and the rest after it. Not once a
		// seccomp filter is loaded: the Go runtime's start could be
		// what it forbids (and no plan puts a mount step after it).
		if (seccomp_loaded)
			fail(0, "", "no Go to hand the step to after the seccomp filter was loaded");
		hako_c_masker_close(&masker);
		hako_cplan_resume = (int)step_no - 1;
		hako_cplan_wire = (unsigned char *)wire;
		hako_cplan_wire_len = wire_len;
		hako_cplan_fds = plan_fds;
		hako_cplan_nfds = plan_nfds;
		hako_cplan_root = root_fd;
		return;
	}
	fail(0, "", "container process returned without exec");
}
