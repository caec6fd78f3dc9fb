package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
)

// decodeFHIR decodes a document as the connectors do: with UseNumber.
func decodeFHIR(t testing.TB, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const fhirTestBundle = `{
  "resourceType": "Bundle", "type": "collection",
  "entry": [
    {"fullUrl": "https://clinic.example/fhir/ServiceRequest/sr1", "resource": {
      "resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
      "identifier": [{"system": "https://clinic.example/sid/ref", "value": "R1"}, {"value": "R1-bis"}],
      "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "410606002", "display": "Social | service"}, {"code": "local"}]}, {"text": "text only"}],
      "subject": {"reference": "Patient/p1"},
      "requester": {"reference": "PractitionerRole/role1"},
      "performer": [{"reference": "#org"}],
      "contained": [{"resourceType": "Organization", "id": "org", "name": "Contained Org"}],
      "quantityQuantity": {"value": 2, "system": "http://unitsofmeasure.org", "code": "d"}
    }},
    {"fullUrl": "https://clinic.example/fhir/Patient/p1", "resource": {
      "resourceType": "Patient", "id": "p1", "active": true, "multipleBirthInteger": 2,
      "name": [{"family": "Haddad", "given": ["Amal", "L"]}, {"given": ["Umm Karim"]}],
      "telecom": [{"system": "email", "value": "a@example.org"}, {"system": "phone", "value": "+44 1"}, {"system": "phone", "value": "+44 2"}],
      "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
                        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "ar"}]}, "preferred": true}]
    }},
    {"fullUrl": "https://clinic.example/fhir/PractitionerRole/role1", "resource": {
      "resourceType": "PractitionerRole", "id": "role1",
      "practitioner": {"reference": "Practitioner/pr1"}, "organization": {"reference": "urn:uuid:6b7f8e64-2e0a-4f6c-9a51-9d0e5b2c1a10"}
    }},
    {"fullUrl": "https://clinic.example/fhir/Practitioner/pr1", "resource": {
      "resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Okafor"}]
    }},
    {"fullUrl": "https://other.example/fhir/Practitioner/pr1", "resource": {
      "resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Someone Else"}]
    }},
    {"fullUrl": "urn:uuid:6b7f8e64-2e0a-4f6c-9a51-9d0e5b2c1a10", "resource": {
      "resourceType": "Organization", "name": "Riverside Clinic"
    }}
  ]
}`

func TestFHIRFieldsLookup(t *testing.T) {
	recs := FHIRRecords(decodeFHIR(t, []byte(fhirTestBundle)))
	if len(recs) != 1 || recs[0].Err != nil || recs[0].Path != "Bundle.entry[0]" {
		t.Fatalf("records: %+v", recs)
	}
	f := recs[0].Fields
	tests := []struct {
		ref  string
		want []string // nil: not found
	}{
		{"ServiceRequest.id", []string{"sr1"}},
		{"ServiceRequest.identifier.value", []string{"R1", "R1-bis"}},
		{"ServiceRequest.identifier.system", []string{"https://clinic.example/sid/ref", ""}}, // positions line up with the values
		{"ServiceRequest.identifier[1].value", []string{"R1-bis"}},
		{"ServiceRequest.identifier[2].value", nil},
		// A Coding is system|code|display ("|" in a display becomes "/"), or the code alone without a system.
		{"ServiceRequest.category.coding", []string{"http://snomed.info/sct|410606002|Social / service", "local", ""}},
		{"ServiceRequest.category.text", []string{"", "text only"}},
		{"ServiceRequest.category", nil}, // a CodeableConcept is not a value
		{"ServiceRequest.quantityQuantity", nil},
		{"ServiceRequest.quantityQuantity.value", []string{"2"}},
		{"Patient.active", []string{"true"}},
		{"Patient.multipleBirthInteger", []string{"2"}},
		{"Patient.name.family", []string{"Haddad", ""}},
		{"Patient.name[0].given", []string{"Amal", "L"}},
		{"Patient.name.given[0]", []string{"Amal", "Umm Karim"}},
		{"Patient.telecom.where(system='phone').value", []string{"+44 1", "+44 2"}},
		{"Patient.telecom.where(system='phone').first().value", []string{"+44 1"}},
		{`Patient.telecom.where(system="fax").first().value`, nil},
		{"Patient.communication.where(preferred='true').language.coding.code", []string{"ar"}},
		{"Patient.birthDate", nil},
		// resolve(): relative references against the entry's base, urn:uuid
		// by fullUrl, "#id" among the contained resources.
		{"ServiceRequest.subject.resolve().name[0].family", []string{"Haddad"}},
		{"ServiceRequest.requester.resolve().resourceType", []string{"PractitionerRole"}},
		{"ServiceRequest.requester.resolve().practitioner.resolve().name.family", []string{"Okafor"}},
		{"ServiceRequest.requester.resolve().organization.resolve().name", []string{"Riverside Clinic"}},
		{"ServiceRequest.performer.resolve().name", []string{"Contained Org"}},
		{"ServiceRequest.subject.display", nil},
		{"Entry.fullUrl", []string{"https://clinic.example/fhir/ServiceRequest/sr1"}},
		{"Bundle.type", []string{"collection"}},
		{"Bundle.entry.resource.resourceType", []string{"ServiceRequest", "Patient", "PractitionerRole", "Practitioner", "Practitioner", "Organization"}},
		{"Nothing.id", nil},
		{"Patient..id", nil},
	}
	for _, tc := range tests {
		got, ok := f.Lookup(tc.ref)
		if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.ref, got, ok, tc.want)
		}
	}
}

