package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every validation error (errors.Is(err, spec.ErrInvalid)).
var ErrInvalid = errors.New("invalid container configuration")

// FieldError reports one problem with one field of config.json. Field is the
// JSON path of the offending value, e.g. "mounts[3].destination"; it is empty
// when the problem is with the document as a whole.
type FieldError struct {
	Field string
	Msg   string
}

// lineBreaks keeps Error() on one line even when the message quotes
// user-controlled text verbatim (paths, hostnames): callers print it as a
// single log line and tests rely on that.
var lineBreaks = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

func (e *FieldError) Error() string {
	if e.Field == "" {
		return lineBreaks.Replace(e.Msg)
	}
	return lineBreaks.Replace(e.Field + ": " + e.Msg)
}

// Unwrap lets callers test for ErrInvalid without knowing the concrete type.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// at renders an array element path: at("mounts", 3) == "mounts[3]".
func at(base string, i int) string { return fmt.Sprintf("%s[%d]", base, i) }

// keyed renders a map entry path. Map keys such as sysctl names contain dots,
// so they are always quoted to keep the path unambiguous.
func keyed(base, key string) string { return fmt.Sprintf("%s[%q]", base, key) }

// notAbs is the shared wording for path fields that must be absolute.
func notAbs(field, got string) error {
	if got == "" {
		return fieldErr(field, "must not be empty")
	}
	return fieldErr(field, "must be an absolute path, got %q", got)
}
