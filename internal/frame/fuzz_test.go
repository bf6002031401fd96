package frame

import (
	"bytes"
	"testing"
)

// Whatever the bytes, the reader returns frames or an error; it never
// panics, never hands out more fds than it was given, and a frame it
// returns encodes back to the bytes it came from.
func FuzzReader(f *testing.F) {
	for _, fr := range []*Frame{
		{Type: TypePlan, Payload: []byte(`{"kind":"init","steps":[{"op":"hostname","hostname":"x"}]}`)},
		{Type: TypeReady},
		{Type: TypeError, Payload: []byte("boom")},
	} {
		b, _ := Encode(fr)
		f.Add(b, uint8(0))
	}
	h := Header(TypeSeccompFd, 0, 1)
	f.Add(h[:], uint8(1))
	f.Add([]byte{Magic, byte(TypePlan), 3, 0, 1, 0, 0, 0, 'x'}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		q := &Queue{}
		for i := 0; i < int(nfds); i++ {
			q.Push(1000 + i)
		}
		r := NewReader(bytes.NewReader(data), q)
		consumed := 0
		for {
			fr, err := r.Next()
			if err != nil {
				break
			}
			b, err := Encode(fr)
			if err != nil {
				t.Fatalf("decoded frame does not encode: %v", err)
			}
			if !bytes.Equal(b, data[consumed:consumed+len(b)]) {
				t.Fatalf("re-encoded frame differs from its bytes")
			}
			consumed += len(b)
		}
		if q.Len() > int(nfds) {
			t.Fatalf("queue grew")
		}
	})
}

// Encoding then decoding any frame gives it back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(TypePlan), []byte("{}"), uint8(2))
	f.Add(uint8(TypeError), []byte("mount /proc: EPERM"), uint8(0))
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte, nfds uint8) {
		fr := &Frame{Type: Type(typ), Payload: payload}
		for i := 0; i < int(nfds); i++ {
			fr.Fds = append(fr.Fds, 10+i)
		}
		b, err := Encode(fr)
		if err != nil {
			return
		}
		q := &Queue{}
		q.Push(fr.Fds...)
		got, err := NewReader(bytes.NewReader(b), q).Next()
		if _, ok := typeNames[Type(typ)]; !ok {
			if err == nil {
				t.Fatalf("unknown type %d accepted", typ)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != fr.Type || !bytes.Equal(got.Payload, fr.Payload) || len(got.Fds) != len(fr.Fds) {
			t.Fatalf("round trip: got %v", got)
		}
	})
}
