package fhir

import (
	"strings"
	"testing"
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	flagpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/flag_go_proto"
)

func TestRefIsTyped(t *testing.T) {
	ref := Ref("Patient", "123")
	if got := ref.GetPatientId().GetValue(); got != "123" {
		t.Fatalf("Ref(Patient, 123) is not google/fhir's typed form: %v", ref)
	}
	if got := Ref("ServiceRequest", "sr1").GetServiceRequestId().GetValue(); got != "sr1" {
		t.Errorf("Ref(ServiceRequest) = %q", got)
	}
	// Not a resource type: kept as written.
	if got := Ref("Nonsense", "1").GetUri().GetValue(); got != "Nonsense/1" {
		t.Errorf("Ref(Nonsense) = %q", got)
	}
}

func TestRefMarshals(t *testing.T) {
	f := &flagpb.Flag{
		Status:  &flagpb.Flag_StatusCode{Value: 1},
		Code:    Concept("risk"),
		Subject: WithDisplay(Ref("Patient", "123"), "the person"),
		Author:  RefURN("urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2"),
	}
	b, err := Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"subject":{"display":"the person","reference":"Patient/123"}`,
		`"author":{"reference":"urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal = %s\nwant it to contain %s", b, want)
		}
	}
	r := Parse(b)
	if !r.Valid() {
		t.Fatalf("issues: %v", r.Issues)
	}
	back := Unwrap(r.Resource).(*flagpb.Flag)
	if got := back.GetSubject().GetPatientId().GetValue(); got != "123" {
		t.Errorf("parsed subject = %v", back.GetSubject())
	}
}

func TestRefAccessors(t *testing.T) {
	hist := Ref("Task", "t1")
	hist.GetTaskId().History = &dpb.Id{Value: "3"}
	tests := []struct {
		name             string
		ref              *Reference
		str, typ, id     string
		parseRoundTrips  bool
		wantTypedOnParse bool
	}{
		{"typed", Ref("Patient", "p1"), "Patient/p1", "Patient", "p1", true, true},
		{"typed with history", hist, "Task/t1/_history/3", "Task", "t1", true, true},
		{"uri relative (as the marshaller leaves it)", RefURN("Patient/p1"), "Patient/p1", "Patient", "p1", false, true},
		{"absolute", RefURN("https://fhir.clinic.example/r4/Patient/p1"), "https://fhir.clinic.example/r4/Patient/p1", "Patient", "p1", true, false},
		{"absolute with history", RefURN("https://x.example/Task/t1/_history/2"), "https://x.example/Task/t1/_history/2", "Task", "t1", true, false},
		{"urn", RefURN("urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2"), "urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2", "", "", true, false},
		{"fragment", RefFragment("c1"), "#c1", "", "", true, false},
		{"not a resource type", RefURN("Foo/1"), "Foo/1", "", "", true, false},
		{"identifier only", &Reference{Identifier: Identifier("https://ngo.example/ids", "9")}, "", "", "", false, false},
		{"nil", nil, "", "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RefString(tt.ref); got != tt.str {
				t.Errorf("RefString = %q, want %q", got, tt.str)
			}
			if got := RefType(tt.ref); got != tt.typ {
				t.Errorf("RefType = %q, want %q", got, tt.typ)
			}
			if got := RefID(tt.ref); got != tt.id {
				t.Errorf("RefID = %q, want %q", got, tt.id)
			}
			if tt.str == "" {
				return
			}
			p := ParseRef(tt.str)
			if got := RefString(p); got != tt.str {
				t.Errorf("RefString(ParseRef) = %q", got)
			}
			if _, rid := typedRef(p); (rid != nil) != tt.wantTypedOnParse {
				t.Errorf("ParseRef(%q) typed = %v, want %v", tt.str, rid != nil, tt.wantTypedOnParse)
			}
		})
	}
	withType := RefURN("urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2")
	withType.Type = URI("Organization")
	if got := RefType(withType); got != "Organization" {
		t.Errorf("RefType from Reference.type = %q", got)
	}
}