func TestFHIRResolveAmbiguous(t *testing.T) {
	// A relative reference from an entry without a RESTful base resolves
	// by type and id only when exactly one entry has them.
	doc := decodeFHIR(t, []byte(`{"resourceType": "Bundle", "type": "collection", "entry": [
	  {"fullUrl": "urn:uuid:6b7f8e64-2e0a-4f6c-9a51-9d0e5b2c1a11", "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
	     "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/pr1"}}},
	  {"fullUrl": "https://a.example/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
	  {"fullUrl": "https://a.example/fhir/Practitioner/pr1", "resource": {"resourceType": "Practitioner", "id": "pr1"}},
	  {"fullUrl": "https://b.example/fhir/Practitioner/pr1", "resource": {"resourceType": "Practitioner", "id": "pr1"}}
	]}`))
	recs := FHIRRecords(doc)
	if len(recs) != 1 || recs[0].Err != nil {
		t.Fatalf("records: %+v", recs)
	}
	if got, ok := recs[0].Fields.Lookup("ServiceRequest.requester.resolve().id"); ok {
		t.Errorf("an ambiguous reference resolved to %q", got)
	}
	if got, _ := recs[0].Fields.Lookup("Patient.id"); !reflect.DeepEqual(got, []string{"p1"}) {
		t.Errorf("Patient.id = %q", got)
	}
}

func TestFHIRRecordsErrors(t *testing.T) {
	tests := []struct {
		name, doc, path, reason string
	}{
		{"not a referral", `{"resourceType": "Patient", "id": "p"}`, "", "the document is a Patient: expected a Bundle or a ServiceRequest"},
		{"no resourceType", `{"id": "p"}`, "", "resourceType is missing"},
		{"odd resourceType", `{"resourceType": "Amal Haddad"}`, "", "the document is a resource: expected"},
		{"empty bundle", `{"resourceType": "Bundle", "type": "collection"}`, "", "the Bundle holds no ServiceRequest"},
		{"no subject", `{"resourceType": "ServiceRequest", "status": "active"}`, "", "missing: a referral must say who it is for"},
		{"display only", `{"resourceType": "ServiceRequest", "subject": {"display": "Amal Haddad"}}`, "", "no literal reference"},
		{"not contained", `{"resourceType": "ServiceRequest", "subject": {"reference": "Patient/p1"}}`, "", "does not resolve to a resource in the ServiceRequest's contained resources"},
		{"not in bundle", `{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "ServiceRequest", "subject": {"reference": "Patient/p1"}}}]}`,
			"Bundle.entry[0]", "does not resolve to a resource in the Bundle"},
		{"a group", `{"resourceType": "ServiceRequest", "subject": {"reference": "#g"}, "contained": [{"resourceType": "Group", "id": "g"}]}`,
			"", "is a Group, not a Patient"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := FHIRRecords(decodeFHIR(t, []byte(tc.doc)))
			if len(recs) != 1 || recs[0].Fields != nil || recs[0].Path != tc.path {
				t.Fatalf("records: %+v", recs)
			}
			var re *RecordError
			if !errors.As(recs[0].Err, &re) || !strings.Contains(re.Error(), tc.reason) {
				t.Errorf("error %v, want one saying %q", recs[0].Err, tc.reason)
			}
			if strings.Contains(re.Error(), "Amal") {
				t.Errorf("the reason quotes a value: %v", re)
			}
		})
	}
}

