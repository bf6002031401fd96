package cri

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
)

// A file in an image layer.
type file struct {
	name     string
	mode     int64 // permission bits, with 04000 for setuid
	data     []byte
	link     string // symlink target
	hardlink string // hard link target
	dir      bool
	uid, gid int
}

// layer is one gzipped tar layer: its blob and its uncompressed digest.
type layer struct {
	blob   []byte
	diffID string
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func makeLayer(files []file) (layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, Format: tar.FormatPAX}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.hardlink
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return layer{}, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return layer{}, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return layer{}, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(raw.Bytes())
	zw.Close()
	return layer{blob: gz.Bytes(), diffID: digest(raw.Bytes())}, nil
}

// imageConfig is the part of an OCI image config that the images set.
type imageConfig struct {
	User       string
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	Labels     map[string]string
}

// registry serves images read-only through the distribution API, enough
// for containerd's resolver and fetcher: /v2/, manifests by tag or digest,
// blobs by digest (GET and HEAD).
type registry struct {
	blobs     map[string][]byte // digest -> content (configs, layers, manifests)
	manifests map[string]string // "repo:tag" -> manifest digest
}

func newRegistry() *registry {
	return &registry{blobs: map[string][]byte{}, manifests: map[string]string{}}
}

func (r *registry) add(b []byte) string {
	d := digest(b)
	r.blobs[d] = b
	return d
}

// push stores an image under each "host/repo:tag" reference.
func (r *registry) push(layers []layer, cfg imageConfig, refs ...string) error {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	var diffIDs []string
	var ls []desc
	for _, l := range layers {
		diffIDs = append(diffIDs, l.diffID)
		ls = append(ls, desc{"application/vnd.oci.image.layer.v1.tar+gzip", r.add(l.blob), len(l.blob)})
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"created":      "2025-01-01T00:00:00Z",
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{"application/vnd.oci.image.config.v1+json", r.add(config), len(config)},
		"layers":        ls,
	})
	if err != nil {
		return err
	}
	md := r.add(manifest)
	for _, ref := range refs {
		_, path, _ := strings.Cut(ref, "/") // drop the registry host
		if !strings.Contains(path[strings.LastIndex(path, "/")+1:], ":") {
			path += ":latest"
		}
		r.manifests[path] = md
	}
	return nil
}

