// cinit.c is the mount phase of a container init's plan, applied by
// cplan.c without the Go runtime (nsenter/cplan.go says why): the rootfs
// bind, the mounts, /dev, the loopback, the root change, the masked and
// read-only paths. Each function does what its Go handler in
// internal/linux/rootfs or internal/initproc does when it succeeds, syscall
// for syscall, resolving every path from the rootfs's fd with the same
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) lookup the Go side makes
// first, and the same checks (/proc and /sys as ordinary directories,
// /dev/null as the null device before a mask binds it).
//
// None of them reports an error. A step that fails, or meets anything its
// fast path does not cover (a path the lookup cannot resolve, a dangling
// symlink where a directory must be made), returns -1, and cplan.c hands
// the process to Go at that step: the Go handler runs it again and either
// succeeds through its slower path (pathrs-lite's) or fails with its own
// words, the kernel's error explained (internal/explain) from inside the
// container's namespaces. So there is one text for each failure, the Go
// side's, and a C step that fails midway only leaves what running it again
// tolerates (a directory made, a mount point created).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cinit.h"

#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif

static int openat2_(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

// in_root is rootfs.inRoot: one openat2 that cannot leave root.
static int in_root(int root, const char *path, uint64_t flags)
{
	return openat2_(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

static char *dir_of(const char *p)
{
	char *d = strdup(p);
	if (d == NULL)
		return NULL;
	char *s = strrchr(d, '/');
	if (s == d)
		d[1] = '\0';
	else if (s != NULL)
		*s = '\0';
	return d;
}

static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s != NULL ? s + 1 : p;
}

// mkdir_in_root is rootfs.mkdirInRoot for the paths hako makes: the
// lookup, or else the parent made (the same way) and the last component
// created in it and opened without following a symlink there. Anything
// else (a dangling symlink, a file in the way) is pathrs-lite's to judge.
// path is clean and absolute.
static int mkdir_in_root(int root, const char *path, mode_t mode)
{
	int fd = in_root(root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || strcmp(path, "/") == 0)
		return fd;
	char *dir = dir_of(path);
	if (dir == NULL || strcmp(dir, path) == 0) {
		free(dir);
		return -1;
	}
	int parent = mkdir_in_root(root, dir, mode);
	free(dir);
	if (parent < 0)
		return -1;
	const char *base = base_of(path);
	if (mkdirat(parent, base, mode) < 0 && errno != EEXIST) {
		close(parent);
		return -1;
	}
	fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(parent);
	return fd;
}

int hako_c_propagation(const char *path, unsigned long flags)
{
	return mount("", path, NULL, flags, NULL);
}

int hako_c_bind_root(const char *path, int *root)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	*root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return *root < 0 ? -1 : 0;
}

static int mount_setattr_(int fd, const char *path, unsigned int flags, uint64_t set, uint64_t clr)
{
	struct mount_attr a = {.attr_set = set, .attr_clr = clr};
	return (int)syscall(SYS_mount_setattr, fd, path, flags, &a, sizeof(a));
}

static int set_attrs(int tree, const struct hako_cmount *m)
{
	if ((m->rattr || m->rattrclr) && mount_setattr_(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, m->rattr, m->rattrclr) < 0)
		return -1;
	if ((m->attr || m->attrclr) && mount_setattr_(tree, "", AT_EMPTY_PATH, m->attr, m->attrclr) < 0)
		return -1;
	return 0;
}

static int move_mount_(int from, int to)
{
	return (int)syscall(SYS_move_mount, from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int open_tree_(int dirfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

// attach is mounter.attach: the propagation, which the kernel only takes
// on an attached mount, through the destination opened again.
static int attach(int root, int tree, int dst, const char *dest, uint64_t prop)
{
	if (move_mount_(tree, dst) < 0)
		return -1;
	if (prop == 0)
		return 0;
	int top = in_root(root, dest, O_PATH | O_CLOEXEC);
	if (top < 0)
		return -1;
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", top);
	int r = mount("", p, NULL, (unsigned long)prop, NULL);
	close(top);
	return r;
}

static int is_label(const char *k, size_t n)
{
	static const char *const labels[] = {"context", "fscontext", "defcontext", "rootcontext"};
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (strlen(labels[i]) == n && strncmp(k, labels[i], n) == 0)
			return 1;
	return 0;
}

// new_fs is rootfs.newFS: a detached mount of a new filesystem instance.
static int new_fs(const char *type, const char *source, const struct hako_cmount *m, char *const *data, uint32_t ndata, int drop_labels)
{
	int fsfd = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return -1;
	int ok = source[0] == '\0' || syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", source, 0) == 0;
	for (uint32_t i = 0; ok && i < m->nsbflags; i++)
		ok = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, m->sbflags[i], NULL, 0) == 0;
	for (uint32_t i = 0; ok && i < ndata; i++) {
		char *eq = strchr(data[i], '=');
		size_t klen = eq != NULL ? (size_t)(eq - data[i]) : strlen(data[i]);
		if (drop_labels && is_label(data[i], klen))
			continue;
		if (eq == NULL) {
			ok = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, data[i], NULL, 0) == 0;
			continue;
		}
		*eq = '\0';
		ok = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, data[i], eq + 1, 0) == 0;
		*eq = '=';
	}
	ok = ok && syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0;
	int mfd = ok ? (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0) : -1;
	close(fsfd);
	return mfd;
}

// target is mounter.target: the mount point, made if missing, a directory
// or (for a bind of a file) a file. /proc and /sys must be ordinary
// directories (CVE-2019-19921): anything else goes to Go, which refuses it.
static int target(int root, const char *dest, int dir)
{
	if (strcmp(dest, "/proc") == 0 || strcmp(dest, "/sys") == 0) {
		struct stat st;
		if (fstatat(root, dest + 1, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
			return -1;
	}
	if (dir)
		return mkdir_in_root(root, dest, 0755);
	int fd = in_root(root, dest, O_PATH | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	char *d = dir_of(dest);
	if (d == NULL)
		return -1;
	int parent = mkdir_in_root(root, d, 0755);
	free(d);
	if (parent < 0)
		return -1;
	int f = openat(parent, base_of(dest), O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
	int e = errno;
	close(parent);
	if (f < 0 && e != EEXIST)
		return -1;
	if (f >= 0)
		close(f);
	return in_root(root, dest, O_PATH | O_CLOEXEC);
}

// bind_tree is mounter.bindTree; it closes tree.
static int bind_tree(int root, int tree, const struct hako_cmount *m)
{
	struct stat st;
	int r = -1, dst = -1;
	if (fstat(tree, &st) < 0)
		goto out;
	dst = target(root, m->dest, S_ISDIR(st.st_mode));
	if (dst < 0 || set_attrs(tree, m) < 0)
		goto out;
	r = attach(root, tree, dst, m->dest, m->prop);
out:
	if (dst >= 0)
		close(dst);
	close(tree);
	return r;
}

static int bind_mount(int root, const struct hako_cmount *m, int fd)
{
	unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m->recursive ? AT_RECURSIVE : 0);
	int tree;
	if (fd >= 0) {
		tree = open_tree_(fd, "", flags | AT_EMPTY_PATH);
		close(fd);
	} else {
		tree = open_tree_(AT_FDCWD, m->source, flags);
	}
	if (tree < 0)
		return -1;
	return bind_tree(root, tree, m);
}

static int selinux_enabled(void)
{
	struct stat st;
	return stat("/sys/fs/selinux/enforce", &st) == 0;
}

static int fs(int root, const struct hako_cmount *m)
{
	// Never over the container's / itself (checkTarget).
	if (strcmp(m->dest, "/") == 0)
		return -1;
	int dst = target(root, m->dest, 1);
	if (dst < 0)
		return -1;
	// Without SELinux a context= option can only fail; crun drops it too.
	int tree = new_fs(m->type, m->source, m, m->data, m->ndata, !selinux_enabled());
	int r = tree < 0 || set_attrs(tree, m) < 0 ? -1 : attach(root, tree, dst, m->dest, m->prop);
	if (tree >= 0)
		close(tree);
	close(dst);
	return r;
}

// bind_cgroup is rootfs.bindCgroup: the host's cgroup directory at cg->dir
// in hako's own tmpfs, made and opened relative to it.
static int bind_cgroup(int dir, const struct hako_ccgroup *cg, const struct hako_cmount *bo)
{
	if (mkdirat(dir, cg->dir, 0755) < 0)
		return -1;
	int t = openat2_(dir, cg->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
	if (t < 0)
		return -1;
	int tree = open_tree_(AT_FDCWD, cg->host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	int r = tree < 0 || set_attrs(tree, bo) < 0 || move_mount_(tree, t) < 0 ? -1 : 0;
	if (tree >= 0)
		close(tree);
	close(t);
	for (uint32_t i = 0; r == 0 && i < cg->nsymlinks; i++)
		if (symlinkat(cg->dir, dir, cg->symlinks[i]) < 0 && errno != EEXIST)
			r = -1;
	return r;
}

// cgroup_v1 is mounter.cgroup on a v1 or hybrid host: a tmpfs holding a
// bind of the container's own directory of each hierarchy.
static int cgroup_v1(int root, const struct hako_cmount *m)
{
	int dst = target(root, m->dest, 1);
	if (dst < 0)
		return -1;
	struct hako_cmount t = *m;
	t.attr &= ~(uint64_t)MOUNT_ATTR_RDONLY;
	char mode[] = "mode=755";
	char *data[] = {mode};
	int r = -1;
	int tree = new_fs("tmpfs", "tmpfs", &t, data, 1, 1);
	if (tree < 0 || set_attrs(tree, &t) < 0 || attach(root, tree, dst, m->dest, 0) < 0)
		goto out;
	struct hako_cmount bo = *m;
	bo.prop = 0;
	for (uint32_t i = 0; i < m->ncgroups; i++)
		if (bind_cgroup(tree, &m->cgroups[i], &bo) < 0)
			goto out;
	if ((m->attr & MOUNT_ATTR_RDONLY) && mount_setattr_(tree, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) < 0)
		goto out;
	r = 0;
out:
	if (tree >= 0)
		close(tree);
	close(dst);
	return r;
}

int hako_c_mount(int root, const struct hako_cmount *m, int fd)
{
	switch (m->kind) {
	case HAKO_CMOUNT_BIND:
		return bind_mount(root, m, fd);
	case HAKO_CMOUNT_IDMAP:
		if (fd < 0)
			return -1;
		return bind_tree(root, fd, m);
	case HAKO_CMOUNT_CGROUP_V1:
		if (fd >= 0)
			close(fd);
		return cgroup_v1(root, m);
	default:
		if (fd >= 0)
			close(fd);
		return fs(root, m);
	}
}

// make_device is rootfs.makeDevice: the node p in its directory parent.
static int make_device(int root, int parent, const struct hako_cdev *d, int in_userns)
{
	const char *base = base_of(d->path);
	if (in_userns) {
		// mknod needs CAP_MKNOD in the initial user namespace: the
		// host's node is bound instead, as runc does.
		int f = openat(parent, base, O_CREAT | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
		if (f < 0)
			return -1;
		close(f);
		int dst = in_root(root, d->path, O_PATH | O_CLOEXEC);
		if (dst < 0)
			return -1;
		int tree = open_tree_(AT_FDCWD, d->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		int r = tree < 0 ? -1 : move_mount_(tree, dst);
		if (tree >= 0)
			close(tree);
		close(dst);
		return r;
	}
	if (mknodat(parent, base, d->type | d->mode, (dev_t)d->rdev) < 0) {
		// An image's own node (or a symlink in its place) is replaced,
		// never followed.
		if (errno != EEXIST || unlinkat(parent, base, 0) < 0 || mknodat(parent, base, d->type | d->mode, (dev_t)d->rdev) < 0)
			return -1;
	}
	return fchownat(parent, base, (uid_t)d->uid, (gid_t)d->gid, AT_SYMLINK_NOFOLLOW);
}

int hako_c_dev(int root, const struct hako_cdev *devs, uint32_t n, int in_userns)
{
	// Each directory is resolved (and made) once, as setupDev does.
	char *last_dir = NULL;
	int parent = -1, r = -1;
	for (uint32_t i = 0; i < n; i++) {
		char *dir = dir_of(devs[i].path);
		if (dir == NULL)
			goto out;
		if (last_dir == NULL || strcmp(dir, last_dir) != 0) {
			if (parent >= 0)
				close(parent);
			free(last_dir);
			last_dir = dir;
			parent = mkdir_in_root(root, dir, 0755);
			if (parent < 0)
				goto out;
		} else {
			free(dir);
		}
		if (make_device(root, parent, &devs[i], in_userns) < 0)
			goto out;
	}
	int dev = in_root(root, "/dev", O_PATH | O_CLOEXEC);
	if (dev < 0)
		goto out;
	const char *links[][2] = {
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}, {"pts/ptmx", "ptmx"},
	};
	struct stat st;
	int kcore = stat("/proc/kcore", &st) == 0;
	// Every devpts instance has its own ptmx; /dev/ptmx must be the one
	// of the container's instance, not the host's node.
	(void)unlinkat(dev, "ptmx", 0);
	r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(links) / sizeof(links[0]); i++) {
		if (strcmp(links[i][1], "core") == 0 && !kcore)
			continue;
		if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
			r = -1;
	}
	close(dev);
out:
	if (parent >= 0)
		close(parent);
	free(last_dir);
	return r;
}

int hako_c_loopback(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r;
}

int hako_c_sysctl(const char *path, const char *value)
{
	// os.WriteFile's open flags.
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	size_t n = strlen(value);
	ssize_t w = write(fd, value, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

// hako_c_pivot is rootfs.pivotRoot: pivot_root(".", "."), the old root
// made rslave through a cwd on it (so that the container's shared mounts
// keep their host peers) and detached.
int hako_c_pivot(const char *path)
{
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		return -1;
	int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	int r = -1;
	if (fd < 0)
		goto out;
	if (fchdir(fd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		goto out;
	if (fchdir(oldroot) < 0 || mount("", ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 || umount2(".", MNT_DETACH) < 0)
		goto out;
	r = chdir("/");
out:
	if (fd >= 0)
		close(fd);
	close(oldroot);
	return r;
}

// hako_c_dir: with the rootfs still open, Root.Mkdir; after the root
// change, os.MkdirAll in the container's own root.
int hako_c_dir(int root, const char *path, mode_t mode)
{
	if (root >= 0) {
		int fd = mkdir_in_root(root, path, mode);
		if (fd < 0)
			return -1;
		close(fd);
		return 0;
	}
	struct stat st;
	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -1;
	if (errno != ENOENT)
		return -1;
	char *dir = dir_of(path);
	if (dir == NULL)
		return -1;
	int r = strcmp(dir, path) == 0 ? -1 : hako_c_dir(-1, dir, mode);
	free(dir);
	if (r < 0)
		return -1;
	if (mkdir(path, mode) < 0 && (errno != EEXIST || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)))
		return -1;
	return 0;
}

// open_contained is rootfs.openContained, after the root change.
static int open_contained(const char *p)
{
	return openat2_(AT_FDCWD, p, O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

void hako_c_masker_close(struct hako_cmasker *m)
{
	if (m->null >= 0)
		close(m->null);
	if (m->tmpfs >= 0)
		close(m->tmpfs);
	for (uint32_t i = 0; i < m->nseen; i++)
		free(m->seen[i]);
	free(m->seen);
	memset(m, 0, sizeof(*m));
	m->null = m->tmpfs = -1;
}

// hako_c_mask is Masker.Mask: a directory gets a clone of one shared
// empty read-only tmpfs, anything else the container's /dev/null, which
// must be the null device (CVE-2025-31133). A path listed twice is masked
// once.
int hako_c_mask(struct hako_cmasker *m, const char *path, const char *clean)
{
	for (uint32_t i = 0; i < m->nseen; i++)
		if (strcmp(m->seen[i], clean) == 0)
			return 0;
	char **seen = realloc(m->seen, (m->nseen + 1) * sizeof(char *));
	if (seen == NULL)
		return -1;
	m->seen = seen;
	if ((m->seen[m->nseen] = strdup(clean)) == NULL)
		return -1;
	m->nseen++;
	int fd = open_contained(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	int src = -1, r = -1;
	if (fstat(fd, &st) < 0)
		goto out;
	if (S_ISDIR(st.st_mode)) {
		if (m->tmpfs < 0) {
			struct hako_cmount none = {0};
			char size[] = "size=0", mode[] = "mode=755";
			char *data[] = {size, mode};
			m->tmpfs = new_fs("tmpfs", "tmpfs", &none, data, 2, 1);
			if (m->tmpfs < 0 || mount_setattr_(m->tmpfs, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) < 0)
				goto out;
		}
		src = m->tmpfs;
	} else {
		if (m->null < 0) {
			m->null = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
			struct stat ns;
			if (m->null < 0 || fstat(m->null, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
				goto out;
		}
		src = m->null;
	}
	int tree = open_tree_(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0 && errno == EINVAL && src == m->tmpfs && !m->attached) {
		// Kernels before 6.15 do not clone a detached mount: the
		// original goes to the first directory, later ones get clones.
		m->attached = 1;
		r = move_mount_(src, fd);
		goto out;
	}
	if (tree < 0)
		goto out;
	r = move_mount_(tree, fd);
	close(tree);
out:
	close(fd);
	return r;
}

// hako_c_readonly is rootfs.readonlyPath: a read-only clone of the tree
// over itself.
int hako_c_readonly(const char *path)
{
	int fd = open_contained(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	int tree = open_tree_(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	int r = tree < 0 || mount_setattr_(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0) < 0 ? -1 : move_mount_(tree, fd);
	if (tree >= 0)
		close(tree);
	close(fd);
	return r;
}

int hako_c_remount_ro(const char *path)
{
	if (strcmp(path, "/") == 0)
		return mount_setattr_(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY, 0);
	int fd = open_contained(path);
	if (fd < 0)
		return -1;
	int r = mount_setattr_(fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0);
	close(fd);
	return r;
}

void hako_c_keyring(void)
{
	// A fresh session keyring; a refusal is ignored, as runc does.
	(void)syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "_ses");
}
