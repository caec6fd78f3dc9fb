package fhir

import (
	"strings"
	"testing"
)

func TestUUIDv5KnownVectors(t *testing.T) {
	dns := mustParseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	tests := []struct {
		ns   [16]byte
		name string
		want string
	}{
		// RFC 9562 appendix A.4 (and Python's uuid.uuid5(NAMESPACE_DNS, "www.example.com")).
		{dns, "www.example.com", "2ed6657d-e927-568b-95e1-2665a8aea6a2"},
		// IDNamespace is derived from the URL namespace (Python: uuid.uuid5(NAMESPACE_URL, "https://pathway-fhir.org")).
		{nameSpaceURL, "https://pathway-fhir.org", IDNamespace},
	}
	for _, tt := range tests {
		if got := formatUUID(uuidV5(tt.ns, []byte(tt.name))); got != tt.want {
			t.Errorf("uuidV5(%s) = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	id := NewID("ngo-a", "case-17", "Task")
	if id != NewID("ngo-a", "case-17", "Task") {
		t.Fatal("NewID is not deterministic")
	}
	// Pinned, and checked independently with Python: uuid.uuid5(UUID(IDNamespace), "5:ngo-a,7:case-17,4:Task,").
	// Changing the namespace or the name encoding would re-key every resource.
	if want := "2498f8f9-b7ce-5e0c-bd6d-1f2423355f1c"; id != want {
		t.Errorf("NewID = %s, want %s (ids must never change)", id, want)
	}
	if !IsUUID(id) || !validIDString(id) || len(id) > 64 {
		t.Errorf("NewID = %q is not a lowercase UUID and FHIR id", id)
	}
	if id[14] != '5' || !strings.ContainsRune("89ab", rune(id[19])) {
		t.Errorf("NewID = %s: not version 5, RFC variant", id)
	}
	if got := FullURL(id); got != "urn:uuid:"+id {
		t.Errorf("FullURL = %s", got)
	}
}

func TestNewIDEncodingIsUnambiguous(t *testing.T) {
	// Each pair joins to the same string with a naive separator or concatenation.
	pairs := [][2][]string{
		{{"a|b", "c"}, {"a", "b|c"}},
		{{"ab", "c"}, {"a", "bc"}},
		{{"a", "b", ""}, {"a", "b"}},
		{{"a", "", "b"}, {"a", "b", ""}},
		{{"1:a,", "b"}, {"1:a", ",b"}},
		{{"a", "b", "Task"}, {"a", "bTask"}},
		{{"", ""}, {"", "", ""}},
	}
	for _, p := range pairs {
		x, y := p[0], p[1]
		if NewID(x[0], x[1], x[2:]...) == NewID(y[0], y[1], y[2:]...) {
			t.Errorf("NewID(%q) == NewID(%q)", x, y)
		}
	}
	seen := map[string]string{}
	for _, sys := range []string{"ngo-a", "ngo-b", "clinic"} {
		for _, rec := range []string{"1", "2", "10", "case-17"} {
			for _, typ := range []string{"Patient", "Task", "ServiceRequest", "Consent"} {
				id := NewID(sys, rec, typ)
				key := sys + "/" + rec + "/" + typ
				if prev, dup := seen[id]; dup {
					t.Errorf("NewID collision: %s and %s", prev, key)
				}
				seen[id] = key
			}
		}
	}
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"2ed6657d-e927-568b-95e1-2665a8aea6a2":  true,
		"2ED6657D-E927-568B-95E1-2665A8AEA6A2":  false, // Pathway writes lowercase only
		"2ed6657de927568b95e12665a8aea6a2":      false,
		"2ed6657d-e927-568b-95e1-2665a8aea6a":   false,
		"2ed6657d-e927-568b-95e1-2665a8aea6a2a": false,
		"2ed6657d_e927-568b-95e1-2665a8aea6a2":  false,
		"2ed6657g-e927-568b-95e1-2665a8aea6a2":  false,
		"":                                      false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v", s, got)
		}
	}
}
