package main

import (
	"flag"
	"strings"
	"testing"
)

func TestReorder(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.String("memory", "", "")
		fs.Bool("all", false, "")
		fs.Bool("a", false, "")
		return fs
	}
	for in, want := range map[string]string{
		"ID --memory 1M":            "--memory 1M ID",
		"ID --memory=1M":            "--memory=1M ID",
		"--all ID KILL":             "--all ID KILL",
		"ID KILL -a":                "-a ID KILL",
		"ID -- --memory 1M":         "ID -- --memory 1M",
		"ID --memory -1 --all":      "--memory -1 --all ID",
		"ID --unknown x":            "--unknown ID x",
		"":                          "",
		"ID --memory":               "--memory ID",
		"--memory 1M -- ID --a":     "--memory 1M -- ID --a",
		"ID --all=false --memory 5": "--all=false --memory 5 ID",
	} {
		got := strings.Join(reorder(newFS(), strings.Fields(in)), " ")
		if got != want {
			t.Errorf("reorder(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReorder(f *testing.F) {
	f.Add("ID --memory 1M -a -- x")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		got := reorder(flag.NewFlagSet("x", flag.ContinueOnError), args)
		if len(got) != len(args) {
			t.Fatalf("reorder(%q) = %q: arguments lost or added", args, got)
		}
	})
}
