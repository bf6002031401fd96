// Package security owns the last privilege changes a container process goes
// through before execve: the capability sets (bounding, permitted,
// effective, inheritable, ambient) and PR_SET_KEEPCAPS, no_new_privs, the
// seccomp filter (built with libseccomp, loaded with seccomp(2) by this
// package), and the exec-time LSM label (AppArmor profile or SELinux
// context) written under /proc/thread-self/attr.
//
// Every one of these is per-thread state in Linux, not per-process. In a Go
// program that matters: the runtime runs goroutines on many threads, and a
// credential or filter change only lands on the thread that made the call.
// So every function here acts on the calling thread, and the caller must run
// the whole sequence, through the final execve, from one goroutine locked
// with runtime.LockOSThread. Functions that change thread state lock the
// thread themselves as well and never unlock it: if the caller forgot, the
// changed thread is then thrown away with its goroutine instead of being
// handed to an unrelated goroutine with half a container's privileges.
//
// Ordering is the caller's business and follows runc: DropBounding while
// still root, SetKeepCaps, change uid/gid, ClearKeepCaps, ApplyCaps,
// SetNoNewPrivileges, then LoadSeccomp as late as possible. Without
// no_new_privs the kernel only accepts a seccomp filter from a thread that
// holds CAP_SYS_ADMIN, so in that case the filter has to go in before the
// capabilities are dropped.
package security
