package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
)

func TestPurposeHierarchy(t *testing.T) {
	tests := []struct {
		general, specific string
		want              bool
	}{
		{"TREAT", "TREAT", true},
		{"TREAT", "COC", true},
		{"TREAT", "ETREAT", true},
		{"TREAT", "BTG", true},
		{"ETREAT", "BTG", true},
		{"HOPERAT", "CAREMGT", true},
		{"PurposeOfUse", "HRESCH", true},
		{"TREAT", "CAREMGT", false}, // CAREMGT is under HOPERAT
		{"COC", "TREAT", false},     // a child never covers its parent
		{"COC", "ETREAT", false},    // siblings
		{"ETREAT", "COC", false},
		{"HOPERAT", "COC", false},
		{"TREAT", "NOPE", false},
		{"NOPE", "NOPE", true},
	}
	for _, tt := range tests {
		if got := PurposeSubsumes(tt.general, tt.specific); got != tt.want {
			t.Errorf("PurposeSubsumes(%s, %s) = %v, want %v", tt.general, tt.specific, got, tt.want)
		}
	}
	for _, c := range []string{"TREAT", "COC", "ETREAT", "BTG", "CAREMGT", "HOPERAT", "PUBHLTH", "HRESCH"} {
		if !IsPurpose(c) {
			t.Errorf("IsPurpose(%s) = false", c)
		}
	}
	if IsPurpose("SHOPPING") || IsPurpose("") {
		t.Error("IsPurpose accepted a code outside PurposeOfUse")
	}
	if len(Purposes()) < 50 || !slices.IsSorted(Purposes()) || !slices.Contains(Purposes(), "CAREMGT") {
		t.Errorf("Purposes() = %d codes, sorted %v", len(Purposes()), slices.IsSorted(Purposes()))
	}
}

// labelsOf returns a resource's meta.security as "CODE" strings.
func labelsOf(res proto.Message) []string {
	var out []string
	for _, l := range securityLabels(res.ProtoReflect()) {
		out = append(out, l.Code)
	}
	return out
}

func TestLabellerDefaults(t *testing.T) {
	l, err := NewLabeller(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := func(name string) proto.Message {
		return fhir.Unwrap(readResource(t, filepath.Join(policyTestdata, "resources", name)))
	}
	tests := []struct {
		file    string
		meta    []string
		applied []string // "rule element label"
	}{
		{"obs-phq9.json", []string{"MH", "R"}, []string{"mental-health-screening  MH", "confidentiality  R"}},
		{"obs-legal-status.json", []string{"IMMIG", "R"}, []string{"immigration-observation  IMMIG", "confidentiality  R"}},
		{"sr-psy.json", []string{"R", "PROCESSINLINELABEL"},
			[]string{"psychiatric-referral-reason reasonCode[0] PSY", "confidentiality  R", "inline-labels  PROCESSINLINELABEL"}},
		{"patient.json", []string{"R", "PROCESSINLINELABEL"},
			[]string{"immigration-birth-place extension[0] IMMIG", "confidentiality  R", "inline-labels  PROCESSINLINELABEL"}},
		{"task.json", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := res(tt.file)
			applied := l.Apply(r)
			var got []string
			for _, a := range applied {
				got = append(got, a.Rule+" "+a.Element+" "+a.Label.Code)
			}
			if !slices.Equal(got, tt.applied) {
				t.Errorf("applied %q, want %q", got, tt.applied)
			}
			if m := labelsOf(r); !slices.Equal(m, tt.meta) {
				t.Errorf("meta.security %q, want %q", m, tt.meta)
			}
			if again := l.Apply(r); len(again) != 0 {
				t.Errorf("a second Apply added %v", again)
			}
			if is := fhir.Validate(r); is.HasErrors() {
				t.Errorf("labelled resource not valid: %v", is.Errors())
			}
		})
	}
	// The birth place label sits on the extension's value: an extension may
	// not have both a value and extensions (ext-1).
	p := res("patient.json")
	l.Apply(p)
	b, _ := fhir.Marshal(p)
	if !strings.Contains(string(b), `"valueAddress":{"country":"SY","extension":[{"url":"`+ExtInlineSecurityLabel) {
		t.Errorf("inline label not on the extension's value:\n%s", b)
	}
	// A resource already very restricted stays V.
	o := res("obs-phq9.json")
	o.ProtoReflect().Set(o.ProtoReflect().Descriptor().Fields().ByName("meta"),
		protoreflect.ValueOfMessage((&dpb.Meta{Security: []*dpb.Coding{fhir.Coding(fhir.SystemConfidentiality, "V", "")}}).ProtoReflect()))
	l.Apply(o)
	if got := labelsOf(o); !slices.Equal(got, []string{"V", "MH"}) {
		t.Errorf("V resource labels %q, want V kept and MH added", got)
	}
}