func TestFHIRRecordsContainedPatient(t *testing.T) {
	data, err := os.ReadFile("../testdata/mappings/fhir-referral-servicerequest.json")
	if err != nil {
		t.Fatal(err)
	}
	recs := FHIRRecords(decodeFHIR(t, data))
	if len(recs) != 1 || recs[0].Err != nil || recs[0].Path != "" {
		t.Fatalf("records: %+v", recs)
	}
	m, err := Builtin("fhir-referral")
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Apply(recs[0].Fields)
	if err != nil {
		t.Fatal(err)
	}
	if r.Patient.FamilyName != "Ahmadi" || r.Patient.BirthDate != "2001" || !*r.Patient.InterpreterNeeded ||
		r.Patient.PreferredLanguage != "fa-AF" || r.Practitioner.FamilyName != "Lindqvist" ||
		r.RecordID != "https://northside-mhs.example/fhir/sid/referral|NMHS-R-014" || r.Service.Priority != "asap" {
		t.Errorf("referral: %+v", r)
	}
}

// fhirCorpusDirs lists the folders of the public FHIR examples the corpus
// test reads: the copies under testdata always, the whole shared corpus
// when it is present (PATHWAY_CORPUS, or ../../shared/corpus).
func fhirCorpusDirs(t *testing.T) []string {
	dirs := []string{
		"../testdata/fhir-r4-examples/ServiceRequest", "../testdata/fhir-r4-examples/Patient",
		"../testdata/fhir-r4-examples/Practitioner", "../testdata/fhir-r4-examples/PractitionerRole",
		"../testdata/fhir-r4-examples/Organization",
		"../testdata/mappings/fhir-corpus/sdoh_clinicalcare", "../testdata/mappings/fhir-corpus/bser",
	}
	corpus := os.Getenv("PATHWAY_CORPUS")
	if corpus == "" {
		corpus = "../../shared/corpus"
	}
	if _, err := os.Stat(filepath.Join(corpus, "ig-examples")); err == nil {
		dirs = append(dirs, filepath.Join(corpus, "ig-examples", "sdoh_clinicalcare", "instances"), filepath.Join(corpus, "ig-examples", "bser", "instances"))
		for _, typ := range []string{"ServiceRequest", "Patient", "Practitioner", "PractitionerRole", "Organization"} {
			dirs = append(dirs, filepath.Join(corpus, "fhir-r4-examples", typ))
		}
	} else {
		t.Logf("shared corpus not found at %s: checking the copies under testdata only", corpus)
	}
	return dirs
}

// fhirCorpus indexes example resources by "Type/id".
type fhirCorpus map[string][]byte

func loadFHIRCorpus(t *testing.T, dirs []string) (fhirCorpus, []string) {
	c := fhirCorpus{}
	var srs []string
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.json"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var head struct{ ResourceType, ID string }
			if json.Unmarshal(data, &head) != nil || head.ID == "" {
				continue
			}
			key := head.ResourceType + "/" + head.ID
			if _, dup := c[key]; dup {
				continue
			}
			c[key] = data
			if head.ResourceType == "ServiceRequest" {
				srs = append(srs, key)
			}
		}
	}
	return c, srs
}