func (r *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || p == req.URL.Path {
		w.WriteHeader(http.StatusOK)
		return
	}
	var d, mediaType string
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		repo, ref := p[:i], p[i+len("/manifests/"):]
		d = ref
		if !strings.HasPrefix(ref, "sha256:") {
			d = r.manifests[repo+":"+ref]
		}
		mediaType = "application/vnd.oci.image.manifest.v1+json"
	} else if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		d, mediaType = p[i+len("/blobs/"):], "application/octet-stream"
	}
	b, ok := r.blobs[d]
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}`)
		return
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	if req.Method != http.MethodHead {
		w.Write(b)
	}
}

// serve answers on l until l is closed.
func (r *registry) serve(l net.Listener) { go http.Serve(l, r) }

// buildImages fills reg with every image critest v1.34 pulls, all from
// one busybox base: Debian's dynamically linked busybox (its sh execs
// /bin/ls for real, which the MaskedPaths spec needs; the static one runs
// applets in-process) with the host's libc, pgrep and ipcs as scripts (the
// Debian build lacks them), and testimage for pause, nginx, httpd and
// nonewprivs.
func buildImages(reg *registry, busybox, helper string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	help, err := os.ReadFile(helper)
	if err != nil {
		return err
	}
	var files []file
	for _, d := range []string{"bin", "dev", "etc", "home", "lib", "lib/x86_64-linux-gnu", "lib64", "proc", "sys", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "var", "var/run", "var/log"} {
		files = append(files, file{name: d, dir: true, mode: 0o755})
	}
	files = append(files, file{name: "tmp", dir: true, mode: 0o1777}, file{name: "root", dir: true, mode: 0o700})
	for _, lib := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libresolv.so.2", "/lib64/ld-linux-x86-64.so.2"} {
		b, err := os.ReadFile(lib)
		if err != nil {
			return err
		}
		files = append(files, file{name: lib[1:], data: b, mode: 0o755})
	}
	files = append(files, file{name: "bin/busybox", data: bb, mode: 0o755})
	applets, err := runOut(busybox, "--list")
	if err != nil {
		return err
	}
	list := strings.Fields(applets)
	sort.Strings(list)
	for _, a := range list {
		switch a {
		case "busybox":
		case "ls":
			// A name of its own: the MaskedPaths spec masks /bin/ls, and
			// the runtime resolves a symlink to what it points at, which
			// would mask busybox and so every applet.
			files = append(files, file{name: "bin/ls", hardlink: "bin/busybox", mode: 0o755})
		default:
			files = append(files, file{name: "bin/" + a, link: "busybox"})
		}
	}
	files = append(files,
		file{name: "bin/pgrep", mode: 0o755, data: []byte("#!/bin/sh\n# pgrep NAME: the pids whose comm is NAME\nfor d in /proc/[0-9]*; do\n\tread -r c < $d/comm 2>/dev/null && [ \"$c\" = \"$1\" ] && echo ${d#/proc/}\ndone\ntrue\n")},
		file{name: "bin/ipcs", mode: 0o755, data: []byte("#!/bin/sh\n# ipcs -m: the shared memory segments of this IPC namespace\necho '------ Shared Memory Segments --------'\necho 'key        shmid      owner      perms      bytes      nattch'\nawk 'NR > 1 { printf \"0x%08x %-10s %-10s %-10s %-10s %s\\n\", $1, $2, $8, $3, $4, $7 }' /proc/sysvipc/shm\n")},
		file{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		file{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n")},
		file{name: "etc/hostname", mode: 0o644, data: []byte("busybox\n")},
	)
	base, err := makeLayer(files)
	if err != nil {
		return err
	}
	tool := func(path string, mode int64) layer {
		l, _ := makeLayer([]file{{name: path, data: help, mode: mode}})
		return l
	}
	marker := func(name string) layer {
		l, _ := makeLayer([]file{{name: name, data: []byte(name + "\n"), mode: 0o644}})
		return l
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	sh := imageConfig{Env: env, Cmd: []string{"sh"}}
	withUser := func(u string) imageConfig { c := sh; c.User = u; return c }
	const cri, e2e = "gcr.io/k8s-staging-cri-tools/", "registry.k8s.io/e2e-test-images/"
	predef, _ := makeLayer([]file{
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\ndefault-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nwww-data:x:33:\nusers:x:100:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")},
		{name: "home/default-user", dir: true, mode: 0o755, uid: 1000, gid: 1000},
	})
	images := []struct {
		layers []layer
		cfg    imageConfig
		refs   []string
	}{
		{[]layer{base}, sh, []string{e2e + "busybox:1.29-2"}},
		{[]layer{base, tool("pause", 0o755)}, imageConfig{Env: env, Entrypoint: []string{"/pause"}}, []string{"registry.k8s.io/pause:3.10"}},
		{[]layer{base, tool("usr/sbin/nginx", 0o755)}, imageConfig{Env: append(env, "PORT=80"), Entrypoint: []string{"/usr/sbin/nginx"}}, []string{e2e + "nginx:1.14-2"}},
		{[]layer{base, tool("usr/sbin/nginx", 0o755)}, imageConfig{Env: append(env, "PORT=12003"), Entrypoint: []string{"/usr/sbin/nginx"}}, []string{cri + "hostnet-nginx-amd64"}},
		{[]layer{base, tool("usr/local/bin/httpd", 0o755)}, imageConfig{Env: env, Entrypoint: []string{"/usr/local/bin/httpd"}}, []string{e2e + "httpd:2.4.39-4"}},
		{[]layer{base, tool("usr/local/bin/nonewprivs", 0o4755)}, imageConfig{Env: env, Entrypoint: []string{"/usr/local/bin/nonewprivs"}}, []string{e2e + "nonewprivs:1.3"}},
		{[]layer{base, marker("test-image-latest")}, sh, []string{cri + "test-image-latest"}},
		{[]layer{base, marker("test-image-tag")}, sh, []string{cri + "test-image-tag:test", cri + "test-image-tag:all"}},
		{[]layer{base, marker("test-image-1")}, sh, []string{cri + "test-image-1"}},
		{[]layer{base, marker("test-image-2")}, sh, []string{cri + "test-image-2"}},
		{[]layer{base, marker("test-image-3")}, sh, []string{cri + "test-image-3"}},
		{[]layer{base, marker("test-image-tags")}, sh, []string{cri + "test-image-tags:1", cri + "test-image-tags:2", cri + "test-image-tags:3"}},
		{[]layer{base, marker("user-uid")}, withUser("1002"), []string{cri + "test-image-user-uid"}},
		{[]layer{base, marker("user-username")}, withUser("www-data"), []string{cri + "test-image-user-username"}},
		{[]layer{base, marker("user-uid-group")}, withUser("1003:1004"), []string{cri + "test-image-user-uid-group"}},
		{[]layer{base, marker("user-username-group")}, withUser("www-data:1004"), []string{cri + "test-image-user-username-group"}},
		{[]layer{base, predef}, withUser("1000"), []string{cri + "test-image-predefined-group"}},
	}
	for _, im := range images {
		if err := reg.push(im.layers, im.cfg, im.refs...); err != nil {
			return err
		}
	}
	return nil
}
