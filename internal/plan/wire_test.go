package plan

import (
	"errors"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/security"
)

var seccompType = reflect.TypeFor[*security.Seccomp]()

// fill sets every field reachable from v: numbers to small distinct
// values, strings and bytes to distinct contents, every pointer to a
// filled value, every slice to two filled elements; with empty, slices
// are empty and not nil and pointers stay nil, the other case the wire
// form must keep apart. A field the wire form does not carry then comes
// back zero and the round trip fails.
func fill(t testing.TB, v reflect.Value, n *int, empty bool) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + string(rune('a'+*n/26%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n) - 40) // negative as well as positive
	case reflect.Uint8, reflect.Uint, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(*n))
	case reflect.Pointer:
		if v.Type() == seccompType {
			f, err := security.SeccompFromBinary([]byte{6, 0, 1, 2, 0, 0, 0xff, 0x7f}, uintptr(*n))
			if err != nil {
				t.Fatal(err)
			}
			v.Set(reflect.ValueOf(f))
			return
		}
		if empty {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n, empty)
		v.Set(p)
	case reflect.Slice:
		l := 2
		if empty {
			l = 0
		}
		s := reflect.MakeSlice(v.Type(), l, l)
		for i := range l {
			fill(t, s.Index(i), n, empty)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s.%s: an unexported field the test cannot fill", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, v.Field(i), n, empty)
		}
	default:
		t.Fatalf("%s: a kind (%s) the test does not fill", v.Type(), v.Kind())
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, empty := range []bool{false, true} {
		var p Plan
		n := 0
		fill(t, reflect.ValueOf(&p).Elem(), &n, empty)
		if empty {
			// A plan without steps, and one whose step holds empty slices.
			var s Step
			fill(t, reflect.ValueOf(&s).Elem(), &n, true)
			p.Steps = []Step{s}
		}
		got, err := Decode(Encode(&p))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &p) {
			t.Errorf("empty=%t: round trip changed the plan:\n got %+v\nwant %+v", empty, got.Steps, p.Steps)
		}
	}
	for _, p := range []*Plan{{}, {Kind: KindExec, Steps: []Step{{Op: OpExec, FD: NoFD}}}} {
		got, err := Decode(Encode(p))
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("%+v: got %+v, %v", p, got, err)
		}
	}
}

// A real plan: the one FromSpec compiles from runc's default config.
func TestWireRealPlan(t *testing.T) {
	s := baseSpec()
	s.Mounts = []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}}}
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024}}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}}
	s.Linux.MaskedPaths = []string{"/proc/kcore"}
	p := compile(t, s, nil)
	got, err := Decode(Encode(p))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("round trip changed the plan:\n got %v\nwant %v", got.Lines(), p.Lines())
	}
}

// Every cut of a plan is an error wrapping ErrWire, as is a plan with
// bytes after it or another kind of payload.
func TestWireDecodeErrors(t *testing.T) {
	var p Plan
	n := 0
	fill(t, reflect.ValueOf(&p).Elem(), &n, false)
	b := Encode(&p)
	for i := range len(b) {
		if _, err := Decode(b[:i]); !errors.Is(err, ErrWire) {
			t.Fatalf("cut at %d of %d: err %v", i, len(b), err)
		}
	}
	for _, bad := range [][]byte{append(append([]byte{}, b...), 0), []byte(`{"kind":"init"}`), nil} {
		if _, err := Decode(bad); !errors.Is(err, ErrWire) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
	// A length the input cannot hold is refused before it is allocated.
	huge := append(append([]byte{}, wireMagic...), 0, 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := Decode(huge); !errors.Is(err, ErrWire) {
		t.Errorf("huge step count: err %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	var p Plan
	n := 0
	fill(f, reflect.ValueOf(&p).Elem(), &n, false)
	f.Add(Encode(&p))
	f.Add(Encode(&Plan{Kind: KindInit, Steps: []Step{{Op: OpUmask, Mode: 0o22, FD: NoFD}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrWire) {
				t.Fatalf("error %v does not wrap ErrWire", err)
			}
			return
		}
		again, err := Decode(Encode(p))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("a decoded plan does not survive its own round trip: %v", err)
		}
	})
}