func TestIdentifierQuery(t *testing.T) {
	tests := []struct {
		id   *dpb.Identifier
		want string
	}{
		{Identifier("https://ngo-a.example/case", "c-17"), "identifier=https://ngo-a.example/case|c-17"},
		{Identifier("", "c-17"), "identifier=c-17"},
		{Identifier("urn:oid:1.2.3", "a b&c=d|e,f$g\\h#"), `identifier=urn:oid:1.2.3|a%20b%26c%3Dd%5C%7Ce%5C%2Cf%5C%24g%5C%5Ch%23`},
	}
	for _, tt := range tests {
		if got := IdentifierQuery(tt.id); got != tt.want {
			t.Errorf("IdentifierQuery = %s\nwant %s", got, tt.want)
		}
	}
}

func TestDateTimes(t *testing.T) {
	berlin := time.FixedZone("CEST", 2*3600)
	at := time.Date(2026, 5, 1, 10, 20, 30, 0, berlin)
	tests := []struct {
		name string
		v    *dpb.DateTime
		want string
	}{
		{"seconds with offset", DateTime(at, PrecisionAuto), "2026-05-01T10:20:30+02:00"},
		{"utc", DateTime(at.UTC(), PrecisionSecond), "2026-05-01T08:20:30Z"},
		{"millis", DateTime(at.Add(123*time.Millisecond), PrecisionAuto), "2026-05-01T10:20:30.123+02:00"},
		{"micros", DateTime(at.Add(123456*time.Microsecond).UTC(), PrecisionAuto), "2026-05-01T08:20:30.123456Z"},
		{"truncated to seconds", DateTime(at.Add(999*time.Millisecond), PrecisionSecond), "2026-05-01T10:20:30+02:00"},
		{"day in its own zone", DateTime(time.Date(2026, 5, 1, 0, 30, 0, 0, berlin), PrecisionDay), "2026-05-01"},
		{"month", DateTime(at, PrecisionMonth), "2026-05"},
		{"year", DateTime(at, PrecisionYear), "2026"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flagpb.Flag{Status: &flagpb.Flag_StatusCode{Value: 1}, Code: Concept("x"), Subject: Ref("Patient", "p"),
				Period: &dpb.Period{Start: tt.v}}
			b, err := Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"period":{"start":"` + tt.want + `"}`; !strings.Contains(string(b), want) {
				t.Errorf("got %s, want %s", b, want)
			}
			r := Parse(b)
			if !r.Valid() {
				t.Fatalf("issues: %v", r.Issues)
			}
			back := Unwrap(r.Resource).(*flagpb.Flag).GetPeriod().GetStart()
			if back.GetValueUs() != tt.v.GetValueUs() || back.GetPrecision() != tt.v.GetPrecision() || back.GetTimezone() != tt.v.GetTimezone() {
				t.Errorf("round trip: got %v, built %v", back, tt.v)
			}
		})
	}
	if DateTime(time.Time{}, PrecisionAuto) != nil || Instant(time.Time{}) != nil || Period(time.Time{}, time.Time{}) != nil {
		t.Error("the zero time must give nil")
	}
}

func TestDatesAndInstants(t *testing.T) {
	ppb := func(d *dpb.Date) string {
		b, err := PatientSpec{BirthDate: d}.Build()
		if err != nil {
			t.Fatal(err)
		}
		j := btJSON(t, b)
		i := strings.Index(j, `"birthDate":"`)
		return j[i+13 : strings.IndexByte(j[i+13:], '"')+i+13]
	}
	for _, tt := range []struct {
		d    *dpb.Date
		want string
	}{
		{Date(1990, 3, 14), "1990-03-14"},
		{Date(1990, 3, 0), "1990-03"},
		{Date(1990, 0, 0), "1990"},
	} {
		if got := ppb(tt.d); got != tt.want {
			t.Errorf("Date = %s, want %s", got, tt.want)
		}
	}
	for _, tt := range []struct {
		t    time.Time
		want dpb.Instant_Precision
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), dpb.Instant_SECOND},
		{time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), dpb.Instant_MILLISECOND},
		{time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC), dpb.Instant_MICROSECOND},
	} {
		if got := Instant(tt.t).GetPrecision(); got != tt.want {
			t.Errorf("Instant(%v) precision = %v, want %v", tt.t, got, tt.want)
		}
	}
}