func TestLabellerConfigRules(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle(t, "full.json")
	var flag proto.Message
	for _, en := range b.GetEntry() {
		if en.GetResource().GetFlag() != nil {
			flag = proto.Clone(en.GetResource().GetFlag())
		}
	}
	e.Labeller().Apply(flag)
	if got := labelsOf(flag); !slices.Equal(got, []string{"BH", "R"}) {
		t.Errorf("Flag with an NGO risk code: labels %q, want BH and R from the configured rule", got)
	}
	if _, err := NewLabeller([]LabelRule{{Name: "x", ValueSets: []string{"nope"}, Labels: []string{"PSY"}}}, nil); err == nil {
		t.Error("a rule naming an unknown value set compiled")
	}
}

// TestFilterRedactionDetails checks what redaction does to what is kept.
func TestFilterRedactionDetails(t *testing.T) {
	cfg := testConfig(t)
	// A partner whose agreement leaves out Patients: the ServiceRequest's
	// required subject then points at nothing that is sent.
	cfg.Partners = append(cfg.Partners, Partner{ID: "no-patients", Kind: KindClinic, Agreement: Agreement{
		ID: "dsa-no-patients", Purposes: []string{"TREAT"}, ResourceTypes: []string{"ServiceRequest", "Task"},
		Labels: []string{"PSY", "MH"}, Refrain: []string{"NORDSCLCD"},
		Elements: []ElementRule{{ResourceType: "ServiceRequest", Mask: []string{"authoredOn", "patientInstruction"}}},
	}})
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := testBundle(t, "referral-5.json")
	// The consent names clinic-b: let it name this partner too.
	c := proto.Clone(in).(*rpb.Bundle)
	for _, en := range c.GetEntry() {
		if con := en.GetResource().GetConsent(); con != nil {
			con.Provision.Actor = append(con.Provision.Actor, &conpb.Consent_Provision_ProvisionActor{
				Role: fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "")), Reference: fhir.Ref("Organization", "no-patients")})
		}
	}
	out, d := e.Filter(filterRequest(cfg, "no-patients", "COC"), c)
	if out == nil {
		t.Fatalf("denied: %s", d.Explain())
	}
	if is := fhir.Validate(out); is.HasErrors() {
		t.Fatalf("not valid: %v", is.Errors())
	}
	var types []string
	for _, en := range out.GetEntry() {
		types = append(types, fhir.TypeOf(en.GetResource()))
	}
	if !slices.Equal(types, []string{"ServiceRequest", "Task"}) {
		t.Fatalf("sent %v, want ServiceRequest and Task", types)
	}
	sr := out.GetEntry()[0].GetResource().GetServiceRequest()
	subj := sr.GetSubject()
	if fhir.RefString(subj) != "" || len(subj.GetExtension()) != 1 || subj.GetExtension()[0].GetUrl().GetValue() != ExtDataAbsentReason ||
		subj.GetExtension()[0].GetValue().GetCode().GetValue() != "masked" {
		t.Errorf("required subject = %v, want only a data-absent-reason masked extension", subj)
	}
	if len(sr.GetSupportingInfo()) != 0 {
		t.Errorf("references to withheld resources kept: %v", sr.GetSupportingInfo())
	}
	if sr.GetAuthoredOn().GetPrecision() != dpb.DateTime_YEAR || sr.GetPatientInstruction().GetValue() != maskText {
		t.Errorf("masked values: authoredOn %v, patientInstruction %q", sr.GetAuthoredOn(), sr.GetPatientInstruction().GetValue())
	}
	if got := labelsOf(sr); !slices.Contains(got, MarkRedacted) || !slices.Contains(got, MarkMasked) || !slices.Contains(got, "NORDSCLCD") {
		t.Errorf("ServiceRequest labels %q, want REDACTED, MASKED and NORDSCLCD", got)
	}
	if sr.GetText() != nil {
		t.Error("the narrative of a redacted resource was kept")
	}
	// The Bundle carries the refrain code and nothing that reveals content.
	if got := labelsOf(out); !slices.Equal(got, []string{"NORDSCLCD"}) {
		t.Errorf("Bundle labels %q, want only NORDSCLCD", got)
	}
	task := out.GetEntry()[1].GetResource().GetTask()
	if f := task.GetFocus(); fhir.RefString(f) == "" {
		t.Errorf("Task.focus to the kept ServiceRequest was removed: %v", f)
	}
	if task.GetForValue() != nil {
		t.Errorf("Task.for to the withheld Patient kept: %v", task.GetForValue())
	}
}

