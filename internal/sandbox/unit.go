package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ParseAssignment splits `-p NAME=VALUE`.
func ParseAssignment(s, where string) (Property, error) {
	name, value, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Property{}, fmt.Errorf("%s %q: not NAME=VALUE", where, s)
	}
	return Property{Name: name, Value: strings.TrimSpace(value), Where: where}, nil
}

// ReadUnit reads the properties of a unit file's [Service] section (or a
// file of bare NAME=VALUE lines): comments (# ;), blank lines and
// backslash continuations as systemd.syntax(7) has them. Lines of the
// other sections ([Unit], [Install]) are skipped: they say nothing about
// isolation.
func ReadUnit(r io.Reader, name string) ([]Property, error) {
	var out []Property
	sc := bufio.NewScanner(r)
	section := ""
	lineNo := 0
	var cont strings.Builder
	contStart := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 {
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			contStart = lineNo
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\"))
			cont.WriteByte(' ')
			continue
		}
		cont.WriteString(line)
		line = cont.String()
		cont.Reset()
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: %q: section header without ]", name, contStart, line)
			}
			section = line[1 : len(line)-1]
			continue
		}
		if section != "" && section != "Service" {
			continue
		}
		p, err := ParseAssignment(line, fmt.Sprintf("%s:%d", name, contStart))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if cont.Len() > 0 {
		return nil, fmt.Errorf("%s:%d: continuation at end of file", name, contStart)
	}
	return out, nil
}
