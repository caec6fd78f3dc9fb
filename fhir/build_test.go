package fhir

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// btT0 is the time the builder tests happen at.
var btT0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// btJSON marshals res, parses the JSON back and fails the test on any issue
// (warnings included) or when the parsed resource differs from res. It also
// runs Validate on res. It returns the JSON.
func btJSON(t *testing.T, res proto.Message) string {
	t.Helper()
	if is := Validate(res); len(is) > 0 {
		t.Errorf("Validate(%s): %v", Key(res), is)
	}
	// The marshaller rewrites typed references in the message it is given, so marshal a copy.
	b, err := Marshal(proto.Clone(res))
	if err != nil {
		t.Fatalf("Marshal(%s): %v", Key(res), err)
	}
	typ := TypeOf(res)
	if !strings.HasPrefix(string(b), `{"resourceType":"`+typ+`"`) {
		t.Errorf("JSON does not start with its resourceType: %.80s", b)
	}
	r := Parse(b)
	if !r.Valid() || len(r.Issues) > 0 {
		t.Fatalf("Parse(Marshal(%s)): valid=%v issues=%v\n%s", Key(res), r.Valid(), r.Issues, b)
	}
	if got := Unwrap(r.Resource); !proto.Equal(got, res) {
		t.Errorf("round trip of %s differs:\nbuilt:  %s\nparsed: %s", Key(res), prototext.Format(res), prototext.Format(got))
	}
	return string(b)
}

// btContains fails for every want not found in the JSON.
func btContains(t *testing.T, j string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(j, w) {
			t.Errorf("JSON lacks %s\n%s", w, j)
		}
	}
}

// btProblems returns the fields of a *SpecError, failing when err is not one.
func btProblems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("Build succeeded, want a *SpecError")
	}
	var se *SpecError
	if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("error %T %v is not a *SpecError", err, err)
	}
	var fields []string
	for _, p := range se.Problems {
		fields = append(fields, p.Field)
	}
	return fields
}

// btExpectProblem runs build and checks it fails at field (among others).
func btExpectProblem(t *testing.T, build func() error, field string) {
	t.Helper()
	fields := btProblems(t, build())
	for _, f := range fields {
		if f == field {
			return
		}
	}
	t.Errorf("problems at %v, want one at %s", fields, field)
}

func btPatient() PatientSpec {
	return PatientSpec{
		ID:          "p1",
		Identifiers: []*dpb.Identifier{Identifier("https://ngo-a.example/client", "c-17")},
		Active:      true,
		Name:        []*dpb.HumanName{HumanName("Haddad", "Amal")},
		Telecom:     []*dpb.ContactPoint{Phone("+49 30 1234567"), Email("amal@example.org")},
		Gender:      GenderFemale,
		BirthDate:   Date(1994, 0, 0),
		Languages: []Language{
			{Tag: "ar", Display: "Arabic", Preferred: true},
			{Tag: "en"},
		},
		InterpreterRequired:  true,
		ManagingOrganization: Ref("Organization", "ngo-a"),
	}
}

