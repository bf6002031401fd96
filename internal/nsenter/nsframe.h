// The frame header and the frame types nsexec.c reads and writes: the C
// mirror of internal/frame (frame.go says what each carries). A test in
// this package holds these values equal to the Go ones.
#ifndef HAKO_NSFRAME_H
#define HAKO_NSFRAME_H

#define HAKO_FRAME_MAGIC 'H'
#define HAKO_FRAME_HEADER 8

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

// ns-options bits (nsenter.Opt*).
#define HAKO_NS_KEEPIDS 1
#define HAKO_NS_DISABLE_USERNS 2
#define HAKO_NS_ASSERT_USERNS_DISABLED 4

// The constructor's setns into _HAKO_SETNS_USER's namespace: its errno,
// 0 if it succeeded or was not asked for (nsenter.SetnsUserErr).
extern int hako_setns_user_errno;

#endif
