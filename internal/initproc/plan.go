// Package initproc is the Go side of a process hako starts inside a
// container: the container's first process until it execs the user's
// program (Kind "init"), or a process `exec` adds (Kind "exec").
//
// It starts after nsexec.c has joined the cgroups and namespaces, so every
// thread of this Go runtime is already inside them. It gets a Plan from the
// parent, already validated and resolved: the child never re-reads
// config.json from the bundle.
package initproc

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
)

// Kinds of plan.
const (
	KindInit = "init"
	KindExec = "exec"
)

// Plan is what the parent sends the child over the sync socket.
type Plan struct {
	Kind    string         `json:"kind"`
	Spec    *specs.Spec    `json:"spec"`
	Process *specs.Process `json:"process"`
	Rootfs  string         `json:"rootfs,omitempty"`
	// Seccomp is linux.seccomp compiled by the parent.
	Seccomp *security.Seccomp `json:"seccomp,omitempty"`
	Bundle  string            `json:"bundle,omitempty"`
	NoPivot bool              `json:"noPivot,omitempty"`
	// NoNewKeyring keeps the caller's session keyring (--no-new-keyring).
	NoNewKeyring bool                 `json:"noNewKeyring,omitempty"`
	Cgroups      []rootfs.CgroupMount `json:"cgroups,omitempty"`
	// State is the container state JSON given to createContainer hooks
	// (status "creating") and StartState the one startContainer hooks
	// get (status "created"), both made by the parent.
	State      []byte `json:"state,omitempty"`
	StartState []byte `json:"startState,omitempty"`
	// RuntimeHooks: stop before pivot_root while the parent runs prestart
	// and createRuntime hooks.
	RuntimeHooks bool `json:"runtimeHooks,omitempty"`
	// Fds in the child (-1 when absent). User fds come first (3 up to
	// 3+PreserveFds-1), so these are above them.
	FifoDirFd   int `json:"fifoDirFd"`
	ConsoleFd   int `json:"consoleFd"`
	PreserveFds int `json:"preserveFds"`
	// IDMapMounts are the indexes in Spec.Mounts of the idmapped trees
	// received before the plan, in the order of the fds.
	IDMapMounts []int `json:"idmapMounts,omitempty"`
	// BindSources are the indexes in Spec.Mounts of the bind sources the
	// parent opened (O_PATH, in the container's mount namespace), in the
	// order of the fds after the idmapped trees.
	BindSources []int `json:"bindSources,omitempty"`
}

// Message is one line of JSON on the sync socket.
type Message struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
}

// Message types.
const (
	MsgHooks     = "hooks"      // child: run prestart/createRuntime now
	MsgHooksDone = "hooks-done" // parent: done, go on
	MsgReady     = "ready"      // child: about to wait for start (init) or exec
	MsgError     = "error"      // child: failed, Error says why
	// child: running createContainer hooks, which take as long as they take
	MsgContainerHooks = "container-hooks"
)

// FdMarker is the one byte that carries the seccomp listener fd (SCM_RIGHTS)
// from the child, sent between two messages the moment the filter is
// loaded. The parent reads the socket with recvmsg only, so the fd cannot be
// dropped by a plain read, and takes the byte out of the JSON stream.
const FdMarker = byte(0)
