package plan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
)

// The plan's wire form, between the parent and the container process.
//
// It was JSON. encoding/json builds, once per process, a field cache for
// every type it meets, and a plan reaches into a dozen runtime-spec
// types: the container process spent ~0.4 ms of its ~0.5 ms decode of a
// 5 KB plan on that cache, in a process that decodes one plan and then
// execs, and the parent paid the same on its side to encode it. This form
// is written and read field by field, in the order the types declare
// them: varints for numbers, a length before every string, slice and byte
// string, a presence byte before every pointer. A slice's length is
// stored plus one, so that nil and empty stay apart as the parent made
// them. TestWireRoundTrip fills every field of every type here by
// reflection and fails when a type gains a field this file does not
// carry; FuzzDecode holds the decoder to errors, never a panic.
//
// Nothing here is stored: both ends are the same binary (the container
// process is the runtime re-executed), so the form needs no versioning
// beyond the magic that catches a frame of another kind.

var wireMagic = []byte("hkp1")

// ErrWire is wrapped by every decoding error.
var ErrWire = errors.New("malformed plan")

// Encode writes p in the wire form.
func Encode(p *Plan) []byte {
	w := &wenc{b: make([]byte, 0, 4096)}
	w.b = append(w.b, wireMagic...)
	w.str(p.Kind)
	w.n(len(p.Steps), p.Steps == nil)
	for i := range p.Steps {
		w.step(&p.Steps[i])
	}
	w.int(int64(p.Fds.FifoDir))
	w.int(int64(p.Fds.Console))
	w.int(int64(p.Fds.Receipt))
	w.bool(p.Timings)
	return w.b
}

// Decode reads a plan Encode wrote.
func Decode(b []byte) (*Plan, error) {
	if len(b) < len(wireMagic) || string(b[:len(wireMagic)]) != string(wireMagic) {
		return nil, fmt.Errorf("%w: no plan header", ErrWire)
	}
	r := &wdec{b: b, off: len(wireMagic)}
	p := &Plan{Kind: r.str()}
	if n := r.count(1); n >= 0 {
		p.Steps = make([]Step, n)
		for i := range p.Steps {
			r.step(&p.Steps[i])
		}
	}
	p.Fds.FifoDir = r.intv()
	p.Fds.Console = r.intv()
	p.Fds.Receipt = r.intv()
	p.Timings = r.bool()
	if r.err == nil && r.off != len(b) {
		r.fail("%d bytes after the plan", len(b)-r.off)
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

type wenc struct{ b []byte }

func (w *wenc) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wenc) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *wenc) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}
func (w *wenc) str(s string) { w.uint(uint64(len(s))); w.b = append(w.b, s...) }

// n writes a slice's length, nil as 0.
func (w *wenc) n(l int, isNil bool) {
	if isNil {
		w.uint(0)
	} else {
		w.uint(uint64(l) + 1)
	}
}
func (w *wenc) bytes(b []byte) { w.n(len(b), b == nil); w.b = append(w.b, b...) }
func (w *wenc) strs(ss []string) {
	w.n(len(ss), ss == nil)
	for _, s := range ss {
		w.str(s)
	}
}
func (w *wenc) u32p(p *uint32) {
	w.bool(p != nil)
	if p != nil {
		w.uint(uint64(*p))
	}
}

