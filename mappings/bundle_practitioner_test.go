package mappings

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
)

// bundleClinicReferral is a clinic's referral: several identifiers in the
// clinic's namespaces, a referring practitioner and an occurrence period.
func bundleClinicReferral() Referral {
	return Referral{
		SourceSystem: "https://pathway-fhir.org/source/hl7v2-ref-i12",
		RecordID:     "RIVERSIDE/RIVERSIDE/RC-REF-2026-0907",
		Patient: Person{
			GivenName: "Amal", FamilyName: "Haddad", Gender: "female", BirthDate: "1991-07-02",
			Identifiers: []Identifier{
				{System: "RIVERSIDE", Value: "MRN-3318"},                           // a name local to the source
				{System: "https://fhir.nhs.uk/Id/nhs-number", Value: "9000000009"}, // a URI
				{System: "2.16.840.1.113883.4.1", Value: "123-45-6789"},            // a bare OID
				{Value: "C-1"},                            // no namespace: the client default
				{System: "RIVERSIDE", Value: "MRN-3318"},  // a duplicate: written once
				{System: "GOOD HEALTH", Value: "GH-0001"}, // escaped as a path segment
			},
		},
		Service: Service{
			ReferralIdentifier: "RC-REF-2026-0907",
			Identifiers:        []Identifier{{System: "RIVERSIDE", Value: "RC-REF-2026-0907"}, {Value: "RC-REF-2026-0907"}},
			Categories:         []Code{{System: fhir.SystemPathway, Code: "mental-health"}},
			RequesterName:      "Riverside Community Clinic",
			AuthoredOn:         bundleDay(2026, 11, 25),
			OccurrenceStart:    bundleDay(2026, 11, 26),
			OccurrenceEnd:      bundleDay(2027, 1, 31),
		},
		Practitioner: Practitioner{
			GivenName: "Chidi", FamilyName: "Okafor", Phone: "+44 20 7946 0101", Email: "c.okafor@clinic.example",
			Identifiers: []Identifier{{System: "GMC", Value: "7012345"}, {Value: "S-1187"}},
		},
	}
}

func TestBuildPractitioner(t *testing.T) {
	r := bundleClinicReferral()
	bundle, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	data := bundleMustValid(t, bundle)
	var b struct {
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	var types []string
	res := map[string]map[string]any{}
	for _, e := range b.Entry {
		rt := e.Resource["resourceType"].(string)
		types = append(types, rt)
		res[rt] = e.Resource
	}
	// The Practitioner comes after the Task: the first four entries keep their places.
	if strings.Join(types, ",") != "Patient,ServiceRequest,Consent,Task,Practitioner" {
		t.Fatalf("entries %v", types)
	}
	prID := fhir.NewID(r.SourceSystem, r.RecordID, "Practitioner")
	if res["Practitioner"]["id"] != prID {
		t.Errorf("practitioner id %v, want %s", res["Practitioner"]["id"], prID)
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	wantPr := `{"family":"Okafor","given":["Chidi"]}`
	if got := js(res["Practitioner"]["name"]); got != "["+wantPr+"]" {
		t.Errorf("practitioner name %s", got)
	}
	if got := js(res["Practitioner"]["identifier"]); got != `[{"system":"https://pathway-fhir.org/source/hl7v2-ref-i12/id/GMC","value":"7012345"},{"system":"https://pathway-fhir.org/source/hl7v2-ref-i12/practitioner","value":"S-1187"}]` {
		t.Errorf("practitioner identifiers %s", got)
	}
	if got := js(res["Practitioner"]["telecom"]); got != `[{"system":"phone","value":"+44 20 7946 0101"},{"system":"email","value":"c.okafor@clinic.example"}]` {
		t.Errorf("practitioner telecom %s", got)
	}
	// The practitioner asks for the service; the organisation stays the Task's requester.
	if got := js(res["ServiceRequest"]["requester"]); got != `{"display":"Chidi Okafor","reference":"urn:uuid:`+prID+`"}` {
		t.Errorf("ServiceRequest.requester %s", got)
	}
	if got := js(res["Task"]["requester"]); got != `{"display":"Riverside Community Clinic","type":"Organization"}` {
		t.Errorf("Task.requester %s", got)
	}
	if got := js(res["ServiceRequest"]["occurrencePeriod"]); got != `{"end":"2027-01-31","start":"2026-11-26"}` {
		t.Errorf("occurrencePeriod %s", got)
	}
	// Identifiers: referral_id first, then each identifier once, in its namespace.
	if got := js(res["ServiceRequest"]["identifier"]); got != `[{"system":"https://pathway-fhir.org/source/hl7v2-ref-i12/referral","value":"RC-REF-2026-0907"},{"system":"https://pathway-fhir.org/source/hl7v2-ref-i12/id/RIVERSIDE","value":"RC-REF-2026-0907"}]` {
		t.Errorf("ServiceRequest identifiers %s", got)
	}
	wantIDs := []map[string]any{
		{"system": "https://pathway-fhir.org/source/hl7v2-ref-i12/id/RIVERSIDE", "value": "MRN-3318"},
		{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"},
		{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},
		{"system": "https://pathway-fhir.org/source/hl7v2-ref-i12/client", "value": "C-1"},
		{"system": "https://pathway-fhir.org/source/hl7v2-ref-i12/id/GOOD%20HEALTH", "value": "GH-0001"},
	}
	var gotIDs []map[string]any
	for _, id := range res["Patient"]["identifier"].([]any) {
		gotIDs = append(gotIDs, id.(map[string]any))
	}
	if !reflect.DeepEqual(gotIDs, wantIDs) {
		t.Errorf("Patient identifiers %v", gotIDs)
	}

	// Without an organisation, the practitioner is the Task's requester too.
	r.Service.RequesterName = ""
	bundle, err = Build(r)
	if err != nil {
		t.Fatal(err)
	}
	task := bundleResources(t, bundle)["Task/"+fhir.NewID(r.SourceSystem, r.RecordID, "Task")]
	if got := string(bundleMustMarshal(t, task)); !strings.Contains(got, `"requester":{"display":"Chidi Okafor","reference":"urn:uuid:`+prID+`"}`) {
		t.Errorf("Task without an organisation: %s", got)
	}
}

func TestBuildPractitionerProblems(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *Referral)
		target string
	}{
		{"phone only", func(r *Referral) { r.Practitioner = Practitioner{Phone: "+44 1"} }, "practitioner"},
		{"control character", func(r *Referral) { r.Practitioner.FamilyName = "Oka\x00for" }, "practitioner.family_name"},
		{"identifier value", func(r *Referral) { r.Patient.Identifiers[0].Value = "MRN\x07" }, "patient.identifiers[0]"},
		{"identifier system with spaces", func(r *Referral) { r.Service.Identifiers[0].System = "https://clinic.example/a b" }, "service.identifiers[0]"},
		{"occurrence backwards", func(r *Referral) { r.Service.OccurrenceEnd = r.Service.OccurrenceStart.Add(-time.Hour) }, "service.occurrence_end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bundleClinicReferral()
			tc.edit(&r)
			_, err := Build(r)
			var re *RecordError
			if !errors.As(err, &re) || !hasProblem(re.Problems, tc.target) {
				t.Fatalf("got %v, want a problem at %s", err, tc.target)
			}
			if strings.Contains(err.Error(), "Oka") || strings.Contains(err.Error(), "MRN") {
				t.Errorf("a problem shows a value: %v", err)
			}
		})
	}
}
