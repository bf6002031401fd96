// Package frame is the one framing on the socket between hako and a
// container process, from its first instruction to its exec: every message,
// whichever way it goes, is a frame of a type, a payload and the fds
// attached to it. The namespace request nsexec.c reads before the Go
// runtime starts, the plan, the hook handshakes, ready, errors and the
// seccomp listener fd all travel as frames, so a reader never has to guess
// where a message ends or which bytes carried an fd.
//
// On the wire a frame is an 8-byte header and its payload:
//
//	byte 0     Magic ('H'), so that a stray byte is an error, not a frame
//	byte 1     Type
//	bytes 2-3  number of fds, little endian
//	bytes 4-7  payload length, little endian
//
// The fds ride (SCM_RIGHTS) on the sendmsg that carries the header. On a
// stream socket the kernel hands them to whichever recvmsg consumes that
// first byte, possibly together with earlier bytes, never after them; so a
// reader that queues every fd it receives, in order, and gives a frame the
// first n of the queue once its header is parsed, pairs fds and frames
// exactly.
//
// nsexec.c speaks it in C (internal/nsenter/nsframe.h mirrors the types
// and the header; a test there holds the two equal). It reads a frame's
// header and then exactly its payload, so it never consumes a byte of the
// frames meant for the Go code that runs after it.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type says what a frame carries.
type Type uint8

// Frame types. The direction is in the comment: parent (hako) or child
// (the container process).
const (
	TypePlan           Type = iota + 1 // parent: the compiled plan (plan.Encode's form); fds: sources the plan's steps name
	TypeHooks                          // child: run prestart and createRuntime hooks now
	TypeHooksDone                      // parent: they ran, go on
	TypeContainerHooks                 // child: running createContainer hooks, which take as long as they take
	TypeReady                          // child: everything that can fail has; waiting for start or exec
	TypeError                          // child: failed; payload says why
	TypeSeccompFd                      // child: one fd, the seccomp listener

	// Read and written by nsexec.c, before the Go runtime starts in the
	// child (internal/nsenter): the namespace request, then its answers.
	TypeNsCgroup      // parent: one fd, a v1 cgroup's tasks file open for writing; payload: its path
	TypeNsJoin        // parent: one fd, a namespace file to setns into; payload: its path
	TypeNsUnshare     // parent: CLONE_NEW* flags of new namespaces, 8 bytes little endian
	TypeNsTimeOffsets // parent: the text for /proc/self/timens_offsets
	TypeNsEnd         // parent: the request is complete
	TypeNsMaps        // child: my user namespace is new; write its id maps
	TypeNsMapsDone    // parent: they are written
	TypeNsPid         // child: the pid of the process that goes on into Go, 4 bytes little endian
	TypeNsError       // child: a step failed; errno (4 bytes little endian), then "what\0arg\0message"
	TypeNsOOMScoreAdj // parent: the value for /proc/self/oom_score_adj, in decimal
	TypeNsOptions     // parent: nsenter.Opt* bits, 4 bytes little endian (bwrap's user namespace options)
	TypeNsPlace       // parent: stop after the request until placed in the cgroup; child: stopped, place me now
	TypeNsPlaceDone   // parent: placed, go on
	TypeNsCPlan       // parent: an exec's plan for nsexec.c to apply itself (nsenter.EncodeCPlan), instead of a plan frame
	TypeNsCError      // child: a step of the C plan failed; errno (4 bytes little endian), then "message\0suffix"
)