// bundle assembles what a clinic would send: a collection Bundle with the
// ServiceRequest and, found among the examples by type and id, its
// subject, its requester and a PractitionerRole's practitioner and
// organization. Every fullUrl is https://clinic.example/fhir/Type/id, so
// relative references resolve against it. subject, when not "", replaces
// the ServiceRequest's subject reference.
func (c fhirCorpus) bundle(t *testing.T, key, subject string) map[string]any {
	sr := decodeFHIR(t, c[key])
	if subject != "" {
		sr["subject"] = map[string]any{"reference": subject}
	}
	entries := []any{map[string]any{"fullUrl": "https://clinic.example/fhir/" + key, "resource": sr}}
	seen := map[string]bool{key: true}
	var add func(res map[string]any, elems ...string)
	add = func(res map[string]any, elems ...string) {
		for _, el := range elems {
			ref, _ := res[el].(map[string]any)
			target, _ := ref["reference"].(string)
			if data, ok := c[target]; ok && !seen[target] {
				seen[target] = true
				r := decodeFHIR(t, data)
				entries = append(entries, map[string]any{"fullUrl": "https://clinic.example/fhir/" + target, "resource": r})
				add(r, "practitioner", "organization")
			}
		}
	}
	add(sr, "subject", "requester")
	return map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries}
}

// TestFHIRReferralCorpus converts the public ServiceRequest examples (the
// official R4 examples, Gravity SDOH Clinical Care, BSeR), each with the
// resources it refers to, and checks that every one is either converted
// with the clinic's identifiers, name, birth date, gender and priority
// kept, or rejected with a reason that says why.
func TestFHIRReferralCorpus(t *testing.T) {
	m, err := Builtin("fhir-referral")
	if err != nil {
		t.Fatal(err)
	}
	corpus, srs := loadFHIRCorpus(t, fhirCorpusDirs(t))
	if len(srs) < 20 {
		t.Fatalf("only %d ServiceRequest examples found", len(srs))
	}
	converted, rejected := 0, 0
	for _, key := range srs {
		subject := ""
		if strings.HasPrefix(key, "ServiceRequest/servicerequest-bser-referral-servicerequest-arthritis") {
			// BSeR's example refers to a US Core patient that the IG does
			// not publish; a clinic would send the BSeR Patient of the same
			// person.
			subject = "Patient/patient-bser-patient-eve-everywoman"
		}
		doc := corpus.bundle(t, key, subject)
		t.Run(key, func(t *testing.T) {
			recs := FHIRRecords(doc)
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			sr := decodeFHIR(t, corpus[key])
			status, _ := sr["status"].(string)
			intent, _ := sr["intent"].(string)
			var why string
			var r Referral
			err := recs[0].Err
			if err == nil {
				r, err = m.Apply(recs[0].Fields)
			}
			var bundleJSON []byte
			if err == nil {
				bundleJSON, err = Encode(r)
			}
			if err != nil {
				why = err.Error()
			}
			switch {
			case recs[0].Err != nil:
				if !strings.Contains(why, "ServiceRequest.subject") {
					t.Errorf("got %q, want the subject reason", why)
				}
			case status != "active":
				if !strings.Contains(why, "ServiceRequest.status is not active") {
					t.Errorf("status %s: got %q, want the status reason", status, why)
				}
			case intent != "order" && intent != "original-order" && intent != "reflex-order" && intent != "instance-order":
				if !strings.Contains(why, "ServiceRequest.intent is not an order") {
					t.Errorf("intent %s: got %q, want the intent reason", intent, why)
				}
			case err != nil:
				t.Errorf("an active order was rejected: %v", err)
			}
			if err != nil {
				rejected++
				return
			}
			converted++
			fhirCheckAgreement(t, sr, recs[0].Fields, bundleJSON)
		})
	}
	t.Logf("%d ServiceRequest examples: %d converted, %d rejected", len(srs), converted, rejected)
	if converted < 8 {
		t.Errorf("only %d examples converted", converted)
	}
}

