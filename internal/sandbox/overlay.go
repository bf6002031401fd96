package sandbox

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Overlay is one --overlay: Path (inside the sandbox's root) made writable
// through overlayfs, its changes in Upper (with Work, overlayfs' work
// directory on Upper's file system), or with none thrown away at exit.
type Overlay struct {
	Path, Upper, Work string
}

// ParseOverlay reads --overlay's PATH or PATH:UPPER:WORK.
//
// Not "/": overlayfs does not cross mount points, so an overlay of the
// root would show none of the file systems mounted below it (/proc, /dev,
// /home, /boot...). Not PATH:UPPER alone: overlayfs needs an empty work
// directory on UPPER's file system, and hako makes nothing on the host's
// tree that could outlive the sandbox (bwrap's --overlay asks for it too).
func ParseOverlay(v string) (Overlay, error) {
	parts := strings.Split(v, ":")
	if len(parts) == 2 || len(parts) > 3 {
		return Overlay{}, fmt.Errorf("--overlay %s: PATH (changes thrown away) or PATH:UPPER:WORK (changes kept in UPPER; WORK an empty directory on UPPER's file system, which overlayfs needs)", v)
	}
	var o Overlay
	for i, p := range parts {
		c, err := absPath(p)
		if err != nil {
			return Overlay{}, fmt.Errorf("--overlay %s: %w", v, err)
		}
		parts[i] = c
	}
	o.Path = parts[0]
	if len(parts) == 3 {
		o.Upper, o.Work = parts[1], parts[2]
	}
	if o.Path == "/" {
		return Overlay{}, fmt.Errorf("--overlay %s: not the root: overlayfs does not cross mount points, so / would lose every file system mounted below it (/proc, /dev, /home...); overlay the directories COMMAND writes to", v)
	}
	return o, nil
}

func (b *builder) overlay(o Overlay) {
	b.overlays = append(b.overlays, o)
	b.writable = append(b.writable, o.Path)
	b.check(receipt.Check{Property: "--overlay", Kind: receipt.KindFS, Path: o.Path, Value: "overlay"})
	b.check(receipt.Check{Property: "--overlay", Kind: receipt.KindWritable, Path: o.Path})
}

// checkOverlays: the directories must exist, as for any mount point.
func (sb *Sandbox) checkOverlays(exists func(string) bool) error {
	for _, o := range sb.Overlays {
		if !exists(sb.Root + o.Path + "/.") {
			return fmt.Errorf("--overlay %s: %w (cause: overlayfs covers an existing directory)", sb.Root+o.Path, unix.ENOENT)
		}
		for _, l := range []string{o.Upper, o.Work} {
			if l != "" && !exists(l+"/.") {
				return fmt.Errorf("--overlay layer %s: %w (cause: hako sandbox creates nothing on the host's tree: create the directory first)", l, unix.ENOENT)
			}
		}
	}
	return nil
}
