package server

import (
	"encoding/json"
	"testing"
)

func TestApplyJSONPatch(t *testing.T) {
	doc := `{"a":{"b":[1,2,3]},"c":"x"}`
	for _, c := range []struct{ patch, want string }{
		{`[{"op":"add","path":"/a/b/-","value":4}]`, `{"a":{"b":[1,2,3,4]},"c":"x"}`},
		{`[{"op":"add","path":"/a/b/0","value":0}]`, `{"a":{"b":[0,1,2,3]},"c":"x"}`},
		{`[{"op":"remove","path":"/a/b/1"}]`, `{"a":{"b":[1,3]},"c":"x"}`},
		{`[{"op":"replace","path":"/c","value":"y"}]`, `{"a":{"b":[1,2,3]},"c":"y"}`},
		{`[{"op":"move","from":"/c","path":"/d"}]`, `{"a":{"b":[1,2,3]},"d":"x"}`},
		{`[{"op":"copy","from":"/a/b","path":"/e"}]`, `{"a":{"b":[1,2,3]},"c":"x","e":[1,2,3]}`},
		{`[{"op":"test","path":"/c","value":"x"},{"op":"add","path":"/f","value":true}]`, `{"a":{"b":[1,2,3]},"c":"x","f":true}`},
		{`[{"op":"add","path":"/a~1b","value":1}]`, `{"a":{"b":[1,2,3]},"a/b":1,"c":"x"}`},
	} {
		got, err := applyJSONPatch([]byte(doc), []byte(c.patch))
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.patch, got, err, c.want)
		}
	}
	for _, bad := range []string{
		`{}`, `[{"op":"nope","path":"/c"}]`, `[{"op":"remove","path":"/zz"}]`, `[{"op":"test","path":"/c","value":"y"}]`,
		`[{"op":"add","path":"/a/b/9","value":1}]`, `[{"op":"add","path":"c","value":1}]`, `[{"op":"remove","path":""}]`, `[{"op":"add","path":"/c"}]`,
	} {
		if _, err := applyJSONPatch([]byte(doc), []byte(bad)); err == nil {
			t.Errorf("%s applied", bad)
		}
	}
}

// FuzzJSONPatch: any patch on any document either fails or gives JSON;
// it never panics.
func FuzzJSONPatch(f *testing.F) {
	f.Add(`{"a":{"b":[1,2,3]},"c":"x"}`, `[{"op":"move","from":"/a","path":"/a/b/-"}]`)
	f.Add(`{"note":[{"text":"a"}]}`, `[{"op":"add","path":"/note/-","value":{"text":"b"}},{"op":"copy","from":"/note","path":"/x"}]`)
	f.Add(`[]`, `[{"op":"add","path":"/-","value":1}]`)
	f.Fuzz(func(t *testing.T, doc, patch string) {
		out, err := applyJSONPatch([]byte(doc), []byte(patch))
		if err == nil && !json.Valid(out) {
			t.Fatalf("patched document is not JSON: %q", out)
		}
	})
}
