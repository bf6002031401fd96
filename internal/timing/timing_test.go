package timing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReportRoundTrip(t *testing.T) {
	r := &Report{
		Main:  time.Unix(1796640599, 454101000),
		Plan:  time.Unix(1796640599, 454501000),
		Steps: []time.Duration{3 * time.Microsecond, 622 * time.Microsecond, 0},
	}
	got, err := Decode(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Main.Equal(r.Main) || !got.Plan.Equal(r.Plan) || len(got.Steps) != 3 || got.Steps[1] != 622*time.Microsecond {
		t.Fatalf("round trip: got %+v, want %+v", got, r)
	}
	if got.Total() != 625*time.Microsecond {
		t.Fatalf("total %v", got.Total())
	}
	names := []string{"umask", "mount", "dev"}
	if s := got.Slowest(2, func(i int) string { return names[i] }); s != "2 mount 0.62, 1 umask 0.00" {
		t.Fatalf("slowest: %q", s)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	good := (&Report{Steps: []time.Duration{time.Millisecond}}).Encode()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:19],
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"huge":      append(append([]byte{}, good[:16]...), 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Report{Steps: []time.Duration{time.Millisecond, 2}}).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(r.Encode())
		if err != nil || len(again.Steps) != len(r.Steps) {
			t.Fatalf("re-decode of a decoded report: %v", err)
		}
	})
}

func TestTimeline(t *testing.T) {
	var nilT *Timeline
	nilT.Mark("x") // must not panic: timing off
	if nilT.String() != "" {
		t.Fatal("nil timeline printed something")
	}
	tl := New()
	start := tl.start
	tl.MarkAt("a", start.Add(2*time.Millisecond))
	tl.MarkAt("late", start.Add(time.Millisecond)) // another process's stamp, before the last mark
	tl.MarkAt("b", start.Add(5*time.Millisecond))
	if s := tl.String(); s != "total 5.00 ms: a 2.00, late 0.00, b 3.00" {
		t.Fatalf("got %q", s)
	}
	if !strings.HasPrefix(tl.String(), "total ") {
		t.Fatal(tl.String())
	}
}

func TestMarkReport(t *testing.T) {
	tl := New()
	start := tl.start
	rep := &Report{Main: start.Add(time.Millisecond), Plan: start.Add(3 * time.Millisecond), Steps: []time.Duration{time.Millisecond}}
	got, err := tl.MarkReport("init", "Go", rep.Encode())
	if err != nil || got == nil || len(got.Steps) != 1 {
		t.Fatalf("MarkReport: %+v, %v", got, err)
	}
	if s := tl.String(); !strings.Contains(s, ": init Go start 1.00, init plan decode 2.00, init steps ") {
		t.Fatalf("got %q", s)
	}
	// An unreadable report still closes the steps' phase.
	tl = New()
	if _, err := tl.MarkReport("process", "C", []byte{1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed payload: %v", err)
	}
	if s := tl.String(); !strings.Contains(s, ": process steps ") || strings.Contains(s, "start") {
		t.Fatalf("got %q", s)
	}
	var none *Timeline
	if r, err := none.MarkReport("init", "Go", nil); r != nil || err != nil {
		t.Fatal("a nil timeline read a report")
	}
}
