// The mount phase of an init's plan in C (cinit.c), called by cplan.c.
// Every function returns 0, or -1 for "let Go run this step" (cinit.c's
// header says why nothing here reports an error itself).
#ifndef HAKO_CINIT_H
#define HAKO_CINIT_H

#include <stdint.h>
#include <sys/types.h>

// struct hako_cmount's kind (nsenter.EncodeCPlan's mount kinds).
#define HAKO_CMOUNT_FS 0
#define HAKO_CMOUNT_BIND 1
#define HAKO_CMOUNT_IDMAP 2
#define HAKO_CMOUNT_CGROUP_V1 3

struct hako_ccgroup {
	char *dir, *host;
	char **symlinks;
	uint32_t nsymlinks;
};

// One rootfs.Mount with its Options, the destination cleaned.
struct hako_cmount {
	int kind;
	char *type, *source, *dest;
	int recursive;
	uint64_t attr, attrclr, rattr, rattrclr, prop;
	char **sbflags, **data;
	uint32_t nsbflags, ndata;
	struct hako_ccgroup *cgroups;
	uint32_t ncgroups;
};

// One device node: the path cleaned, the type as S_IF* bits, the defaults
// filled in (rootfs.makeDevice's).
struct hako_cdev {
	char *path;
	uint32_t type, mode, uid, gid;
	uint64_t rdev;
};

// rootfs.Masker: what a run of masks shares.
struct hako_cmasker {
	int null, tmpfs, attached;
	char **seen;
	uint32_t nseen;
};

int hako_c_propagation(const char *path, unsigned long flags);
int hako_c_bind_root(const char *path, int *root);
int hako_c_mount(int root, const struct hako_cmount *m, int fd);
int hako_c_dev(int root, const struct hako_cdev *devs, uint32_t n, int in_userns);
int hako_c_loopback(void);
int hako_c_sysctl(const char *path, const char *value);
int hako_c_pivot(const char *path);
int hako_c_dir(int root, const char *path, mode_t mode);
int hako_c_mask(struct hako_cmasker *m, const char *path, const char *clean);
void hako_c_masker_close(struct hako_cmasker *m);
int hako_c_readonly(const char *path);
int hako_c_remount_ro(const char *path);
void hako_c_keyring(void);

#endif
