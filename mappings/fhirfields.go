package mappings

// FHIR sources: how a clinic's FHIR document becomes records a mapping reads.

import (
	"encoding/json"
	"strconv"
	"strings"
)

// FHIRRecord is one referral found in a FHIR document: a ServiceRequest
// and the resources it refers to.
type FHIRRecord struct {
	// Path locates the ServiceRequest in the document, as a FHIRPath:
	// "Bundle.entry[2]"; "" when the document is the ServiceRequest.
	Path string
	// Fields reads the record; nil when Err is set.
	Fields *FHIRFields
	// Err is why the record cannot be converted, a *RecordError naming
	// elements, never values.
	Err error
}

// FHIRRecords splits a decoded FHIR JSON document (decoded with UseNumber)
// into referrals: one per ServiceRequest. The document is a Bundle of any
// type (transaction, batch, collection, searchset, message, document),
// whose top-level entries are read, or a single ServiceRequest.
//
// Each ServiceRequest's subject must resolve to a Patient: contained in the
// ServiceRequest ("#p1"), or an entry of the Bundle, found by fullUrl
// ("urn:uuid:...", an absolute URL) or by type and id ("Patient/123",
// resolved against the entry's base URL when its fullUrl has one). A
// referral whose subject does not resolve, or is not a Patient, is an
// error record: Pathway never guesses who a referral is for. So is a
// document that is neither a Bundle nor a ServiceRequest, and a Bundle
// without a ServiceRequest.
func FHIRRecords(doc map[string]any) []FHIRRecord {
	fail := func(path, from, reason string) []FHIRRecord {
		return []FHIRRecord{{Path: path, Err: &RecordError{Problems: []FieldProblem{{Target: "record", From: from, Reason: reason}}}}}
	}
	switch rt, _ := doc["resourceType"].(string); rt {
	case "ServiceRequest":
		idx := &fhirIndex{byURL: map[string]fhirEntry{}, byTypeID: map[string][]fhirEntry{}}
		return []FHIRRecord{idx.record("", fhirEntry{resource: doc}, nil, doc)}
	case "Bundle":
		idx := newFHIRIndex(doc)
		var out []FHIRRecord
		for i, e := range idx.entries {
			if rt, _ := e.resource["resourceType"].(string); rt == "ServiceRequest" {
				out = append(out, idx.record("Bundle.entry["+strconv.Itoa(i)+"]", e, doc, nil))
			}
		}
		if len(out) == 0 {
			return fail("", "Bundle.entry", "the Bundle holds no ServiceRequest: there is no referral to convert")
		}
		return out
	case "":
		return fail("", "resourceType", "not a FHIR resource: resourceType is missing")
	default:
		return fail("", "resourceType", "the document is a "+fhirSafeName(rt)+": expected a Bundle or a ServiceRequest")
	}
}

// fhirSafeName returns a resource type for a reason, or "resource" when it
// is not shaped like one (a reason never quotes arbitrary input).
func fhirSafeName(s string) string {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return "resource"
	}
	for i := range len(s) {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "resource"
		}
	}
	return s
}

// fhirEntry is a Bundle entry: its fullUrl and resource.
type fhirEntry struct {
	fullURL  string
	resource map[string]any
	entry    map[string]any
}

// fhirIndex finds the entries of a Bundle by fullUrl and by type and id.
type fhirIndex struct {
	entries  []fhirEntry
	byURL    map[string]fhirEntry
	byTypeID map[string][]fhirEntry
}

func newFHIRIndex(bundle map[string]any) *fhirIndex {
	idx := &fhirIndex{byURL: map[string]fhirEntry{}, byTypeID: map[string][]fhirEntry{}}
	list, _ := bundle["entry"].([]any)
	for _, raw := range list {
		e, _ := raw.(map[string]any)
		res, _ := e["resource"].(map[string]any)
		fe := fhirEntry{resource: res, entry: e}
		fe.fullURL, _ = e["fullUrl"].(string)
		idx.entries = append(idx.entries, fe)
		if res == nil {
			continue
		}
		if fe.fullURL != "" {
			idx.byURL[fe.fullURL] = fe
		}
		rt, _ := res["resourceType"].(string)
		if id, _ := res["id"].(string); rt != "" && id != "" {
			idx.byTypeID[rt+"/"+id] = append(idx.byTypeID[rt+"/"+id], fe)
		}
	}
	return idx
}

