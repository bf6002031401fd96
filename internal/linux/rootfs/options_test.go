package rootfs

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in   []string
		want Options
	}{
		{[]string{"nosuid", "strictatime", "mode=755", "size=65536k"}, Options{
			Attr: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_STRICTATIME, AttrClr: unix.MOUNT_ATTR__ATIME,
			Data: []string{"mode=755", "size=65536k"}}},
		{[]string{"rbind", "ro", "rprivate"}, Options{Bind: true, Recursive: true, Attr: unix.MOUNT_ATTR_RDONLY,
			Propagation: unix.MS_PRIVATE | unix.MS_REC}},
		{[]string{"bind", "ro", "rw"}, Options{Bind: true, AttrClr: unix.MOUNT_ATTR_RDONLY}},
		{[]string{"rro", "rnosuid", "relatime"}, Options{RAttr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID,
			Attr: unix.MOUNT_ATTR_RELATIME, AttrClr: unix.MOUNT_ATTR__ATIME}},
		{[]string{"newinstance", "ptmxmode=0666", "sync", "defaults", "ridmap"}, Options{
			Data: []string{"newinstance", "ptmxmode=0666"}, SbFlags: []string{"sync"}, IDMap: true, RIDMap: true}},
	}
	for _, tt := range tests {
		got := ParseOptions(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOptions(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestParsePropagation(t *testing.T) {
	if p, ok := ParsePropagation("rslave"); !ok || p != unix.MS_SLAVE|unix.MS_REC {
		t.Fatal("rslave")
	}
	if _, ok := ParsePropagation("sideways"); ok {
		t.Fatal("unknown propagation accepted")
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("nosuid,noexec,ro,mode=755")
	f.Add("rbind,rro,ridmap,rshared")
	f.Fuzz(func(t *testing.T, s string) {
		var opts []string
		start := 0
		for i := 0; i <= len(s); i++ {
			if i == len(s) || s[i] == ',' {
				opts = append(opts, s[start:i])
				start = i + 1
			}
		}
		o := ParseOptions(opts)
		if o.Attr&o.AttrClr&^unix.MOUNT_ATTR__ATIME != 0 {
			t.Fatalf("%q: attribute both set and cleared: %+v", s, o)
		}
	})
}
