package bench

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSideBySide prints issue 13's six figures for every runtime found
// (hako, crun, runc) with each figure's ratio to crun's; then where hako's own time went, from `--debug`'s
// breakdown of a run and of an exec. It is a report, not a check: nothing
// here compares a time with a limit.
//
//	sudo go test -run '^$' -bench SideBySide -benchtime 1x ./test/bench/
//
// HAKO_BENCH_RUNS sets the samples per figure (default 20); each figure is
// their median, except par20 (the wall time of 20 runs started at once,
// median of 3) and rss (the largest peak RSS of 3 runs, KiB, by GNU time).
func BenchmarkSideBySide(b *testing.B) {
	if setupErr != nil {
		b.Skip(setupErr)
	}
	runs := 20
	if n, err := strconv.Atoi(os.Getenv("HAKO_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	sleeper := withArgs(b, "sleep", "100000")
	var rts []runtime
	for _, rt := range runtimes {
		if out, err := rt.cmd("run", "--bundle", bundle, "probe").CombinedOutput(); err != nil {
			fmt.Printf("# %s cannot run here, left out: %v: %s\n", rt.name, err, strings.TrimSpace(string(out)))
			continue
		}
		if err := rt.cmd("run", "-d", "--bundle", sleeper, "exec-target").Run(); err != nil {
			fmt.Printf("# %s cannot run a detached container, left out: %v\n", rt.name, err)
			continue
		}
		defer rt.cmd("delete", "--force", "exec-target").Run()
		rts = append(rts, rt)
	}
	figures := []string{"run", "cold", "cycle", "exec", "par20", "rss"}
	samples := map[string]map[string][]float64{}
	for _, rt := range rts {
		samples[rt.name] = map[string][]float64{}
	}
	add := func(rt runtime, fig string, v float64) { samples[rt.name][fig] = append(samples[rt.name][fig], v) }
	timed := func(c *exec.Cmd) float64 {
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", c.Args, err, out)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}
	// Each figure's samples are taken back to back, as the figure
	// means (a cold run is one after 100 ms idle; a run right after
	// another is not cold), in two passes over the runtimes, the second
	// in reverse order, so that neither goes first in both.
	passes := [][]runtime{rts, reversed(rts)}
	for _, pass := range passes {
		for _, rt := range pass {
			for i := 0; i < (runs+1)/2; i++ {
				ms := timed(rt.cmd("run", "--bundle", bundle, fmt.Sprintf("r%d", i)))
				add(rt, "run", ms)
			}
		}
		for _, rt := range pass {
			for i := 0; i < (runs+1)/2; i++ {
				time.Sleep(100 * time.Millisecond)
				ms := timed(rt.cmd("run", "--bundle", bundle, fmt.Sprintf("cold%d", i)))
				add(rt, "cold", ms)
			}
		}
		for _, rt := range pass {
			for i := 0; i < (runs+1)/2; i++ {
				id := fmt.Sprintf("cy%d", i)
				start := time.Now()
				// No pipes for create: the created init holds its
				// stdio until it ends.
				if err := rt.cmd("create", "--bundle", bundle, id).Run(); err != nil {
					b.Fatalf("%s create: %v", rt.name, err)
				}
				for _, args := range [][]string{{"start", id}, {"delete", "--force", id}} {
					if out, err := rt.cmd(args...).CombinedOutput(); err != nil {
						b.Fatalf("%s %v: %v: %s", rt.name, args, err, out)
					}
				}
				add(rt, "cycle", float64(time.Since(start).Microseconds())/1000)
			}
		}
		for _, rt := range pass {
			for i := 0; i < (runs+1)/2; i++ {
				ms := timed(rt.cmd("exec", "exec-target", "/bin/true"))
				add(rt, "exec", ms)
			}
		}
	}
	for _, rt := range rts {
		for i := 0; i < 3; i++ {
			kib, err := maxRSS(rt, "run", "--bundle", bundle, fmt.Sprintf("rss%d", i))
			if err != nil {
				fmt.Printf("# rss: %v\n", err)
				break
			}
			add(rt, "rss", float64(kib))
		}
	}
	for round := 0; round < 3; round++ {
		for _, rt := range rts {
			var wg sync.WaitGroup
			start := time.Now()
			for j := 0; j < 20; j++ {
				wg.Add(1)
				go func(j int) {
					defer wg.Done()
					if out, err := rt.cmd("run", "--bundle", bundle, fmt.Sprintf("p%d-%d", round, j)).CombinedOutput(); err != nil {
						b.Errorf("%s parallel run: %v: %s", rt.name, err, out)
					}
				}(j)
			}
			wg.Wait()
			add(rt, "par20", float64(time.Since(start).Microseconds())/1000)
		}
	}

	fmt.Printf("\n%-8s", "runtime")
	for _, f := range figures {
		unit := " ms"
		if f == "rss" {
			unit = " KiB"
		}
		fmt.Printf(" %16s", f+unit)
	}
	fmt.Println()
	ref := ""
	for _, rt := range rts {
		if rt.name == "crun" {
			ref = "crun"
		}
	}
	for _, rt := range rts {
		fmt.Printf("%-8s", rt.name)
		for _, f := range figures {
			v := figure(samples[rt.name][f], f)
			cell := fmt.Sprintf("%.1f", v)
			if ref != "" && rt.name != ref {
				cell += fmt.Sprintf(" x%.2f", v/figure(samples[ref][f], f))
			}
			fmt.Printf(" %16s", cell)
		}
		fmt.Println()
	}
	if ref != "" {
		fmt.Printf("(xN: the figure divided by crun's)\n")
	}
	for _, rt := range rts {
		if rt.name == "hako" {
			breakdown(b, rt, runs)
		}
	}
}

func reversed(rts []runtime) []runtime {
	r := make([]runtime, len(rts))
	for i, rt := range rts {
		r[len(rts)-1-i] = rt
	}
	return r
}

// maxRSS is the peak resident memory of the runtime's command, in KiB, as
// GNU time measures it. Not from Go's own wait: os/exec starts a child with
// vfork (CLONE_VM), and at execve the kernel keeps the peak of the memory
// it leaves, which is this test binary's, as the child's maxrss too.
func maxRSS(rt runtime, args ...string) (int, error) {
	return peakRSS(append([]string{rt.bin, "--root", rt.root}, args...)...)
}

// peakRSS runs argv under GNU time and returns its peak RSS in KiB.
func peakRSS(argv ...string) (int, error) {
	gnuTime, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		return 0, fmt.Errorf("needs GNU time (apt-get install time): %w", err)
	}
	c := exec.Command(gnuTime, append([]string{"-f", "%M"}, argv...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %v: %s", c.Args, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strconv.Atoi(lines[len(lines)-1])
}

// figure is the median of the samples; rss takes the largest.
func figure(v []float64, fig string) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if fig == "rss" {
		return s[len(s)-1]
	}
	return s[len(s)/2]
}

var tookRE = regexp.MustCompile(`(run|exec) [^:]+: took total ([0-9.]+) ms: (.*?)"?$`)

// breakdown prints the median of each phase --debug reports for hako's run
// and exec, in the order hako reports them.
func breakdown(b *testing.B, rt runtime, runs int) {
	for _, what := range []string{"run", "exec"} {
		var order []string
		phases := map[string][]float64{}
		for i := 0; i < runs; i++ {
			var c *exec.Cmd
			if what == "run" {
				c = rt.cmd("--debug", "run", "--bundle", bundle, fmt.Sprintf("d%d", i))
			} else {
				c = rt.cmd("--debug", "exec", "exec-target", "/bin/true")
			}
			out, err := c.CombinedOutput()
			if err != nil {
				b.Fatalf("hako --debug %s: %v: %s", what, err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				m := tookRE.FindStringSubmatch(line)
				if m == nil || m[1] != what {
					continue
				}
				for _, p := range append([]string{"total " + m[2]}, strings.Split(m[3], ", ")...) {
					k := strings.LastIndexByte(p, ' ')
					name := p[:k]
					v, _ := strconv.ParseFloat(p[k+1:], 64)
					if _, ok := phases[name]; !ok {
						order = append(order, name)
					}
					phases[name] = append(phases[name], v)
				}
			}
		}
		fmt.Printf("\nwhere hako's %s spends its time (median ms of %d runs, --debug):\n", what, runs)
		for _, name := range order {
			fmt.Printf("  %-22s %6.2f\n", name, figure(phases[name], ""))
		}
	}
}
