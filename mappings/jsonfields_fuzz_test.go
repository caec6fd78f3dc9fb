package mappings

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzJSONFields feeds arbitrary JSON objects and refs to JSONFields.Lookup.
// It must never panic; values come only when it says the ref was found;
// the same lookup gives the same values; and a key written as the whole
// ref is always found.
func FuzzJSONFields(f *testing.F) {
	f.Add([]byte(`{"grp_referral/need":"housing legal","grp":{"a":[{"b":1},{"b":"x"}]}}`), "grp_referral/need")
	f.Add([]byte(`{"grp":{"a":[{"b":1},{"b":"x"},{"c":null}]}}`), "grp/a/b")
	f.Add([]byte(`{"a":{"b":{"c":[true,false,1.5e300]}}}`), "a.b.c")
	f.Add([]byte(`{"a":[[{"b":1}]],"x":{}}`), "a/b")
	f.Add([]byte(`{"":{"":1}}`), "/")
	f.Add([]byte(`{"a":{"b":2}}`), "a//.b")
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc map[string]any
		if dec.Decode(&doc) != nil || doc == nil {
			return
		}
		j := JSONFields(doc)
		vals, ok := j.Lookup(ref)
		if !ok && len(vals) > 0 {
			t.Fatalf("Lookup(%q) gave values without finding the ref", ref)
		}
		again, ok2 := j.Lookup(ref)
		if ok != ok2 || len(again) != len(vals) {
			t.Fatalf("Lookup(%q) is not deterministic", ref)
		}
		for i := range vals {
			if vals[i] != again[i] {
				t.Fatalf("Lookup(%q) is not deterministic", ref)
			}
		}
		for k := range doc {
			if _, found := j.Lookup(k); !found {
				t.Fatalf("the key %q is not found", k)
			}
		}
	})
}