// fhirCheckAgreement checks that what the clinic sent is in the bundle:
// every identifier of the ServiceRequest and the Patient (its system too,
// when the clinic gave one), the Patient's first family name, birth date
// and gender, the priority and authoredOn, and the requesting
// practitioner's family name.
func fhirCheckAgreement(t *testing.T, sr map[string]any, f *FHIRFields, bundleJSON []byte) {
	t.Helper()
	if r := fhir.Parse(bundleJSON); !r.Valid() {
		t.Fatalf("bundle invalid: %v", r.Issues)
	}
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundleJSON, &b); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range b.Entry {
		rt, _ := e.Resource["resourceType"].(string)
		if out[rt] == nil {
			out[rt] = e.Resource
		}
	}
	idsKept := func(what string, in []string, ins []string, got any) {
		list, _ := got.([]any)
		for i, v := range in {
			if v == "" {
				continue
			}
			system := ""
			if i < len(ins) {
				system = ins[i]
			}
			found := false
			for _, o := range list {
				om, _ := o.(map[string]any)
				if om["value"] == v && (system == "" || om["system"] == system) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s identifier %d (%s|%s) is not in the bundle: %v", what, i, system, v, got)
			}
		}
	}
	lookup := func(ref string) []string { v, _ := f.Lookup(ref); return v }
	one := func(ref string) string {
		if v := lookup(ref); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	idsKept("ServiceRequest", lookup("ServiceRequest.identifier.value"), lookup("ServiceRequest.identifier.system"), out["ServiceRequest"]["identifier"])
	idsKept("Patient", lookup("Patient.identifier.value"), lookup("Patient.identifier.system"), out["Patient"]["identifier"])
	if fam := one("Patient.name[0].family"); fam != "" {
		names, _ := out["Patient"]["name"].([]any)
		if len(names) == 0 || names[0].(map[string]any)["family"] != fam {
			t.Errorf("Patient family name: got %v, want %s", names, fam)
		}
	}
	for _, el := range []string{"birthDate", "gender"} {
		if want := one("Patient." + el); want != "" && out["Patient"][el] != want {
			t.Errorf("Patient.%s: got %v, want %s", el, out["Patient"][el], want)
		}
	}
	if want, _ := sr["priority"].(string); want != "" && out["ServiceRequest"]["priority"] != want {
		t.Errorf("priority: got %v, want %s", out["ServiceRequest"]["priority"], want)
	}
	if want, _ := sr["authoredOn"].(string); want != "" {
		if got, _ := out["ServiceRequest"]["authoredOn"].(string); !fhirSameInstant(got, want) {
			t.Errorf("authoredOn: got %s, want %s", got, want)
		}
	}
	if fam := one("ServiceRequest.requester.resolve().name[0].family") + one("ServiceRequest.requester.resolve().practitioner.resolve().name[0].family"); fam != "" {
		names, _ := out["Practitioner"]["name"].([]any)
		if len(names) == 0 || names[0].(map[string]any)["family"] != fam {
			t.Errorf("Practitioner family name: got %v, want %s", names, fam)
		}
	}
}

// fhirSameInstant compares two FHIR dateTimes as written or as instants.
func fhirSameInstant(a, b string) bool {
	if a == b {
		return true
	}
	ta, _, ok1 := parseDate(a, []dateFormat{{iso: true}}, nil)
	tb, _, ok2 := parseDate(b, []dateFormat{{iso: true}}, nil)
	return ok1 && ok2 && ta.Equal(tb)
}

// TestFHIRReferralCorpusBundles converts the public example Bundles that
// hold a ServiceRequest as they are. None carries the ServiceRequest's
// Patient, so each referral is rejected for its subject: never guessed
// from another Patient in the Bundle.
func TestFHIRReferralCorpusBundles(t *testing.T) {
	m, err := Builtin("fhir-referral")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../testdata/fhir-r4-examples/Bundle/*.json")
	corpus := os.Getenv("PATHWAY_CORPUS")
	if corpus == "" {
		corpus = "../../shared/corpus"
	}
	bser := filepath.Join(corpus, "ig-examples", "bser", "instances", "Bundle-bundle-bser-referral-message-bundle-eve-everywoman.json")
	if _, err := os.Stat(bser); err == nil {
		files = append(files, bser)
	}
	referrals := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"resourceType": "ServiceRequest"`)) && !bytes.Contains(data, []byte(`"resourceType":"ServiceRequest"`)) {
			continue
		}
		for _, rec := range FHIRRecords(decodeFHIR(t, data)) {
			referrals++
			err := rec.Err
			if err == nil {
				_, err = m.Apply(rec.Fields)
			}
			if err == nil || !strings.Contains(err.Error(), "ServiceRequest.subject") {
				t.Errorf("%s %s: got %v, want the subject reason", filepath.Base(f), rec.Path, err)
			}
		}
	}
	t.Logf("%d referrals in the example bundles, each rejected for its subject", referrals)
	if referrals < 3 {
		t.Errorf("only %d referrals in the example bundles", referrals)
	}
}