var typeNames = map[Type]string{
	TypePlan: "plan", TypeHooks: "hooks", TypeHooksDone: "hooks-done",
	TypeContainerHooks: "container-hooks", TypeReady: "ready", TypeError: "error",
	TypeSeccompFd: "seccomp-fd",
	TypeNsCgroup:  "ns-cgroup", TypeNsJoin: "ns-join", TypeNsUnshare: "ns-unshare",
	TypeNsTimeOffsets: "ns-time-offsets", TypeNsEnd: "ns-end", TypeNsMaps: "ns-maps",
	TypeNsMapsDone: "ns-maps-done", TypeNsPid: "ns-pid", TypeNsError: "ns-error",
	TypeNsOOMScoreAdj: "ns-oom-score-adj", TypeNsOptions: "ns-options",
	TypeNsPlace: "ns-place", TypeNsPlaceDone: "ns-place-done",
	TypeNsCPlan: "ns-c-plan", TypeNsCError: "ns-c-error",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Layout constants.
const (
	Magic      = 'H'
	HeaderSize = 8
	// MaxFds is the kernel's SCM_MAX_FD: the most fds one sendmsg carries.
	MaxFds = 253
	// MaxPayload bounds what a reader allocates for a frame: a plan is
	// kilobytes; a header claiming more is a corrupt stream.
	MaxPayload = 16 << 20
)

// ErrCorrupt is wrapped by errors for bytes that are not a valid frame.
var ErrCorrupt = errors.New("corrupt frame")

// Frame is one message.
type Frame struct {
	Type    Type
	Payload []byte
	// Fds are owned by whoever holds the frame.
	Fds []int
}

// Header renders the 8-byte header of a frame.
func Header(t Type, payloadLen, nfds int) [HeaderSize]byte {
	var h [HeaderSize]byte
	h[0] = Magic
	h[1] = byte(t)
	binary.LittleEndian.PutUint16(h[2:4], uint16(nfds))
	binary.LittleEndian.PutUint32(h[4:8], uint32(payloadLen))
	return h
}

// ParseHeader checks a header and returns what it announces.
func ParseHeader(h []byte) (t Type, payloadLen, nfds int, err error) {
	if len(h) < HeaderSize {
		return 0, 0, 0, fmt.Errorf("%w: header of %d bytes", ErrCorrupt, len(h))
	}
	if h[0] != Magic {
		return 0, 0, 0, fmt.Errorf("%w: byte %#x where a frame should start", ErrCorrupt, h[0])
	}
	t = Type(h[1])
	if _, ok := typeNames[t]; !ok {
		return 0, 0, 0, fmt.Errorf("%w: unknown type %d", ErrCorrupt, h[1])
	}
	nfds = int(binary.LittleEndian.Uint16(h[2:4]))
	payloadLen = int(binary.LittleEndian.Uint32(h[4:8]))
	if nfds > MaxFds {
		return 0, 0, 0, fmt.Errorf("%w: %s frame with %d fds (at most %d)", ErrCorrupt, t, nfds, MaxFds)
	}
	if payloadLen > MaxPayload {
		return 0, 0, 0, fmt.Errorf("%w: %s frame of %d bytes (at most %d)", ErrCorrupt, t, payloadLen, MaxPayload)
	}
	return t, payloadLen, nfds, nil
}

// Encode renders a frame's bytes; its fds go with the sendmsg that carries
// the first byte.
func Encode(f *Frame) ([]byte, error) {
	if len(f.Fds) > MaxFds {
		return nil, fmt.Errorf("%s frame: %d fds (at most %d)", f.Type, len(f.Fds), MaxFds)
	}
	if len(f.Payload) > MaxPayload {
		return nil, fmt.Errorf("%s frame: %d bytes (at most %d)", f.Type, len(f.Payload), MaxPayload)
	}
	h := Header(f.Type, len(f.Payload), len(f.Fds))
	return append(h[:], f.Payload...), nil
}

// FdSource hands out, in arrival order, the fds a transport received.
type FdSource interface {
	TakeFds(n int) ([]int, error)
}

// Reader decodes frames from a byte stream whose fds a FdSource queues.
type Reader struct {
	r   io.Reader
	fds FdSource
}

// NewReader reads frames from r; fds come from src (nil: none expected).
func NewReader(r io.Reader, src FdSource) *Reader { return &Reader{r: r, fds: src} }

// Next reads one frame. io.EOF means the stream ended between frames;
// a stream that ends inside one is io.ErrUnexpectedEOF.
func (r *Reader) Next() (*Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return nil, err
	}
	t, n, nfds, err := ParseHeader(h[:])
	if err != nil {
		return nil, err
	}
	f := &Frame{Type: t}
	if nfds > 0 {
		if r.fds == nil {
			return nil, fmt.Errorf("%w: %s frame announces %d fds on a stream that carries none", ErrCorrupt, t, nfds)
		}
		if f.Fds, err = r.fds.TakeFds(nfds); err != nil {
			return nil, fmt.Errorf("%s frame: %w", t, err)
		}
	}
	if n > 0 {
		f.Payload = make([]byte, n)
		if _, err := io.ReadFull(r.r, f.Payload); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return f, fmt.Errorf("%s frame payload: %w", t, err)
		}
	}
	return f, nil
}

// Queue is a FIFO of received fds, the FdSource of a transport that
// receives with recvmsg.
type Queue struct{ fds []int }

// Push appends fds in the order they arrived.
func (q *Queue) Push(fds ...int) { q.fds = append(q.fds, fds...) }

// TakeFds removes the first n fds.
func (q *Queue) TakeFds(n int) ([]int, error) {
	if n > len(q.fds) {
		return nil, fmt.Errorf("%w: %d fds announced, %d received", ErrCorrupt, n, len(q.fds))
	}
	out := append([]int(nil), q.fds[:n]...)
	q.fds = q.fds[n:]
	return out, nil
}

// Len is how many fds wait.
func (q *Queue) Len() int { return len(q.fds) }

// Drain returns and forgets every queued fd, for the caller to close.
func (q *Queue) Drain() []int {
	out := q.fds
	q.fds = nil
	return out
}
