package fhir

import (
	"encoding/json"
	"strconv"
	"strings"
)

// EntryResult is what validation found about one Bundle entry.
type EntryResult struct {
	// Index is the entry's position in Bundle.entry, from 0.
	Index        int
	ResourceType string
	ID           string
	// Issues have full paths (Bundle.entry[2].resource.Task.status).
	Issues Issues
}

// Valid reports whether the entry has no error issues.
func (e EntryResult) Valid() bool { return !e.Issues.HasErrors() }

// SplitBundle divides what Parse found about a Bundle into the issues of the
// Bundle itself and those of each entry, so a report can point at entry 2
// rather than at the whole file.
//
// When the Bundle could not be parsed, google/fhir stops before validating,
// so entries would look cleaner than they are; SplitBundle then parses each
// entry's resource on its own to find all of its issues.
func SplitBundle(data []byte, r Result) (bundle Issues, entries []EntryResult) {
	if r.ResourceType != "Bundle" {
		return r.Issues, nil
	}
	headers := BundleEntryHeaders(data)
	entries = make([]EntryResult, len(headers))
	for i, h := range headers {
		entries[i] = EntryResult{Index: i, ResourceType: h.ResourceType, ID: h.ID}
	}
	for _, is := range r.Issues {
		if n, ok := entryIndex(is.Path); ok && n < len(entries) {
			entries[n].Issues = append(entries[n].Issues, is)
			continue
		}
		bundle = append(bundle, is)
	}
	if r.Resource != nil || len(entries) == 0 {
		return bundle, entries
	}
	var raw struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if json.Unmarshal(data, &raw) != nil || len(raw.Entry) != len(entries) {
		return bundle, entries
	}
	for i, entry := range raw.Entry {
		var e struct {
			Resource json.RawMessage `json:"resource"`
		}
		if json.Unmarshal(entry, &e) != nil || len(e.Resource) == 0 || string(e.Resource) == "null" {
			continue
		}
		sub := Parse(e.Resource)
		prefix := "Bundle.entry[" + strconv.Itoa(i) + "].resource."
		for _, is := range sub.Issues {
			if is.Path == "(root)" || is.Path == "" {
				is.Path = strings.TrimSuffix(prefix, ".")
			} else {
				is.Path = prefix + is.Path
			}
			entries[i].Issues = append(entries[i].Issues, is)
		}
		entries[i].Issues = dedupe(entries[i].Issues)
		entries[i].Issues.sort()
	}
	return bundle, entries
}

// entryIndex returns n for a path under Bundle.entry[n].
func entryIndex(path string) (int, bool) {
	const p = "Bundle.entry["
	if !strings.HasPrefix(path, p) {
		return 0, false
	}
	end := strings.IndexByte(path[len(p):], ']')
	if end < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(path[len(p) : len(p)+end])
	return n, err == nil
}
