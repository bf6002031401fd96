package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// configName is fixed by the runtime-spec bundle layout.
const configName = "config.json"

// Load reads <bundle>/config.json, decodes and validates it. Relative
// root.path is resolved against bundle (the returned spec keeps the original
// value; use RootfsPath to get the absolute one).
func Load(bundle string) (*specs.Spec, error) {
	s, _, err := LoadBytes(bundle)
	return s, err
}

// LoadBytes is Load that also returns the file's bytes, so that a caller
// keeping a copy need not encode the spec again.
func LoadBytes(bundle string) (*specs.Spec, []byte, error) {
	data, err := os.ReadFile(filepath.Join(bundle, configName))
	if err != nil {
		// Left unwrapped from ErrInvalid: a missing or unreadable file is an
		// I/O problem, and callers want errors.Is(err, fs.ErrNotExist).
		return nil, nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	if err := Validate(s, bundle); err != nil {
		return nil, nil, err
	}
	return s, data, nil
}

// specLinux is specs.Spec with the other systems' sections left as raw
// JSON. On a type's first decode, encoding/json builds the encoders of
// every type the type reaches (typeFields), and the sections of Solaris,
// Windows, VMs, z/OS and FreeBSD are a good part of runtime-spec's types:
// ~0.15 ms of every create (0.64 -> 0.49 ms for runc's default config, a
// fresh process each), for sections a Linux config does not have. A config
// that has one is decoded whole, as before, so that Validate and the
// errors see it as they always did. TestSpecLinuxIsSpec holds the two
// types equal field for field.
type specLinux struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *specs.Linux      `json:"linux,omitempty"`
	Solaris     json.RawMessage   `json:"solaris,omitempty"`
	Windows     json.RawMessage   `json:"windows,omitempty"`
	VM          json.RawMessage   `json:"vm,omitempty"`
	ZOS         json.RawMessage   `json:"zos,omitempty"`
	FreeBSD     json.RawMessage   `json:"freebsd,omitempty"`
}

// linuxOnly returns the spec if no other system's section is there.
func (l *specLinux) linuxOnly() (*specs.Spec, bool) {
	for _, raw := range []json.RawMessage{l.Solaris, l.Windows, l.VM, l.ZOS, l.FreeBSD} {
		if raw != nil && string(raw) != "null" {
			return nil, false
		}
	}
	return &specs.Spec{Version: l.Version, Process: l.Process, Root: l.Root, Hostname: l.Hostname, Domainname: l.Domainname,
		Mounts: l.Mounts, Hooks: l.Hooks, Annotations: l.Annotations, Linux: l.Linux}, true
}

// Parse decodes config.json bytes. Unknown fields are ignored like runc; a
// wrong JSON type gives an error naming the field path, e.g.
// "config.json: process.args: cannot unmarshal string into []string".
func Parse(data []byte) (*specs.Spec, error) {
	var l specLinux
	if json.NewDecoder(bytes.NewReader(data)).Decode(&l) == nil {
		if s, ok := l.linuxOnly(); ok {
			return s, nil
		}
	}
	// Another system's section, or an error: the whole decode, whose
	// errors name fields as they always have.
	var s specs.Spec
	// A Decoder rather than json.Unmarshal because runc uses one: trailing
	// bytes after the top-level object are ignored, and configs that runc
	// accepts must load here too.
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", configName, decodeError(data, err))
	}
	return &s, nil
}

// RootfsPath returns the absolute, symlink-evaluated rootfs path.
func RootfsPath(s *specs.Spec, bundle string) (string, error) {
	p, err := rootfsAbs(s, bundle)
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fieldErr("root.path", "%s: %s", p, errnoText(err))
	}
	return resolved, nil
}

// rootfsAbs resolves root.path against the bundle without touching the
// filesystem beyond what filepath.Abs needs.
func rootfsAbs(s *specs.Spec, bundle string) (string, error) {
	if s == nil || s.Root == nil {
		return "", fieldErr("root", "must not be empty")
	}
	p := s.Root.Path
	if p == "" {
		return "", fieldErr("root.path", "must not be empty")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fieldErr("root.path", "%s: %v", p, err)
	}
	return abs, nil
}

// errnoText strips the "op path:" prefix of a PathError because the callers
// already print the path once.
func errnoText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// decodeError turns encoding/json errors into FieldErrors. encoding/json
// reports "mounts.options" for a bad element of mounts[1].options, which is
// useless with long arrays, so the exact path is recovered from the offset.
func decodeError(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field, ok := pathAt(data, te.Offset)
		if !ok {
			field = te.Field
		}
		typ := "value"
		if te.Type != nil {
			typ = te.Type.String()
		}
		return &FieldError{Field: field, Msg: fmt.Sprintf("cannot unmarshal %s into %s", te.Value, typ)}
	case errors.As(err, &se):
		return fieldErr("", "invalid JSON at offset %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF):
		return fieldErr("", "empty document")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fieldErr("", "invalid JSON: unexpected end of input")
	default:
		return fieldErr("", "%v", err)
	}
}

type pathFrame struct {
	array   bool
	index   int
	key     string
	wantKey bool
}

// pathAt re-tokenises data and returns the JSON path of the value whose
// encoding ends at or after off (encoding/json reports the offset just past
// the offending token).
func pathAt(data []byte, off int64) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []pathFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		n := len(stack)
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if n == 0 {
				return "", false
			}
			stack = stack[:n-1]
			if n > 1 && !stack[n-2].array {
				stack[n-2].wantKey = true
			}
			continue
		}
		if n > 0 && !stack[n-1].array && stack[n-1].wantKey {
			stack[n-1].key, _ = tok.(string)
			stack[n-1].wantKey = false
			continue
		}
		if n > 0 && stack[n-1].array {
			stack[n-1].index++
		}
		if dec.InputOffset() >= off {
			return renderPath(stack), true
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, pathFrame{array: d == '[', index: -1, wantKey: d == '{'})
			continue
		}
		if n > 0 && !stack[n-1].array {
			stack[n-1].wantKey = true
		}
	}
}

func renderPath(stack []pathFrame) string {
	var b strings.Builder
	for _, f := range stack {
		switch {
		case f.array:
			fmt.Fprintf(&b, "[%d]", f.index)
		case isIdent(f.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		default:
			fmt.Fprintf(&b, "[%q]", f.key)
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