func TestPatientSpec(t *testing.T) {
	p, err := btPatient().Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, p)
	btContains(t, j, `"id":"p1"`, `"birthDate":"1994"`, `"gender":"female"`,
		`"communication":[{"language":{"coding":[{"code":"ar","display":"Arabic","system":"urn:ietf:bcp:47"}]},"preferred":true}`,
		`"url":"http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired","valueBoolean":true`,
		`"managingOrganization":{"reference":"Organization/ngo-a"}`, `"active":true`)

	for _, tt := range []struct {
		field string
		mod   func(*PatientSpec)
	}{
		{"id", func(s *PatientSpec) { s.ID = "not an id!" }},
		{"identifier[0]", func(s *PatientSpec) { s.Identifiers = []*dpb.Identifier{Identifier("", "x")} }},
		{"gender", func(s *PatientSpec) { s.Gender = "f" }},
		{"name[0]", func(s *PatientSpec) { s.Name = []*dpb.HumanName{HumanName("")} }},
		{"telecom[0]", func(s *PatientSpec) { s.Telecom = []*dpb.ContactPoint{Phone("")} }},
		{"communication[1].language", func(s *PatientSpec) { s.Languages[1].Tag = "" }},
		{"managingOrganization", func(s *PatientSpec) { s.ManagingOrganization = Ref("Patient", "p2") }},
		{"meta.security[0]", func(s *PatientSpec) { s.Security = []*dpb.Coding{nil} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btPatient()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btServiceRequest() ServiceRequestSpec {
	return ServiceRequestSpec{
		ID:          "sr1",
		Security:    []*dpb.Coding{Coding(SystemActCode, "PSY", "psychiatry disorder information sensitivity")},
		Identifiers: []*dpb.Identifier{Identifier("https://ngo-a.example/referral", "r-9")},
		Status:      ServiceRequestStatusActive,
		Priority:    PriorityUrgent,
		Category:    []*CodeableConcept{Concept("Mental health", Coding(SystemSNOMED, "722165004", "Mental health service"))},
		Code:        Concept("Psychological therapy", Coding(SystemSNOMED, "75516001", "Psychotherapy")),
		Subject:     Ref("Patient", "p1"),
		AuthoredOn:  btT0,
		Occurrence:  Period(btT0, btT0.AddDate(0, 1, 0)),
		Requester:   Ref("Organization", "ngo-a"),
		Performer:   []*Reference{Ref("Organization", "clinic-b")},
		ReasonCode:  []*CodeableConcept{Concept("low mood since arrival")},
		SupportingInfo: []*Reference{
			Ref("QuestionnaireResponse", "qr1"),
		},
		Note:               []string{"prefers a female therapist"},
		PatientInstruction: "You will get a call from the clinic.",
	}
}

func TestServiceRequestSpec(t *testing.T) {
	sr, err := btServiceRequest().Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, sr)
	btContains(t, j, `"status":"active"`, `"intent":"order"`, `"priority":"urgent"`,
		`"subject":{"reference":"Patient/p1"}`, `"authoredOn":"2026-03-02T09:30:00Z"`,
		`"occurrencePeriod":{"end":"2026-04-02T09:30:00Z","start":"2026-03-02T09:30:00Z"}`,
		`"meta":{"security":[{"code":"PSY"`)

	for _, tt := range []struct {
		field string
		mod   func(*ServiceRequestSpec)
	}{
		{"status", func(s *ServiceRequestSpec) { s.Status = "" }},
		{"status", func(s *ServiceRequestSpec) { s.Status = "open" }},
		{"intent", func(s *ServiceRequestSpec) { s.Intent = "wish" }},
		{"priority", func(s *ServiceRequestSpec) { s.Priority = "high" }},
		{"code", func(s *ServiceRequestSpec) { s.Code = nil }},
		{"code", func(s *ServiceRequestSpec) { s.Code = Concept("") }},
		{"code.coding[0]", func(s *ServiceRequestSpec) { s.Code = Concept("", Coding("", "x", "")) }},
		{"subject", func(s *ServiceRequestSpec) { s.Subject = nil }},
		{"subject", func(s *ServiceRequestSpec) { s.Subject = Ref("Organization", "o1") }},
		{"performer[0]", func(s *ServiceRequestSpec) { s.Performer = []*Reference{nil} }},
		{"note[0]", func(s *ServiceRequestSpec) { s.Note = []string{""} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btServiceRequest()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btTask() TaskSpec {
	return TaskSpec{
		ID:             "t1",
		Identifiers:    []*dpb.Identifier{Identifier("https://ngo-a.example/referral", "r-9")},
		Status:         TaskStatusRequested,
		BusinessStatus: Concept("waiting for first contact"),
		Priority:       PriorityRoutine,
		Description:    "Referral for psychological therapy",
		Focus:          Ref("ServiceRequest", "sr1"),
		For:            Ref("Patient", "p1"),
		AuthoredOn:     btT0,
		LastModified:   btT0.Add(time.Hour),
		Requester:      Ref("Organization", "ngo-a"),
		Owner:          WithDisplay(Ref("Organization", "clinic-b"), "Clinic B"),
		Note:           []string{"call in the morning"},
		Input:          []TaskParameter{{Type: Concept("language"), Value: CodingValue(Coding(SystemLanguage, "ar", "Arabic"))}},
	}
}

func TestTaskSpec(t *testing.T) {
	task, err := btTask().Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, task)
	btContains(t, j, `{"resourceType":"Task","authoredOn":"2026-03-02T09:30:00Z"`,
		`"code":{"coding":[{"code":"fulfill","display":"Fulfill the focal request","system":"http://hl7.org/fhir/CodeSystem/task-code"}]}`,
		`"focus":{"reference":"ServiceRequest/sr1"}`, `"for":{"reference":"Patient/p1"}`,
		`"owner":{"display":"Clinic B","reference":"Organization/clinic-b"}`, `"intent":"order"`,
		`"input":[{"type":{"text":"language"},"valueCoding":{"code":"ar"`)

	done := btTask()
	done.Status = TaskStatusCompleted
	done.ExecutionPeriod = Period(btT0, btT0.Add(48*time.Hour))
	done.Output = []TaskParameter{
		{Type: Concept("outcome"), Value: ReferenceValue(Ref("Procedure", "proc1"))},
		{Type: Concept("sessions"), Value: IntegerValue(6)},
		{Type: Concept("summary"), Value: StringValue("engaged well")},
	}
	task, err = done.Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, task), `"output":[{"type":{"text":"outcome"},"valueReference":{"reference":"Procedure/proc1"}}`,
		`"valueInteger":6`, `"valueString":"engaged well"`)

	rejected := btTask()
	rejected.Status = TaskStatusRejected
	rejected.StatusReason = "no capacity this month"
	task, err = rejected.Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, task), `"statusReason":{"text":"no capacity this month"}`, `"status":"rejected"`)

	other := btTask()
	other.Code = Concept("", Coding(SystemTaskCode, "approve", "Activate/approve the focal resource"))
	other.Focus, other.For = nil, nil
	if _, err := other.Build(); err != nil {
		t.Errorf("a Task that is not fulfill needs no focus or for: %v", err)
	}

	for _, tt := range []struct {
		field string
		mod   func(*TaskSpec)
	}{
		{"status", func(s *TaskSpec) { s.Status = "" }},
		{"status", func(s *TaskSpec) { s.Status = "done" }},
		{"statusReason.text", func(s *TaskSpec) { s.Status = TaskStatusRejected }},
		{"statusReason.text", func(s *TaskSpec) { s.Status = TaskStatusCancelled }},
		{"statusReason.text", func(s *TaskSpec) { s.Status = TaskStatusOnHold }},
		{"statusReason.text", func(s *TaskSpec) { s.Status = TaskStatusFailed }},
		{"intent", func(s *TaskSpec) { s.Intent = "orders" }},
		{"focus", func(s *TaskSpec) { s.Focus = nil }},
		{"for", func(s *TaskSpec) { s.For = nil }},
		{"lastModified", func(s *TaskSpec) { s.LastModified = s.AuthoredOn.Add(-time.Second) }},
		{"owner", func(s *TaskSpec) { s.Owner = &Reference{} }},
		{"owner", func(s *TaskSpec) { s.Owner = Ref("Consent", "c1") }},
		{"focus", func(s *TaskSpec) { s.Focus = Ref("ServiceRequest", "bad id!") }},
		{"input[0].value", func(s *TaskSpec) { s.Input[0].Value = Value{} }},
		{"input[0].type", func(s *TaskSpec) { s.Input[0].Type = nil }},
		{"input[0].value", func(s *TaskSpec) { s.Input[0].Value = CodingValue(nil) }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btTask()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btConsent() ConsentSpec {
	clinic := Ref("Organization", "clinic-b")
	recipient := Concept("", Coding(SystemParticipationType, "IRCP", "information recipient"))
	return ConsentSpec{
		ID:           "c1",
		Identifiers:  []*dpb.Identifier{Identifier("https://ngo-a.example/consent", "k-3")},
		Status:       ConsentStatusActive,
		Patient:      Ref("Patient", "p1"),
		DateTime:     btT0,
		Performer:    []*Reference{Ref("Patient", "p1")},
		Organization: []*Reference{Ref("Organization", "ngo-a")},
		Source:       Ref("QuestionnaireResponse", "consent-form"),
		PolicyRule:   Concept("", Coding(SystemActCode, "OPTIN", "opt-in")),
		Provision: &Provision{
			Type:    ProvisionTypePermit,
			Period:  Period(btT0, btT0.AddDate(1, 0, 0)),
			Actor:   []ProvisionActor{{Role: recipient, Reference: clinic}},
			Action:  []*CodeableConcept{ConsentAction("disclose")},
			Purpose: []*dpb.Coding{PurposeOfUse("TREAT"), PurposeOfUse("COC")},
			Provision: []Provision{{
				Type:          ProvisionTypeDeny,
				SecurityLabel: []*dpb.Coding{ImmigrationLabel()},
				Class:         []*dpb.Coding{ResourceClass("Observation")},
				Code:          []*CodeableConcept{Concept("", PathwayCoding(PathwayHistoryCountryOfBirth))},
				DataPeriod:    Period(time.Time{}, btT0),
				Data:          []ProvisionData{{Meaning: ConsentDataMeaningRelated, Reference: Ref("Observation", "o1")}},
			}},
		},
	}
}

func TestConsentSpec(t *testing.T) {
	c, err := btConsent().Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, c)
	btContains(t, j, `"scope":{"coding":[{"code":"patient-privacy","display":"Privacy Consent","system":"http://terminology.hl7.org/CodeSystem/consentscope"}]}`,
		`"category":[{"coding":[{"code":"59284-0","display":"Patient Consent","system":"http://loinc.org"}]},{"coding":[{"code":"IDSCL"`,
		`"patient":{"reference":"Patient/p1"}`, `"sourceReference":{"reference":"QuestionnaireResponse/consent-form"}`,
		`"actor":[{"reference":{"reference":"Organization/clinic-b"},"role":{"coding":[{"code":"IRCP"`,
		`"purpose":[{"code":"TREAT","display":"treatment","system":"http://terminology.hl7.org/CodeSystem/v3-ActReason"},{"code":"COC"`,
		`"provision":[{"class":[{"code":"Observation","system":"http://hl7.org/fhir/resource-types"}]`,
		`"securityLabel":[{"code":"IMMIG","display":"immigration and legal status information","system":"https://pathway-fhir.org/fhir/CodeSystem/pathway"}]`,
		`"type":"deny"`, `"type":"permit"`, `"data":[{"meaning":"related","reference":{"reference":"Observation/o1"}}]`,
		`"dataPeriod":{"end":"2026-03-02T09:30:00Z"}`)

	withPolicy := btConsent()
	withPolicy.PolicyRule = nil
	withPolicy.Policy = []ConsentPolicy{{Authority: "https://network.example", URI: "https://network.example/dsa/clinic-b"}}
	c, err = withPolicy.Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, c), `"policy":[{"authority":"https://network.example","uri":"https://network.example/dsa/clinic-b"}]`)

	for _, tt := range []struct {
		field string
		mod   func(*ConsentSpec)
	}{
		{"status", func(s *ConsentSpec) { s.Status = "" }},
		{"patient", func(s *ConsentSpec) { s.Patient = nil }},
		{"patient", func(s *ConsentSpec) { s.Patient = Ref("Organization", "o") }},
		{"policyRule", func(s *ConsentSpec) { s.PolicyRule = nil }},
		{"policy[0]", func(s *ConsentSpec) { s.Policy = []ConsentPolicy{{}} }},
		{"provision.type", func(s *ConsentSpec) { s.Provision.Type = "" }},
		{"provision.type", func(s *ConsentSpec) { s.Provision.Type = "allow" }},
		{"provision.period", func(s *ConsentSpec) { s.Provision.Period = Period(btT0, btT0.Add(-time.Hour)) }},
		{"provision.actor[0].role", func(s *ConsentSpec) { s.Provision.Actor[0].Role = nil }},
		{"provision.actor[0].reference", func(s *ConsentSpec) { s.Provision.Actor[0].Reference = nil }},
		{"provision.purpose[0]", func(s *ConsentSpec) { s.Provision.Purpose[0] = Coding("", "TREAT", "") }},
		{"provision.provision[0].type", func(s *ConsentSpec) { s.Provision.Provision[0].Type = "" }},
		{"provision.provision[0].securityLabel[0]", func(s *ConsentSpec) {
			s.Provision.Provision[0].SecurityLabel = []*dpb.Coding{PathwayCoding("no-such-code")}
		}},
		{"provision.provision[0].data[0].meaning", func(s *ConsentSpec) { s.Provision.Provision[0].Data[0].Meaning = "" }},
		{"provision.provision[0].data[0].reference", func(s *ConsentSpec) { s.Provision.Provision[0].Data[0].Reference = nil }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btConsent()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btFlag() FlagSpec {
	return FlagSpec{
		ID:       "f1",
		Status:   FlagStatusActive,
		Category: []*CodeableConcept{Concept("", Coding("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety"))},
		Code:     Concept("Risk of self-harm", Coding(SystemSNOMED, "225444004", "At risk for suicide")),
		Subject:  Ref("Patient", "p1"),
		Period:   Period(btT0, time.Time{}),
		Author:   Ref("Organization", "ngo-a"),
	}
}

func TestFlagSpec(t *testing.T) {
	f, err := btFlag().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, f), `"status":"active"`, `"subject":{"reference":"Patient/p1"}`,
		`"period":{"start":"2026-03-02T09:30:00Z"}`, `"code":{"coding":[{"code":"225444004"`)
	for _, tt := range []struct {
		field string
		mod   func(*FlagSpec)
	}{
		{"status", func(s *FlagSpec) { s.Status = "" }},
		{"code", func(s *FlagSpec) { s.Code = nil }},
		{"subject", func(s *FlagSpec) { s.Subject = nil }},
		{"period", func(s *FlagSpec) { s.Period = &dpb.Period{} }},
		{"category[0]", func(s *FlagSpec) { s.Category = []*CodeableConcept{nil} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btFlag()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btObservation() ObservationSpec {
	return ObservationSpec{
		ID:          "o1",
		Security:    []*dpb.Coding{ImmigrationLabel()},
		Status:      ObservationStatusFinal,
		Category:    []*CodeableConcept{Concept("", Coding(SystemObservationCategory, "social-history", "Social History"))},
		Code:        Concept("", PathwayCoding(PathwayHistoryYearOfArrival)),
		Subject:     Ref("Patient", "p1"),
		Effective:   btT0,
		Issued:      btT0.Add(time.Minute),
		Performer:   []*Reference{Ref("Organization", "ngo-a")},
		Value:       IntegerValue(2023),
		Note:        []string{"self-reported"},
		DerivedFrom: []*Reference{Ref("QuestionnaireResponse", "qr1")},
	}
}

func TestObservationSpec(t *testing.T) {
	o, err := btObservation().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, o), `"valueInteger":2023`, `"effectiveDateTime":"2026-03-02T09:30:00Z"`,
		`"issued":"2026-03-02T09:31:00Z"`, `"code":{"coding":[{"code":"year-of-arrival","display":"Year of arrival","system":"https://pathway-fhir.org/fhir/CodeSystem/pathway"}]}`,
		`"meta":{"security":[{"code":"IMMIG"`)

	values := []struct {
		v    Value
		want string
	}{
		{QuantityValue(Quantity(7.5, "hours", "h")), `"valueQuantity":{"code":"h","system":"http://unitsofmeasure.org","unit":"hours","value":7.5}`},
		{ConceptValue(Concept("Syria", Coding("urn:iso:std:iso:3166", "SY", "Syrian Arab Republic"))), `"valueCodeableConcept":{"coding":[{"code":"SY"`},
		{StringValue("arrived by sea"), `"valueString":"arrived by sea"`},
		{BooleanValue(true), `"valueBoolean":true`},
		{DateTimeValue(btT0), `"valueDateTime":"2026-03-02T09:30:00Z"`},
	}
	for _, tt := range values {
		s := btObservation()
		s.Value = tt.v
		s.Effective = time.Time{}
		s.EffectivePeriod = Period(btT0, btT0.Add(time.Hour))
		o, err := s.Build()
		if err != nil {
			t.Fatalf("%s: %v", tt.v.Kind(), err)
		}
		btContains(t, btJSON(t, o), tt.want, `"effectivePeriod":{`)
	}

	for _, tt := range []struct {
		field string
		mod   func(*ObservationSpec)
	}{
		{"status", func(s *ObservationSpec) { s.Status = "done" }},
		{"code", func(s *ObservationSpec) { s.Code = nil }},
		{"subject", func(s *ObservationSpec) { s.Subject = nil }},
		{"effective[x]", func(s *ObservationSpec) { s.EffectivePeriod = Period(btT0, time.Time{}) }},
		{"value[x]", func(s *ObservationSpec) { s.Value = CodingValue(Coding(SystemSNOMED, "1", "")) }},
		{"value[x]", func(s *ObservationSpec) { s.Value = QuantityValue(&dpb.Quantity{}) }},
		{"value[x]", func(s *ObservationSpec) { s.Value = QuantityValue(Quantity(math.NaN(), "", "")) }},
		{"value[x]", func(s *ObservationSpec) { s.Value = ConceptValue(Concept("")) }},
		{"meta.security[0]", func(s *ObservationSpec) { s.Security = []*dpb.Coding{Coding(SystemPathway, "", "")} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btObservation()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btQuestionnaireResponse() QuestionnaireResponseSpec {
	answer := func(code string) []Value {
		return []Value{CodingValue(Coding(SystemLOINC, code, ""))}
	}
	return QuestionnaireResponseSpec{
		ID:            "qr1",
		Identifier:    Identifier("https://ngo-a.example/screening", "s-1"),
		Questionnaire: "http://loinc.org/q/44249-1",
		Status:        QuestionnaireResponseStatusCompleted,
		Subject:       Ref("Patient", "p1"),
		Authored:      btT0,
		Author:        Ref("Organization", "ngo-a"),
		Source:        Ref("Patient", "p1"),
		Items: []ResponseItem{
			{LinkID: "phq-9", Text: "PHQ-9", Items: []ResponseItem{
				{LinkID: "44250-9", Text: "Little interest or pleasure in doing things", Answers: answer("LA6569-3")},
				{LinkID: "44255-8", Text: "Feeling down, depressed, or hopeless", Answers: answer("LA6570-1")},
			}},
			{LinkID: "44261-6", Text: "PHQ-9 total score", Answers: []Value{IntegerValue(14)}},
			{LinkID: "comment", Answers: []Value{StringValue("prefers phone contact")}},
			{LinkID: "consented", Answers: []Value{BooleanValue(true)}},
		},
	}
}

func TestQuestionnaireResponseSpec(t *testing.T) {
	qr, err := btQuestionnaireResponse().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, qr), `"questionnaire":"http://loinc.org/q/44249-1"`, `"status":"completed"`,
		`"item":[{"item":[{"answer":[{"valueCoding":{"code":"LA6569-3","system":"http://loinc.org"}}],"linkId":"44250-9"`,
		`{"answer":[{"valueInteger":14}],"linkId":"44261-6","text":"PHQ-9 total score"}`,
		`"valueString":"prefers phone contact"`, `"valueBoolean":true`, `"authored":"2026-03-02T09:30:00Z"`)
	for _, tt := range []struct {
		field string
		mod   func(*QuestionnaireResponseSpec)
	}{
		{"status", func(s *QuestionnaireResponseSpec) { s.Status = "" }},
		{"subject", func(s *QuestionnaireResponseSpec) { s.Subject = nil }},
		{"identifier", func(s *QuestionnaireResponseSpec) { s.Identifier = Identifier("x", "") }},
		{"item[0].item[1].linkId", func(s *QuestionnaireResponseSpec) { s.Items[0].Items[1].LinkID = "" }},
		{"item[0]", func(s *QuestionnaireResponseSpec) { s.Items[0].Answers = []Value{IntegerValue(1)} }},
		{"item[1].answer[0].value[x]", func(s *QuestionnaireResponseSpec) {
			s.Items[1].Answers = []Value{ConceptValue(Concept("x"))}
		}},
		{"item[1].answer[0].value[x]", func(s *QuestionnaireResponseSpec) { s.Items[1].Answers = []Value{{}} }},
		{"item[2].answer[0].value[x]", func(s *QuestionnaireResponseSpec) { s.Items[2].Answers = []Value{StringValue("")} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btQuestionnaireResponse()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btAuditEvent() AuditEventSpec {
	return AuditEventSpec{
		ID:       "ae1",
		Profile:  []string{"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create"},
		Type:     Coding(SystemAuditEventType, "rest", "Restful Operation"),
		Subtype:  []*dpb.Coding{Coding(SystemRestfulInteraction, "transaction", "transaction")},
		Action:   AuditActionExecute,
		Recorded: btT0.Add(1500 * time.Millisecond),
		Outcome:  AuditOutcomeSuccess,
		PurposeOfEvent: []*CodeableConcept{
			Concept("", PurposeOfUse("COC")),
		},
		Agent: []AuditAgent{
			{
				Type:      Concept("", Coding(SystemDICOM, "110153", "Source Role ID")),
				Who:       Ref("Device", "pathway"),
				Requestor: false,
				Network:   &AuditNetwork{Address: "pathway.network.example", Type: AuditNetworkTypeMachineName},
			},
			{
				Type:         Concept("", Coding(SystemDICOM, "110152", "Destination Role ID")),
				Who:          Ref("Organization", "clinic-b"),
				Requestor:    true,
				Policy:       []string{"https://network.example/dsa/clinic-b"},
				Network:      &AuditNetwork{Address: "https://fhir.clinic-b.example/r4", Type: AuditNetworkTypeURI},
				PurposeOfUse: []*CodeableConcept{Concept("", PurposeOfUse("COC"))},
			},
		},
		Source: AuditSource{
			Site:     "pathway",
			Observer: Ref("Device", "pathway"),
			Type:     []*dpb.Coding{Coding(SystemSecuritySourceType, "4", "Application Server")},
		},
		Entity: []AuditEntity{
			{
				What: Ref("Patient", "p1"),
				Type: Coding(SystemAuditEntityType, "1", "Person"),
				Role: Coding(SystemObjectRole, "1", "Patient"),
			},
			{
				What:          Ref("Bundle", "b1"),
				Type:          Coding(SystemAuditEntityType, "2", "System Object"),
				Role:          Coding(SystemObjectRole, "4", "Domain Resource"),
				SecurityLabel: []*dpb.Coding{Coding(SystemActCode, "PSY", "")},
				Description:   "referral bundle",
				Detail:        []AuditDetail{{Type: "decision", Value: "permit"}},
			},
			{
				Type:  Coding(SystemAuditEntityType, "2", "System Object"),
				Role:  Coding(SystemObjectRole, "24", "Query"),
				Query: []byte("Task?owner=Organization/clinic-b"),
			},
		},
	}
}

func TestAuditEventSpec(t *testing.T) {
	ae, err := btAuditEvent().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, ae), `"action":"E"`, `"outcome":"0"`, `"recorded":"2026-03-02T09:30:01.500Z"`,
		`"network":{"address":"https://fhir.clinic-b.example/r4","type":"5"}`, `"requestor":true`, `"requestor":false`,
		`"source":{"observer":{"reference":"Device/pathway"},"site":"pathway","type":[{"code":"4"`,
		`"what":{"reference":"Patient/p1"}`, `"query":"VGFzaz9vd25lcj1Pcmdhbml6YXRpb24vY2xpbmljLWI="`,
		`"detail":[{"type":"decision","valueString":"permit"}]`, `"policy":["https://network.example/dsa/clinic-b"]`)
	for _, tt := range []struct {
		field string
		mod   func(*AuditEventSpec)
	}{
		{"type", func(s *AuditEventSpec) { s.Type = nil }},
		{"action", func(s *AuditEventSpec) { s.Action = "X" }},
		{"recorded", func(s *AuditEventSpec) { s.Recorded = time.Time{} }},
		{"outcome", func(s *AuditEventSpec) { s.Outcome = "" }},
		{"agent", func(s *AuditEventSpec) { s.Agent = nil }},
		{"agent[1].network.type", func(s *AuditEventSpec) { s.Agent[1].Network.Type = "" }},
		{"agent[1].network.address", func(s *AuditEventSpec) { s.Agent[1].Network.Address = "" }},
		{"source.observer", func(s *AuditEventSpec) { s.Source.Observer = nil }},
		{"entity[2]", func(s *AuditEventSpec) { s.Entity[2].Name = "query" }},
		{"entity[1].detail[0].value[x]", func(s *AuditEventSpec) { s.Entity[1].Detail[0].Value = "" }},
		{"meta.profile[0]", func(s *AuditEventSpec) { s.Profile = []string{""} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btAuditEvent()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btProvenance() ProvenanceSpec {
	return ProvenanceSpec{
		ID:       "prov1",
		Target:   []*Reference{Ref("ServiceRequest", "sr1"), Ref("Task", "t1")},
		Occurred: btT0,
		Recorded: btT0.Add(time.Second),
		Policy:   []string{"https://network.example/mappings/ngo-a@3"},
		Reason:   []*CodeableConcept{Concept("", PurposeOfUse("COC"))},
		Activity: Concept("", Coding(SystemDataOperation, "CREATE", "create")),
		Agent: []ProvenanceAgent{
			{
				Type:       Concept("", Coding(SystemProvenanceParticipantType, "assembler", "Assembler")),
				Who:        Ref("Device", "pathway"),
				OnBehalfOf: Ref("Organization", "ngo-a"),
			},
		},
		Entity: []ProvenanceEntity{
			{Role: ProvenanceEntityRoleDerivation, What: &Reference{
				Identifier: Identifier("https://ngo-a.example/export", "cases.csv:17"),
				Display:    String("NGO A case export, row 17"),
			}},
		},
	}
}

func TestProvenanceSpec(t *testing.T) {
	p, err := btProvenance().Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, p)
	btContains(t, j, `"target":[{"reference":"ServiceRequest/sr1"},{"reference":"Task/t1"}]`,
		`"occurredDateTime":"2026-03-02T09:30:00Z"`, `"recorded":"2026-03-02T09:30:01Z"`,
		`"entity":[{"role":"derivation","what":{"display":"NGO A case export, row 17","identifier":{`,
		`"onBehalfOf":{"reference":"Organization/ngo-a"}`)
	if strings.Contains(j, `"signature"`) {
		t.Error("no signature was given, none must appear")
	}

	signed := btProvenance()
	signed.Signature = []Signature{{
		Type:      []*dpb.Coding{Coding("urn:iso-astm:E1762-95:2013", "1.2.840.10065.1.12.1.14", "Source Signature")},
		When:      btT0,
		Who:       Ref("Device", "pathway"),
		SigFormat: "application/jose",
		Data:      []byte("eyJhbGciOiJFUzI1NiJ9..sig"),
	}}
	p, err = signed.Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, p), `"signature":[{"data":"`, `"sigFormat":"application/jose"`)

	for _, tt := range []struct {
		field string
		mod   func(*ProvenanceSpec)
	}{
		{"target", func(s *ProvenanceSpec) { s.Target = nil }},
		{"recorded", func(s *ProvenanceSpec) { s.Recorded = time.Time{} }},
		{"agent", func(s *ProvenanceSpec) { s.Agent = nil }},
		{"agent[0].who", func(s *ProvenanceSpec) { s.Agent[0].Who = nil }},
		{"entity[0].role", func(s *ProvenanceSpec) { s.Entity[0].Role = "" }},
		{"entity[0].what", func(s *ProvenanceSpec) { s.Entity[0].What = nil }},
		{"signature[0].data", func(s *ProvenanceSpec) {
			s.Signature = []Signature{{Type: []*dpb.Coding{Coding("urn:iso-astm:E1762-95:2013", "1", "")}, When: btT0, Who: Ref("Device", "d")}}
		}},
		{"signature[0].type", func(s *ProvenanceSpec) {
			s.Signature = []Signature{{When: btT0, Who: Ref("Device", "d"), Data: []byte{1}}}
		}},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btProvenance()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btOrganization() OrganizationSpec {
	return OrganizationSpec{
		ID:          "clinic-b",
		Identifiers: []*dpb.Identifier{Identifier("https://network.example/partner", "clinic-b")},
		Active:      true,
		Type:        []*CodeableConcept{Concept("", Coding(SystemOrganizationType, "prov", "Healthcare Provider"))},
		Name:        "Clinic B",
		Alias:       []string{"Refugee Mental Health Clinic"},
		Telecom:     []*dpb.ContactPoint{Phone("+49 30 7654321")},
		PartOf:      Ref("Organization", "health-board"),
		Endpoint:    []*Reference{Ref("Endpoint", "clinic-b-fhir")},
	}
}

func TestOrganizationSpec(t *testing.T) {
	o, err := btOrganization().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, o), `"name":"Clinic B"`, `"alias":["Refugee Mental Health Clinic"]`,
		`"endpoint":[{"reference":"Endpoint/clinic-b-fhir"}]`, `"type":[{"coding":[{"code":"prov"`)
	for _, tt := range []struct {
		field string
		mod   func(*OrganizationSpec)
	}{
		{"name", func(s *OrganizationSpec) { s.Name, s.Identifiers = "", nil }},
		{"endpoint[0]", func(s *OrganizationSpec) { s.Endpoint = []*Reference{Ref("Patient", "p1")} }},
		{"alias[0]", func(s *OrganizationSpec) { s.Alias = []string{""} }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btOrganization()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func btEndpoint() EndpointSpec {
	return EndpointSpec{
		ID:                   "clinic-b-fhir",
		Status:               EndpointStatusActive,
		Name:                 "Clinic B FHIR API",
		ManagingOrganization: Ref("Organization", "clinic-b"),
		Contact:              []*dpb.ContactPoint{Email("it@clinic-b.example")},
		PayloadMimeType:      []string{"application/fhir+json"},
		Address:              "https://fhir.clinic-b.example/r4",
	}
}

func TestEndpointSpec(t *testing.T) {
	e, err := btEndpoint().Build()
	if err != nil {
		t.Fatal(err)
	}
	btContains(t, btJSON(t, e), `"address":"https://fhir.clinic-b.example/r4"`,
		`"connectionType":{"code":"hl7-fhir-rest","display":"HL7 FHIR","system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type"}`,
		`"payloadType":[{"coding":[{"code":"any"`, `"payloadMimeType":["application/fhir+json"]`, `"status":"active"`)
	for _, tt := range []struct {
		field string
		mod   func(*EndpointSpec)
	}{
		{"status", func(s *EndpointSpec) { s.Status = "" }},
		{"address", func(s *EndpointSpec) { s.Address = "" }},
		{"address", func(s *EndpointSpec) { s.Address = "fhir/r4" }},
		{"connectionType", func(s *EndpointSpec) { s.ConnectionType = Coding("", "hl7-fhir-rest", "") }},
		{"managingOrganization", func(s *EndpointSpec) { s.ManagingOrganization = Ref("Patient", "p1") }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			s := btEndpoint()
			tt.mod(&s)
			btExpectProblem(t, func() error { _, err := s.Build(); return err }, tt.field)
		})
	}
}

func TestSpecErrorMessage(t *testing.T) {
	_, err := TaskSpec{Status: TaskStatusRejected, Owner: WithDisplay(&Reference{}, "Amal Haddad")}.Build()
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	for _, want := range []string{"invalid Task spec: ", "status", "statusReason.text: required when status is rejected", "focus: required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "Amal") {
		t.Errorf("message %q carries a value from the spec", msg)
	}
	var se *SpecError
	if !errors.As(err, &se) || !se.Has("for") || se.Has("owner") {
		t.Errorf("problems: %v", se.Problems)
	}
}

// TestEnumsConvert checks that every typed enum value maps to a google/fhir
// code whose JSON is the value itself, so the switches cannot drift.
func TestEnumsConvert(t *testing.T) {
	statuses := []TaskStatus{TaskStatusDraft, TaskStatusRequested, TaskStatusReceived, TaskStatusAccepted,
		TaskStatusRejected, TaskStatusReady, TaskStatusCancelled, TaskStatusInProgress, TaskStatusOnHold,
		TaskStatusFailed, TaskStatusCompleted, TaskStatusEnteredInError}
	for _, st := range statuses {
		s := btTask()
		s.Status, s.StatusReason = st, "why"
		task, err := s.Build()
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		btContains(t, btJSON(t, task), `"status":"`+string(st)+`"`)
	}
	for _, st := range []ServiceRequestStatus{ServiceRequestStatusDraft, ServiceRequestStatusActive, ServiceRequestStatusOnHold,
		ServiceRequestStatusRevoked, ServiceRequestStatusCompleted, ServiceRequestStatusEnteredInError, ServiceRequestStatusUnknown} {
		for _, pr := range []Priority{PriorityRoutine, PriorityUrgent, PriorityASAP, PriorityStat} {
			s := btServiceRequest()
			s.Status, s.Priority = st, pr
			sr, err := s.Build()
			if err != nil {
				t.Fatal(err)
			}
			btContains(t, btJSON(t, sr), `"status":"`+string(st)+`"`, `"priority":"`+string(pr)+`"`)
		}
	}
	for _, in := range []ServiceRequestIntent{ServiceRequestIntentProposal, ServiceRequestIntentPlan, ServiceRequestIntentDirective,
		ServiceRequestIntentOrder, ServiceRequestIntentOriginalOrder, ServiceRequestIntentReflexOrder,
		ServiceRequestIntentFillerOrder, ServiceRequestIntentInstanceOrder, ServiceRequestIntentOption} {
		s := btServiceRequest()
		s.Intent = in
		sr, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, sr), `"intent":"`+string(in)+`"`)
	}
	for _, in := range []TaskIntent{TaskIntentUnknown, TaskIntentProposal, TaskIntentPlan, TaskIntentOrder,
		TaskIntentOriginalOrder, TaskIntentReflexOrder, TaskIntentFillerOrder, TaskIntentInstanceOrder, TaskIntentOption} {
		s := btTask()
		s.Intent = in
		task, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, task), `"intent":"`+string(in)+`"`)
	}
	for _, st := range []ConsentStatus{ConsentStatusDraft, ConsentStatusProposed, ConsentStatusActive,
		ConsentStatusRejected, ConsentStatusInactive, ConsentStatusEnteredInError} {
		s := btConsent()
		s.Status = st
		c, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, c), `"status":"`+string(st)+`"`)
	}
	for _, m := range []ConsentDataMeaning{ConsentDataMeaningInstance, ConsentDataMeaningRelated,
		ConsentDataMeaningDependents, ConsentDataMeaningAuthoredBy} {
		s := btConsent()
		s.Provision.Provision[0].Data[0].Meaning = m
		c, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, c), `"meaning":"`+string(m)+`"`)
	}
	for _, st := range []FlagStatus{FlagStatusActive, FlagStatusInactive, FlagStatusEnteredInError} {
		s := btFlag()
		s.Status = st
		f, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, f), `"status":"`+string(st)+`"`)
	}
	for _, st := range []ObservationStatus{ObservationStatusRegistered, ObservationStatusPreliminary, ObservationStatusFinal,
		ObservationStatusAmended, ObservationStatusCorrected, ObservationStatusCancelled,
		ObservationStatusEnteredInError, ObservationStatusUnknown} {
		s := btObservation()
		s.Status = st
		o, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, o), `"status":"`+string(st)+`"`)
	}
	for _, st := range []QuestionnaireResponseStatus{QuestionnaireResponseStatusInProgress, QuestionnaireResponseStatusCompleted,
		QuestionnaireResponseStatusAmended, QuestionnaireResponseStatusEnteredInError, QuestionnaireResponseStatusStopped} {
		s := btQuestionnaireResponse()
		s.Status = st
		qr, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, qr), `"status":"`+string(st)+`"`)
	}
	for _, a := range []AuditAction{AuditActionCreate, AuditActionRead, AuditActionUpdate, AuditActionDelete, AuditActionExecute} {
		for _, o := range []AuditOutcome{AuditOutcomeSuccess, AuditOutcomeMinorFailure, AuditOutcomeSeriousFailure, AuditOutcomeMajorFailure} {
			s := btAuditEvent()
			s.Action, s.Outcome = a, o
			ae, err := s.Build()
			if err != nil {
				t.Fatal(err)
			}
			btContains(t, btJSON(t, ae), `"action":"`+string(a)+`"`, `"outcome":"`+string(o)+`"`)
		}
	}
	for _, n := range []AuditNetworkType{AuditNetworkTypeMachineName, AuditNetworkTypeIPAddress,
		AuditNetworkTypeTelephoneNumber, AuditNetworkTypeEmailAddress, AuditNetworkTypeURI} {
		s := btAuditEvent()
		s.Agent[0].Network.Type = n
		ae, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, ae), `"type":"`+string(n)+`"`)
	}
	for _, r := range []ProvenanceEntityRole{ProvenanceEntityRoleDerivation, ProvenanceEntityRoleRevision,
		ProvenanceEntityRoleQuotation, ProvenanceEntityRoleSource, ProvenanceEntityRoleRemoval} {
		s := btProvenance()
		s.Entity[0].Role = r
		p, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, p), `"role":"`+string(r)+`"`)
	}
	for _, st := range []EndpointStatus{EndpointStatusActive, EndpointStatusSuspended, EndpointStatusError,
		EndpointStatusOff, EndpointStatusEnteredInError, EndpointStatusTest} {
		s := btEndpoint()
		s.Status = st
		e, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, e), `"status":"`+string(st)+`"`)
	}
	for _, g := range []Gender{GenderMale, GenderFemale, GenderOther, GenderUnknown} {
		s := btPatient()
		s.Gender = g
		p, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, p), `"gender":"`+string(g)+`"`)
	}
	for _, p := range []ProvisionType{ProvisionTypeDeny, ProvisionTypePermit} {
		s := btConsent()
		s.Provision.Type = p
		c, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		btContains(t, btJSON(t, c), `"type":"`+string(p)+`"`)
	}
	for _, m := range []HTTPMethod{HTTPMethodGET, HTTPMethodHEAD, HTTPMethodPOST, HTTPMethodPUT, HTTPMethodDELETE, HTTPMethodPATCH} {
		if !m.Valid() {
			t.Errorf("%s not valid", m)
		}
	}
	for _, m := range []SearchMode{SearchModeMatch, SearchModeInclude, SearchModeOutcome} {
		if !m.Valid() {
			t.Errorf("%s not valid", m)
		}
	}
	for _, bt := range []BundleType{BundleTypeTransaction, BundleTypeTransactionResponse, BundleTypeBatch,
		BundleTypeBatchResponse, BundleTypeSearchset, BundleTypeCollection} {
		if !bt.Valid() {
			t.Errorf("%s not valid", bt)
		}
	}
	if TaskStatus("Requested").Valid() || Priority("").Valid() || BundleType("document").Valid() {
		t.Error("Valid accepts a value outside the enum")
	}
}