func (w *wenc) step(s *Step) {
	w.str(string(s.Op))
	w.str(s.Path)
	w.str(s.Value)
	w.uint(uint64(s.Mode))
	w.uint(s.Flags)
	w.bool(s.ReadOnly)
	w.bool(s.InUserNS)
	w.int(int64(s.FD))
	w.bytes(s.Data)
	w.n(len(s.Cgroups), s.Cgroups == nil)
	for _, c := range s.Cgroups {
		w.str(c.Dir)
		w.str(c.HostPath)
		w.strs(c.Symlinks)
	}
	w.bool(s.Mount != nil)
	if m := s.Mount; m != nil {
		w.mount(m)
	}
	w.n(len(s.Devices), s.Devices == nil)
	for i := range s.Devices {
		d := &s.Devices[i]
		w.str(d.Path)
		w.str(d.Type)
		w.int(d.Major)
		w.int(d.Minor)
		w.bool(d.FileMode != nil)
		if d.FileMode != nil {
			w.uint(uint64(*d.FileMode))
		}
		w.u32p(d.UID)
		w.u32p(d.GID)
	}
	w.n(len(s.Hooks), s.Hooks == nil)
	for i := range s.Hooks {
		h := &s.Hooks[i]
		w.str(h.Path)
		w.strs(h.Args)
		w.strs(h.Env)
		w.bool(h.Timeout != nil)
		if h.Timeout != nil {
			w.int(int64(*h.Timeout))
		}
	}
	w.bytes(s.State)
	w.uint(uint64(s.UID))
	w.bool(s.ConsoleSize != nil)
	if c := s.ConsoleSize; c != nil {
		w.uint(uint64(c.Height))
		w.uint(uint64(c.Width))
	}
	w.bool(s.Rlimit != nil)
	if r := s.Rlimit; r != nil {
		w.str(r.Name)
		w.int(int64(r.Resource))
		w.uint(r.Soft)
		w.uint(r.Hard)
	}
	w.bool(s.Seccomp != nil)
	if f := s.Seccomp; f != nil {
		w.uint(uint64(f.Flags()))
		w.bytes(f.AppendBinary(nil))
	}
	w.bool(s.Caps != nil)
	if c := s.Caps; c != nil {
		w.strs(c.Bounding)
		w.strs(c.Effective)
		w.strs(c.Inheritable)
		w.strs(c.Permitted)
		w.strs(c.Ambient)
	}
	w.bool(s.User != nil)
	if u := s.User; u != nil {
		w.uint(uint64(u.UID))
		w.uint(uint64(u.GID))
		w.u32p(u.Umask)
		w.n(len(u.AdditionalGids), u.AdditionalGids == nil)
		for _, g := range u.AdditionalGids {
			w.uint(uint64(g))
		}
		w.str(u.Username)
	}
	w.bool(s.Exec != nil)
	if e := s.Exec; e != nil {
		w.strs(e.Args)
		w.str(e.Argv0)
		w.strs(e.Env)
		w.uint(uint64(e.UID))
		w.bool(e.Exact)
		w.bool(e.Reaper)
		w.bool(e.ForwardSignals)
	}
	w.bool(s.Sched != nil)
	if a := s.Sched; a != nil {
		w.uint(uint64(a.Size))
		w.uint(uint64(a.Policy))
		w.uint(a.Flags)
		w.int(int64(a.Nice))
		w.uint(uint64(a.Priority))
		w.uint(a.Runtime)
		w.uint(a.Deadline)
		w.uint(a.Period)
		w.uint(uint64(a.Util_min))
		w.uint(uint64(a.Util_max))
	}
	w.strs(s.Layers)
}

func (w *wenc) mount(m *rootfs.Mount) {
	w.str(m.Kind)
	w.str(m.Type)
	w.str(m.Source)
	w.str(m.Destination)
	o := &m.Options
	w.bool(o.Bind)
	w.bool(o.Recursive)
	w.uint(o.Attr)
	w.uint(o.AttrClr)
	w.uint(o.RAttr)
	w.uint(o.RAttrClr)
	w.uint(uint64(o.Propagation))
	w.strs(o.SbFlags)
	w.strs(o.Data)
	w.bool(o.IDMap)
	w.bool(o.RIDMap)
	w.bool(o.CopyUp)
	w.int(m.Size)
	w.u32p(m.Perms)
	w.idmaps(m.UIDMappings)
	w.idmaps(m.GIDMappings)
}

func (w *wenc) idmaps(ms []specs.LinuxIDMapping) {
	w.n(len(ms), ms == nil)
	for _, m := range ms {
		w.uint(uint64(m.ContainerID))
		w.uint(uint64(m.HostID))
		w.uint(uint64(m.Size))
	}
}

// wdec reads the wire form; the first error sticks, and every read after
// it returns zero values, so that the step readers stay straight-line.
type wdec struct {
	b   []byte
	off int
	err error
}

func (r *wdec) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d of %d: %s", ErrWire, r.off, len(r.b), fmt.Sprintf(format, args...))
	}
}

func (r *wdec) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.off += n
	return v
}

func (r *wdec) int64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.off += n
	return v
}

// intv, u32 and the like refuse what their type cannot hold: a plan that
// says more than its fields can is not this binary's.
func (r *wdec) intv() int {
	v := r.int64()
	if int64(int(v)) != v {
		r.fail("%d out of range", v)
	}
	return int(v)
}

func (r *wdec) u32() uint32 {
	v := r.uint()
	if v > 1<<32-1 {
		r.fail("%d out of range", v)
	}
	return uint32(v)
}

func (r *wdec) bool() bool {
	if r.err != nil {
		return false
	}
	if r.off >= len(r.b) || r.b[r.off] > 1 {
		r.fail("bad flag")
		return false
	}
	r.off++
	return r.b[r.off-1] == 1
}

// take returns the next n bytes (a view of the input).
func (r *wdec) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("%d bytes, %d left", n, len(r.b)-r.off)
		return nil
	}
	out := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return out
}

func (r *wdec) str() string { return string(r.take(r.uint())) }

// count reads a slice's length: -1 for nil. Every element takes at least
// min bytes, so a length the rest of the input cannot hold is refused
// before anything is allocated for it.
func (r *wdec) count(min int) int {
	v := r.uint()
	if r.err != nil || v == 0 {
		return -1
	}
	v--
	if v > uint64(len(r.b)-r.off)/uint64(min) {
		r.fail("%d elements, %d bytes left", v, len(r.b)-r.off)
		return -1
	}
	return int(v)
}

func (r *wdec) bytes() []byte {
	n := r.count(1)
	if n < 0 {
		return nil
	}
	return append([]byte{}, r.take(uint64(n))...)
}

