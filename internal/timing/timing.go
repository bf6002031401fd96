// Package timing is the breakdown `--debug` prints of where one create,
// run or exec spent its time: the runtime's own phases, and what the
// container process reports of its Go start and of each plan step.
//
// Both sides stamp CLOCK_REALTIME (time.Now's wall clock): the container
// process may be in a time namespace whose offsets move CLOCK_MONOTONIC,
// never the wall clock, so the two processes' stamps compare directly.
//
// Nothing here runs unless --debug asked for it: a nil *Timeline ignores
// every call, and the container process measures only when the plan says
// so (plan.Plan.Timings).
package timing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Timeline records named phases, each from the previous mark to its own.
type Timeline struct {
	start, last time.Time
	parts       []part
}

type part struct {
	name string
	d    time.Duration
}

// New starts a timeline now.
func New() *Timeline {
	now := time.Now()
	return &Timeline{start: now, last: now}
}

// Mark closes the phase that ends now.
func (t *Timeline) Mark(name string) {
	if t == nil {
		return
	}
	t.MarkAt(name, time.Now())
}

// MarkAt closes the phase that ended at when, a stamp another process
// took (the container process's Go start). A stamp before the previous
// mark gives a zero-length phase, not a negative one.
func (t *Timeline) MarkAt(name string, when time.Time) {
	if t == nil {
		return
	}
	d := when.Sub(t.last)
	if d < 0 {
		d = 0
	} else {
		t.last = when
	}
	t.parts = append(t.parts, part{name, d})
}

// String is "total 10.84 ms: config 0.70, state 0.33, ...", in ms.
func (t *Timeline) String() string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "total %s ms:", ms(t.last.Sub(t.start)))
	for i, p := range t.parts {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %s", p.name, ms(p.d))
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

// Report is what the container process measured, sent with its ready
// frame: when its Go code began, when it had decoded its plan, and how
// long each plan step up to ready took.
type Report struct {
	Main, Plan time.Time
	Steps      []time.Duration
	// GoFrom is the number of the step at which Go took over a plan
	// nsexec.c began (nsenter.CResumed), 0 if it did not: Main is then
	// Go's start, and the steps before it were not timed.
	GoFrom int
}

// maxSteps bounds a decoded report: a plan has a few hundred steps at
// most, and a corrupt count must not allocate gigabytes.
const maxSteps = 1 << 16

// Encode is the ready frame's payload: two int64 stamps (Unix ns), a
// uint32 count, then one uint32 of microseconds per step, little-endian
// as every frame header is; then GoFrom as a uint32 if it is not 0.
func (r *Report) Encode() []byte {
	b := make([]byte, 0, 20+4*len(r.Steps))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Main.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Plan.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Steps)))
	for _, d := range r.Steps {
		us := d.Microseconds()
		if us > 1<<32-1 {
			us = 1<<32 - 1
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(us))
	}
	if r.GoFrom > 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(r.GoFrom))
	}
	return b
}

// ErrMalformed is a payload Decode cannot read.
var ErrMalformed = errors.New("malformed timing report")

// Decode reads what Encode wrote.
func Decode(b []byte) (*Report, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("%w: %d bytes, want at least 20", ErrMalformed, len(b))
	}
	r := &Report{
		Main: time.Unix(0, int64(binary.LittleEndian.Uint64(b))),
		Plan: time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:]))),
	}
	n := binary.LittleEndian.Uint32(b[16:])
	if n > maxSteps || int(n)*4 != len(b)-20 && int(n)*4 != len(b)-24 {
		return nil, fmt.Errorf("%w: %d steps in %d bytes", ErrMalformed, n, len(b))
	}
	if int(n)*4 == len(b)-24 {
		r.GoFrom = int(binary.LittleEndian.Uint32(b[len(b)-4:]))
	}
	r.Steps = make([]time.Duration, n)
	for i := range r.Steps {
		r.Steps[i] = time.Duration(binary.LittleEndian.Uint32(b[20+4*i:])) * time.Microsecond
	}
	return r, nil
}

// Slowest names the n longest steps as "11 mount 0.62" (its number in the
// plan, its name from name, ms), longest first.
func (r *Report) Slowest(n int, name func(i int) string) string {
	idx := make([]int, len(r.Steps))
	for i := range idx {
		idx[i] = i
	}
	// Insertion sort: a few dozen steps, and no sort package for this.
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && r.Steps[idx[j]] > r.Steps[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	var parts []string
	for _, i := range idx[:min(n, len(idx))] {
		parts = append(parts, fmt.Sprintf("%d %s %s", i+1, name(i), ms(r.Steps[i])))
	}
	return strings.Join(parts, ", ")
}

// MarkReport adds what a container process (who) sent with its ready
// frame: until it started (running what: "Go", or "C" for nsexec.c's
// plan), until it had its plan, and until now, its steps. The steps are
// marked even when the payload cannot be read, whose error is returned.
func (t *Timeline) MarkReport(who, running string, payload []byte) (*Report, error) {
	if t == nil {
		return nil, nil
	}
	rep, err := Decode(payload)
	if err == nil {
		t.MarkAt(who+" "+running+" start", rep.Main)
		t.MarkAt(who+" plan decode", rep.Plan)
	}
	t.Mark(who + " steps")
	return rep, err
}

// Total is the sum of the steps.
func (r *Report) Total() time.Duration {
	var t time.Duration
	for _, d := range r.Steps {
		t += d
	}
	return t
}