func TestDecideIgnoresOtherResourcesAndKeepsInput(t *testing.T) {
	e, err := NewEngine(nil)
	if err != nil {
		t.Fatal(err)
	}
	con := readResource(t, filepath.Join(policyTestdata, "consents", "referral.json"))
	obs := readResource(t, filepath.Join(policyTestdata, "resources", "obs-legal-status.json"))
	before, _ := proto.Marshal(obs)
	p := &Partner{ID: "legal-aid-d"}
	d := e.Decide(Request{Partner: p, Purpose: "COC", At: testTime}, []*conpb.Consent{con.GetConsent()}, obs)
	if d.Effect != Permit {
		t.Fatalf("%s: %s", d.Effect, d.Explain())
	}
	if after, _ := proto.Marshal(obs); string(before) != string(after) {
		t.Error("Decide labelled its input")
	}
	// Same request a day after the consent's end: nothing.
	d = e.Decide(Request{Partner: p, Purpose: "COC", At: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, []*conpb.Consent{con.GetConsent()}, obs)
	if d.Effect != NoConsent {
		t.Errorf("after the period: %s", d.Effect)
	}
}

// ExampleEngine_Decide decides a request with the Consent a Pathway
// mapping writes: clinic-b may receive the referral for COC, without
// immigration and legal-status data.
func ExampleEngine_Decide() {
	c, err := fhir.ConsentSpec{
		ID: "c1", Status: fhir.ConsentStatusActive, Patient: fhir.Ref("Patient", "p1"),
		PolicyRule: fhir.Concept("", fhir.Coding(fhir.SystemActCode, "OPTIN", "")),
		Provision: &fhir.Provision{
			Type:    fhir.ProvisionTypePermit,
			Actor:   []fhir.ProvisionActor{{Role: fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "")), Reference: fhir.Ref("Organization", "clinic-b")}},
			Purpose: []*dpb.Coding{fhir.PurposeOfUse("COC")},
			Provision: []fhir.Provision{{Type: fhir.ProvisionTypeDeny,
				SecurityLabel: []*dpb.Coding{fhir.ImmigrationLabel()}}},
		},
	}.Build()
	if err != nil {
		panic(err)
	}
	e, _ := NewEngine(nil)
	d := e.Decide(Request{Partner: &Partner{ID: "clinic-b", Name: "Clinic B"}, Purpose: "TREAT",
		At: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}, []*conpb.Consent{c})
	fmt.Println(d.Effect)
	d = e.Decide(Request{Partner: &Partner{ID: "clinic-b", Name: "Clinic B"}, Purpose: "COC",
		At: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}, []*conpb.Consent{c})
	fmt.Println(d.Effect)
	for _, s := range d.Trail {
		fmt.Println(s)
	}
	fmt.Println(d.Explain())
	// Output:
	// no-consent
	// permit
	// Consent/c1 provision: permit
	// Consent/c1 provision.provision[0]: deny data labelled IMMIG
	// Clinic B may receive this for coordination of care (COC). The patient's consent Consent/c1 allows it (provision). Before anything is sent, data labelled IMMIG must be left out (Consent/c1 provision.provision[0]).
}

// TestFilterNamesWhatPermittedEachResource: when the request as a whole
// is refused and a nested provision permits a resource, the trail names
// the provision for the resource itself, also when the resource's
// labelled elements are decided after it (decideItem reuses its arrays).
func TestFilterNamesWhatPermittedEachResource(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := testBundle(t, "referral-5.json")
	b := proto.Clone(in).(*rpb.Bundle)
	var patient, sr string
	b.Entry = slices.DeleteFunc(b.Entry, func(en *rpb.Bundle_Entry) bool { return en.GetResource().GetConsent() != nil })
	for _, en := range b.GetEntry() {
		switch res := fhir.Unwrap(en.GetResource()); res.(type) {
		case *ppb.Patient:
			patient = fhir.Key(res)
		case *srpb.ServiceRequest:
			sr = fhir.Key(res)
		}
	}
	data, err := os.ReadFile(filepath.Join(policyTestdata, "consents", "deny-except-observations.json"))
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte(`"Patient/p1"`), []byte(strconv.Quote(patient)))
	data = bytes.ReplaceAll(data, []byte(`"code": "Observation"`), []byte(`"code": "ServiceRequest"`))
	parsed := fhir.Parse(data)
	if parsed.Resource.GetConsent() == nil {
		t.Fatalf("consent does not parse: %v", parsed)
	}
	out, d := e.Filter(filterRequest(cfg, "clinic-b", "COC"), b, parsed.Resource.GetConsent())
	if out == nil {
		t.Fatal(d.Explain())
	}
	found := false
	for _, s := range d.Trail {
		found = found || s.Effect == Permit && s.Source == SourceConsent && s.Target == sr
	}
	if !found {
		t.Errorf("no permit step for %s in the trail:\n%v", sr, d.Trail)
	}
}
