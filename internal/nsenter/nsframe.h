// The frame header and the frame types nsexec.c reads and writes: the C
// mirror of internal/frame (frame.go says what each carries). A test in
// this package holds these values equal to the Go ones.
#ifndef HAKO_NSFRAME_H
#define HAKO_NSFRAME_H

#include <stddef.h>
#include <stdint.h>

#define HAKO_FRAME_MAGIC 'H'
#define HAKO_FRAME_HEADER 8

#define HAKO_FRAME_READY 5

#define HAKO_FRAME_NS_CGROUP 8
#define HAKO_FRAME_NS_JOIN 9
#define HAKO_FRAME_NS_UNSHARE 10
#define HAKO_FRAME_NS_TIME_OFFSETS 11
#define HAKO_FRAME_NS_END 12
#define HAKO_FRAME_NS_MAPS 13
#define HAKO_FRAME_NS_MAPS_DONE 14
#define HAKO_FRAME_NS_PID 15
#define HAKO_FRAME_NS_ERROR 16
#define HAKO_FRAME_NS_OOM_SCORE_ADJ 17
#define HAKO_FRAME_NS_OPTIONS 18
#define HAKO_FRAME_NS_PLACE 19
#define HAKO_FRAME_NS_PLACE_DONE 20
#define HAKO_FRAME_NS_C_PLAN 21
#define HAKO_FRAME_NS_C_ERROR 22

// ns-options bits (nsenter.Opt*).
#define HAKO_NS_KEEPIDS 1
#define HAKO_NS_DISABLE_USERNS 2
#define HAKO_NS_ASSERT_USERNS_DISABLED 4
#define HAKO_NS_CPLAN 8

// The steps of an ns-c-plan (nsenter.EncodeCPlan says how each is laid
// out; cplan.c applies them).
#define HAKO_C_UMASK 1
#define HAKO_C_CLOSE_FDS 2
#define HAKO_C_CWD 3
#define HAKO_C_NO_NEW_PRIVS 4
#define HAKO_C_AFFINITY 5
#define HAKO_C_RLIMIT 6
#define HAKO_C_BOUNDING 7
#define HAKO_C_USER 8
#define HAKO_C_CAPS 9
#define HAKO_C_CWD_AS_USER 10
#define HAKO_C_LOOKUP 11
#define HAKO_C_SECCOMP 12
#define HAKO_C_READY 13
#define HAKO_C_EXEC 14
#define HAKO_C_PROPAGATION 15
#define HAKO_C_BIND_ROOT 16
#define HAKO_C_MOUNT 17
#define HAKO_C_DEV 18
#define HAKO_C_LOOPBACK 19
#define HAKO_C_HOSTNAME 20
#define HAKO_C_DOMAINNAME 21
#define HAKO_C_SYSCTL 22
#define HAKO_C_PIVOT_ROOT 23
#define HAKO_C_SETSID 24
#define HAKO_C_DIR 25
#define HAKO_C_MASK 26
#define HAKO_C_READONLY 27
#define HAKO_C_REMOUNT_RO 28
#define HAKO_C_KEYRING 29
#define HAKO_C_WAIT_START 30
#define HAKO_C_FLAG_TIMINGS 1
#define HAKO_C_MAX_PLAN (1 << 20)
// The most fds one frame carries (the kernel's SCM_MAX_FD, frame.MaxFds).
#define HAKO_MAX_FDS 253

// The timer slack of a hako command's threads (nsexec.c's set_slack), and
// the caller's, which the processes it starts get back: -1 if unchanged.
#define HAKO_TIMER_SLACK_NS 1000000
extern long hako_caller_slack;

// The constructor's setns into _HAKO_SETNS_USER's namespace: its errno,
// 0 if it succeeded or was not asked for (nsenter.SetnsUserErr).
extern int hako_setns_user_errno;

// hako_put_le32 writes v as every frame field is written: little endian.
static inline void hako_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

// Shared by nsexec.c and cplan.c.
int hako_send_frame(int type, const void *payload, size_t len);
int hako_recv_with_fds(void *buf, size_t len, int *fds, int max, int *nfds);
void hako_run_cplan(void);

// Where cplan.c handed an init's plan to Go (cplan.go's CResume): the
// step to go on at (-1: none), the plan in its Go wire form, the plan's
// fds (-1 for those a step took), the rootfs's fd once bound (-1: none).
extern int hako_cplan_resume;
extern unsigned char *hako_cplan_wire;
extern uint32_t hako_cplan_wire_len;
extern int *hako_cplan_fds;
extern int hako_cplan_nfds;
extern int hako_cplan_root;
char *hako_clean(const char *path);

#endif
