package sandbox

import (
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/plan"
)

func TestParseOverlay(t *testing.T) {
	for v, want := range map[string]string{
		"/srv/data":         "/srv/data::",
		"/srv/data:/u:/w":   "/srv/data:/u:/w",
		"/":                 "not the root: overlayfs does not cross mount points",
		"/srv/data:/u":      "PATH:UPPER:WORK (changes kept in UPPER; WORK an empty directory",
		"srv":               "is not absolute",
		"/srv/data:/u:w":    "is not absolute",
		"/srv/data:/u:/w:x": "PATH (changes thrown away)",
	} {
		o, err := ParseOverlay(v)
		got := o.Path + ":" + o.Upper + ":" + o.Work
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s, want %s", v, got, want)
		}
	}
}

// Overlays come right after the root is bound, before the mounts; under
// ProtectSystem=strict they stay writable; the receipt checks both.
func TestOverlayPlan(t *testing.T) {
	in := &Input{Args: []string{"sh"}, Cwd: "/", Overlays: []string{"/srv/a", "/srv/b:/u:/w"}}
	sb, err := compileIn(t, in, "ProtectSystem=strict", "BindPaths=/x:/srv/a/x")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := sb.Plan(&plan.OCI{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, s := range pl.Steps {
		switch s.Op {
		case plan.OpBindRoot, plan.OpOverlay, plan.OpMount:
			ops = append(ops, string(s.Op)+" "+s.Path+strings.Join(s.Layers, ","))
		case plan.OpTreeRO:
			if !s.ReadOnly {
				ops = append(ops, "rw "+s.Path)
			}
		}
	}
	if got, want := strings.Join(ops, "; "), "bind-root "+Stage+"; overlay /srv/a; overlay /srv/b/u,/w; mount ; mount ; rw /dev; rw /proc; rw /sys; rw /home; rw /root; rw /run/user; rw /srv/a/x; rw /srv/a; rw /srv/b"; got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	n := 0
	for _, c := range sb.Checks {
		if c.Property == "--overlay" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d overlay checks", n)
	}
}