func (r *wdec) strs() []string {
	n := r.count(1)
	if n < 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *wdec) u32p() *uint32 {
	if !r.bool() {
		return nil
	}
	v := r.u32()
	return &v
}

func (r *wdec) step(s *Step) {
	s.Op = Op(r.str())
	s.Path = r.str()
	s.Value = r.str()
	s.Mode = r.u32()
	s.Flags = r.uint()
	s.ReadOnly = r.bool()
	s.InUserNS = r.bool()
	s.FD = r.intv()
	s.Data = r.bytes()
	if n := r.count(3); n >= 0 {
		s.Cgroups = make([]rootfs.CgroupMount, n)
		for i := range s.Cgroups {
			c := &s.Cgroups[i]
			c.Dir = r.str()
			c.HostPath = r.str()
			c.Symlinks = r.strs()
		}
	}
	if r.bool() {
		s.Mount = r.mount()
	}
	if n := r.count(7); n >= 0 {
		s.Devices = make([]specs.LinuxDevice, n)
		for i := range s.Devices {
			d := &s.Devices[i]
			d.Path = r.str()
			d.Type = r.str()
			d.Major = r.int64()
			d.Minor = r.int64()
			if r.bool() {
				m := os.FileMode(r.u32())
				d.FileMode = &m
			}
			d.UID = r.u32p()
			d.GID = r.u32p()
		}
	}
	if n := r.count(4); n >= 0 {
		s.Hooks = make([]specs.Hook, n)
		for i := range s.Hooks {
			h := &s.Hooks[i]
			h.Path = r.str()
			h.Args = r.strs()
			h.Env = r.strs()
			if r.bool() {
				t := r.intv()
				h.Timeout = &t
			}
		}
	}
	s.State = r.bytes()
	s.UID = r.u32()
	if r.bool() {
		c := &specs.Box{}
		c.Height = uint(r.uint())
		c.Width = uint(r.uint())
		s.ConsoleSize = c
	}
	if r.bool() {
		l := &Rlimit{}
		l.Name = r.str()
		l.Resource = r.intv()
		l.Soft = r.uint()
		l.Hard = r.uint()
		s.Rlimit = l
	}
	if r.bool() {
		flags := uintptr(r.uint())
		bpf := r.bytes()
		if r.err == nil {
			f, err := security.SeccompFromBinary(bpf, flags)
			if err != nil {
				r.fail("%v", err)
			}
			s.Seccomp = f
		}
	}
	if r.bool() {
		s.Caps = &specs.LinuxCapabilities{
			Bounding: r.strs(), Effective: r.strs(), Inheritable: r.strs(), Permitted: r.strs(), Ambient: r.strs(),
		}
	}
	if r.bool() {
		u := &specs.User{}
		u.UID = r.u32()
		u.GID = r.u32()
		u.Umask = r.u32p()
		if n := r.count(1); n >= 0 {
			u.AdditionalGids = make([]uint32, n)
			for i := range u.AdditionalGids {
				u.AdditionalGids[i] = r.u32()
			}
		}
		u.Username = r.str()
		s.User = u
	}
	if r.bool() {
		e := &Exec{}
		e.Args = r.strs()
		e.Argv0 = r.str()
		e.Env = r.strs()
		e.UID = r.u32()
		e.Exact = r.bool()
		e.Reaper = r.bool()
		e.ForwardSignals = r.bool()
		s.Exec = e
	}
	if r.bool() {
		a := &SchedAttr{}
		a.Size = r.u32()
		a.Policy = r.u32()
		a.Flags = r.uint()
		n := r.int64()
		if int64(int32(n)) != n {
			r.fail("nice %d out of range", n)
		}
		a.Nice = int32(n)
		a.Priority = r.u32()
		a.Runtime = r.uint()
		a.Deadline = r.uint()
		a.Period = r.uint()
		a.Util_min = r.u32()
		a.Util_max = r.u32()
		s.Sched = a
	}
	s.Layers = r.strs()
}

func (r *wdec) mount() *rootfs.Mount {
	m := &rootfs.Mount{}
	m.Kind = r.str()
	m.Type = r.str()
	m.Source = r.str()
	m.Destination = r.str()
	o := &m.Options
	o.Bind = r.bool()
	o.Recursive = r.bool()
	o.Attr = r.uint()
	o.AttrClr = r.uint()
	o.RAttr = r.uint()
	o.RAttrClr = r.uint()
	o.Propagation = uintptr(r.uint())
	o.SbFlags = r.strs()
	o.Data = r.strs()
	o.IDMap = r.bool()
	o.RIDMap = r.bool()
	o.CopyUp = r.bool()
	m.Size = r.int64()
	m.Perms = r.u32p()
	m.UIDMappings = r.idmaps()
	m.GIDMappings = r.idmaps()
	return m
}

func (r *wdec) idmaps() []specs.LinuxIDMapping {
	n := r.count(3)
	if n < 0 {
		return nil
	}
	out := make([]specs.LinuxIDMapping, n)
	for i := range out {
		out[i] = specs.LinuxIDMapping{ContainerID: r.u32(), HostID: r.u32(), Size: r.u32()}
	}
	return out
}