// record forms the record of the ServiceRequest in entry e.
func (idx *fhirIndex) record(path string, e fhirEntry, bundle, lone map[string]any) FHIRRecord {
	f := &FHIRFields{idx: idx, sr: e.resource, entry: e.entry, entryURL: e.fullURL, bundle: bundle}
	fail := func(reason string) FHIRRecord {
		return FHIRRecord{Path: path, Err: &RecordError{Problems: []FieldProblem{{Target: "record", From: "ServiceRequest.subject", Reason: reason}}}}
	}
	subject, _ := e.resource["subject"].(map[string]any)
	if subject == nil {
		return fail("missing: a referral must say who it is for")
	}
	ref, _ := subject["reference"].(string)
	if ref == "" {
		return fail("no literal reference (only an identifier or a display): the Patient cannot be found in the document")
	}
	res, url := idx.resolve(ref, e.resource, e.fullURL)
	if res == nil {
		where := "the Bundle"
		if lone != nil {
			where = "the ServiceRequest's contained resources"
		}
		return fail("does not resolve to a resource in " + where + ": the Patient must travel with the referral")
	}
	if rt, _ := res["resourceType"].(string); rt != "Patient" {
		return fail("is a " + fhirSafeName(rt) + ", not a Patient: only referrals for a Patient are converted")
	}
	f.patient, f.patientURL, f.patientIn = res, url, res
	if strings.HasPrefix(ref, "#") {
		f.patientIn = e.resource
	}
	return FHIRRecord{Path: path, Fields: f}
}

// resolve finds the resource a reference points to, from the top-level
// resource holding it (container, for "#id") in the entry with fullUrl
// base, and returns it with the fullUrl of its entry (base, for a
// contained resource). It returns nil when the reference does not resolve,
// or resolves to more than one entry.
func (idx *fhirIndex) resolve(ref string, container map[string]any, base string) (map[string]any, string) {
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		list, _ := container["contained"].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok && id != "" && m["id"] == id {
				return m, base
			}
		}
		return nil, ""
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if e, ok := idx.byURL[ref]; ok {
		return e.resource, e.fullURL
	}
	if strings.Contains(ref, ":") {
		return nil, "" // an absolute URL or a URN that is not in the Bundle
	}
	// A relative reference Type/id: against the base of the entry holding
	// it when that is a RESTful URL (base/Type/id), else by type and id
	// when only one entry has them.
	if strings.Contains(base, "://") {
		if i := strings.LastIndexByte(base, '/'); i > 0 {
			if j := strings.LastIndexByte(base[:i], '/'); j > 0 {
				if e, ok := idx.byURL[base[:j+1]+ref]; ok {
					return e.resource, e.fullURL
				}
			}
		}
	}
	if list := idx.byTypeID[ref]; len(list) == 1 {
		return list[0].resource, list[0].fullURL
	}
	return nil, ""
}

// FHIRFields reads one referral of a FHIR document (see FHIRRecords) for a
// mapping. A reference is a path in FHIRPath's dotted form from one of the
// roots
//
//	ServiceRequest  the referral
//	Patient         its subject
//	Bundle          the document, when it is a Bundle
//	Entry           the ServiceRequest's Bundle entry (fullUrl, request, search)
//
// through elements as FHIR JSON spells them ("Patient.name.given",
// "ServiceRequest.identifier.value"). A step may pick one element of a list
// by its position from 0 ("Patient.name[0].given"); where(key='value')
// keeps the elements whose child has that value
// ("Patient.telecom.where(system='phone').value"); first() keeps the first
// element reached; and resolve() follows a Reference to the resource it
// points to, within the document
// ("ServiceRequest.requester.resolve().name.family"; from a
// PractitionerRole, "...resolve().practitioner.resolve().name.family").
//
// A path gives one value per element it reaches: lists are walked, and an
// element of a list that lacks the next step gives "", so that two paths
// through the same list line up ("Patient.identifier.value" and
// "Patient.identifier.system"). A Coding gives "system|code|display" (or
// "system|code", or the code alone without a system), the form code
// tables and unmapped: code read; other objects give "". Numbers and
// booleans give their JSON text.
type FHIRFields struct {
	idx        *fhirIndex
	sr         map[string]any
	entry      map[string]any
	entryURL   string
	patient    map[string]any
	patientURL string         // the Patient's fullUrl (the ServiceRequest's, when contained)
	patientIn  map[string]any // the resource holding it: itself, or the ServiceRequest
	bundle     map[string]any
}

// fhirNode is a value reached by a path, with the top-level resource it sits
// in (for contained references) and that resource's fullUrl.
type fhirNode struct {
	v         any
	container map[string]any
	base      string
	missing   bool
}

// Lookup returns the values at ref; ok is false when the path reaches nothing.
func (f *FHIRFields) Lookup(ref string) ([]string, bool) {
	steps := fhirSteps(ref)
	if len(steps) == 0 {
		return nil, false
	}
	var root any
	container, base := f.sr, f.entryURL
	switch steps[0] {
	case "ServiceRequest":
		root = f.sr
	case "Patient":
		root, container, base = f.patient, f.patientIn, f.patientURL
	case "Bundle":
		root, container, base = f.bundle, nil, ""
	case "Entry":
		root = f.entry
	}
	if m, ok := root.(map[string]any); !ok || m == nil {
		return nil, false
	}
	nodes := []fhirNode{{v: root, container: container, base: base}}
	for _, step := range steps[1:] {
		nodes = f.step(nodes, step)
	}
	var out []string
	found := false
	for _, n := range nodes {
		if n.missing {
			out = append(out, "")
			continue
		}
		s, ok := fhirScalar(n.v)
		found = found || ok
		out = append(out, s)
	}
	if !found {
		return nil, false
	}
	return out, true
}

// step applies one path step to every node.
func (f *FHIRFields) step(nodes []fhirNode, step string) []fhirNode {
	var out []fhirNode
	if key, want, ok := fhirWhere(step); ok {
		for _, n := range nodes {
			m, _ := n.v.(map[string]any)
			if got, ok := fhirScalar(m[key]); !n.missing && ok && got == want {
				out = append(out, n)
			}
		}
		return out
	}
	if step == "first()" {
		for _, n := range nodes {
			if !n.missing {
				return []fhirNode{n}
			}
		}
		return []fhirNode{{missing: true}}
	}
	if step == "resolve()" {
		for _, n := range nodes {
			m, _ := n.v.(map[string]any)
			ref, _ := m["reference"].(string)
			if n.missing || ref == "" {
				out = append(out, fhirNode{missing: true})
				continue
			}
			res, url := f.idx.resolve(ref, n.container, n.base)
			if res == nil {
				out = append(out, fhirNode{missing: true})
				continue
			}
			next := fhirNode{v: res, container: res, base: url}
			if strings.HasPrefix(ref, "#") {
				next.container = n.container // contained resources share their container's
			}
			out = append(out, next)
		}
		return out
	}
	key, index := step, -1
	if i := strings.IndexByte(step, '['); i > 0 && strings.HasSuffix(step, "]") {
		n, err := strconv.Atoi(step[i+1 : len(step)-1])
		if err == nil && n >= 0 {
			key, index = step[:i], n
		}
	}
	for _, n := range nodes {
		m, _ := n.v.(map[string]any)
		v, ok := m[key]
		if n.missing || !ok || v == nil {
			out = append(out, fhirNode{missing: true})
			continue
		}
		list, isList := v.([]any)
		switch {
		case isList && index >= 0:
			if index < len(list) {
				out = append(out, fhirNode{v: list[index], container: n.container, base: n.base})
			} else {
				out = append(out, fhirNode{missing: true})
			}
		case isList:
			for _, e := range list {
				out = append(out, fhirNode{v: e, container: n.container, base: n.base})
			}
		case index > 0:
			out = append(out, fhirNode{missing: true})
		default:
			out = append(out, fhirNode{v: v, container: n.container, base: n.base})
		}
	}
	return out
}

// fhirWhere reads a step where(key='value'): a filter keeping the elements
// whose child key has that value (as text: where(preferred='true')).
func fhirWhere(step string) (key, value string, ok bool) {
	inner, ok := strings.CutPrefix(step, "where(")
	if !ok {
		return "", "", false
	}
	if inner, ok = strings.CutSuffix(inner, ")"); !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(inner, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return key, value, ok && key != ""
}

// fhirSteps splits a path on dots outside brackets, parentheses and quotes.
func fhirSteps(ref string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(ref); i++ {
		if quote != 0 {
			if ref[i] == quote {
				quote = 0
			}
			continue
		}
		switch ref[i] {
		case '\'', '"':
			quote = ref[i]
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, ref[start:i])
				start = i + 1
			}
		}
	}
	out = append(out, ref[start:])
	for _, s := range out {
		if s == "" {
			return nil
		}
	}
	return out
}

// fhirScalar returns the text of a value: primitives as written, a Coding
// as system|code|display. ok is false for anything else.
func fhirScalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case map[string]any:
		return fhirCoding(x)
	}
	return "", false
}

// fhirCodingKeys are the elements a Coding may have.
var fhirCodingKeys = map[string]bool{"id": true, "extension": true, "system": true, "version": true, "code": true, "display": true, "userSelected": true}

// fhirCoding writes a Coding as system|code|display; a "|" inside the
// display is written "/" so the three parts stay apart.
func fhirCoding(m map[string]any) (string, bool) {
	code, _ := m["code"].(string)
	if code == "" {
		return "", false
	}
	for k := range m {
		if !fhirCodingKeys[k] {
			return "", false
		}
	}
	system, _ := m["system"].(string)
	if system == "" {
		return code, true
	}
	s := system + "|" + code
	if d, _ := m["display"].(string); d != "" {
		s += "|" + strings.ReplaceAll(d, "|", "/")
	}
	return s, true
}
