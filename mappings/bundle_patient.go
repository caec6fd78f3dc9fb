package mappings

import (
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
)

// patient builds the minimal Patient: identifiers, names, gender, birth
// date, telecom, languages and interpreter need. Nothing sensitive about migration
// is on it (see socialHistory).
//
// Names: given and family names when the record has them; the pseudonym as
// name.text with use "anonymous" (R4 NameUse: "anonymous assigned name,
// alias, or pseudonym"), alone when the record has no name, so a
// pseudonymous record stays pseudonymous.
func (b *bundler) patient() (*ppb.Patient, error) {
	p := &b.r.Patient
	spec := fhir.PatientSpec{ID: b.id("Patient")}
	if !bundleBlank(p.Identifier) {
		system := p.IdentifierSystem
		if system == "" {
			system = b.system("client")
		}
		spec.Identifiers = append(spec.Identifiers, fhir.Identifier(system, p.Identifier))
	}
	spec.Identifiers = b.identifiers(spec.Identifiers, p.Identifiers, "client")
	if !bundleBlank(p.GivenName) || !bundleBlank(p.FamilyName) {
		family := p.FamilyName
		if bundleBlank(family) {
			family = ""
		}
		given := p.GivenName
		if bundleBlank(given) {
			given = ""
		}
		spec.Name = append(spec.Name, fhir.HumanName(family, given))
	}
	if !bundleBlank(p.Pseudonym) {
		spec.Name = append(spec.Name, &dpb.HumanName{
			Use:  &dpb.HumanName_UseCode{Value: cpb.NameUseCode_ANONYMOUS},
			Text: fhir.String(p.Pseudonym),
		})
	}
	spec.Gender = fhir.Gender(p.Gender)
	if p.BirthDate != "" {
		spec.BirthDate, _ = bundleBirthDate(p.BirthDate)
	}
	spec.Telecom = b.telecom()
	spec.Languages = bundleLanguages(p.Languages, p.PreferredLanguage)

	patient, err := spec.Build()
	if err != nil {
		return nil, err
	}
	if p.InterpreterNeeded != nil {
		patient.Extension = append(patient.Extension, &dpb.Extension{
			Url:   fhir.URI(fhir.ExtInterpreterRequired),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Boolean{Boolean: fhir.Boolean(*p.InterpreterNeeded)}},
		})
	}
	return patient, nil
}

// telecom returns the phone and email, the one the person prefers ranked 1.
// A phone the person prefers to get texts on is written with system sms.
func (b *bundler) telecom() []*dpb.ContactPoint {
	p := &b.r.Patient
	var out []*dpb.ContactPoint
	if !bundleBlank(p.Phone) {
		cp := fhir.Phone(p.Phone)
		switch p.ContactPreference {
		case "sms":
			cp.System = &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_SMS}
			cp.Rank = &dpb.PositiveInt{Value: 1}
		case "phone":
			cp.Rank = &dpb.PositiveInt{Value: 1}
		}
		out = append(out, cp)
	}
	if !bundleBlank(p.Email) {
		cp := fhir.Email(p.Email)
		if p.ContactPreference == "email" {
			cp.Rank = &dpb.PositiveInt{Value: 1}
		}
		out = append(out, cp)
	}
	return out
}

// bundleLanguages returns the languages once each (tags compared without
// case), the preferred one marked: preferred when given (added first if
// missing from the list), else the first.
func bundleLanguages(tags []string, preferred string) []fhir.Language {
	var out []fhir.Language
	seen := map[string]bool{}
	addTag := func(tag string) {
		if tag == "" || seen[strings.ToLower(tag)] {
			return
		}
		seen[strings.ToLower(tag)] = true
		out = append(out, fhir.Language{Tag: tag})
	}
	addTag(preferred)
	for _, t := range tags {
		addTag(t)
	}
	if len(out) > 0 {
		out[0].Preferred = true
	}
	return out
}

// socialHistory builds one Observation for each sensitive fact about the
// person the record has, category social-history.
//
// Legal status, migrant type, year of arrival, migration history and
// country of birth are labelled IMMIG (Pathway's label for immigration and
// legal-status data) and R (restricted). Each is a resource of its own, not
// an element of the Patient (such as the core patient-birthPlace extension),
// so that policy withholds it whole without inline labels, and the Patient
// can go to a partner who may not see them. Ethnicity is labelled R only.
// Nothing else in the bundle refers to these Observations, so withholding
// one leaves no dangling reference and no trace that it existed.
//
// Codes: country of birth is LOINC 78746-5 "Country of birth" (the code
// US public-health reporting uses), with Pathway's country-of-birth beside
// it; ethnicity is SNOMED CT 364699009 "Ethnic group"; year of arrival is
// Pathway's year-of-arrival. Legal status, migrant type and migration
// history have no standard code: the Observation code is the Pathway
// group code (legal-status, migrant-type, migration-history) and the value
// is the code under it, or free text for migration history. Each is
// effective when the referral was authored: when the fact was recorded.
func (b *bundler) socialHistory() ([]*obspb.Observation, error) {
	p := &b.r.Patient
	type fact struct {
		kind      string
		code      *fhir.CodeableConcept
		value     fhir.Value
		immigrant bool
	}
	var facts []fact
	if bundleHasCode(p.LegalStatus) {
		facts = append(facts, fact{"legal-status", bundlePathwayConcept(fhir.PathwayGroupLegalStatus),
			fhir.ConceptValue(bundleConcept(p.LegalStatus)), true})
	}
	if bundleHasCode(p.MigrantType) {
		facts = append(facts, fact{"migrant-type", bundlePathwayConcept(fhir.PathwayGroupMigrantType),
			fhir.ConceptValue(bundleConcept(p.MigrantType)), true})
	}
	if y, ok := bundleYear(p.YearOfArrival); ok {
		facts = append(facts, fact{"year-of-arrival", bundlePathwayConcept(fhir.PathwayHistoryYearOfArrival),
			fhir.IntegerValue(y), true})
	}
	if !bundleBlank(p.MigrationHistory) {
		facts = append(facts, fact{"migration-history", bundlePathwayConcept(fhir.PathwayGroupMigrationHistory),
			fhir.StringValue(p.MigrationHistory), true})
	}
	if bundleHasCode(p.CountryOfBirth) {
		code := fhir.Concept("Country of birth",
			fhir.Coding(fhir.SystemLOINC, "78746-5", "Country of birth"),
			fhir.PathwayCoding(fhir.PathwayHistoryCountryOfBirth))
		facts = append(facts, fact{"country-of-birth", code, fhir.ConceptValue(bundleConcept(p.CountryOfBirth)), true})
	}
	if bundleHasCode(p.Ethnicity) {
		code := fhir.Concept("Ethnicity", fhir.Coding(fhir.SystemSNOMED, "364699009", "Ethnic group"))
		facts = append(facts, fact{"ethnicity", code, fhir.ConceptValue(bundleConcept(p.Ethnicity)), false})
	}

	var out []*obspb.Observation
	for _, f := range facts {
		security := []*dpb.Coding{bundleRestricted()}
		if f.immigrant {
			security = []*dpb.Coding{fhir.ImmigrationLabel(), bundleRestricted()}
		}
		o, err := fhir.ObservationSpec{
			ID:       b.id("Observation", f.kind),
			Security: security,
			Status:   fhir.ObservationStatusFinal,
			Category: []*fhir.CodeableConcept{bundleObservationCategory("social-history", "Social History")},
			Code:     f.code,
			Subject:  bundleURN(b.id("Patient")),
			Value:    f.value,
		}.Build()
		if err != nil {
			return nil, err
		}
		bundleEffective(o, b.r.Service.AuthoredOn)
		out = append(out, o)
	}
	return out, nil
}

// bundleRestricted returns the confidentiality label R (restricted).
func bundleRestricted() *dpb.Coding {
	return fhir.Coding(fhir.SystemConfidentiality, "R", "restricted")
}

// bundleObservationCategory returns an Observation category (social-history, survey).
func bundleObservationCategory(code, display string) *fhir.CodeableConcept {
	return fhir.Concept("", fhir.Coding(fhir.SystemObservationCategory, code, display))
}

// bundlePathwayConcept returns a concept of one Pathway code, with its display.
func bundlePathwayConcept(code string) *fhir.CodeableConcept {
	return fhir.Concept("", fhir.PathwayCoding(code))
}

// bundleConcept returns the CodeableConcept of a checked Code, nil for a
// blank one: its coding when it has one (a Pathway code without a display
// gets the CodeSystem's) and its text.
func bundleConcept(c Code) *fhir.CodeableConcept {
	if !bundleHasCode(c) {
		return nil
	}
	var coding *dpb.Coding
	if c.Code != "" {
		display := c.Display
		if display == "" && c.System == fhir.SystemPathway {
			display, _ = fhir.PathwayCode(c.Code)
		}
		coding = fhir.Coding(c.System, c.Code, display)
	}
	text := c.Text
	if bundleBlank(text) {
		text = ""
	}
	return fhir.Concept(text, coding)
}

// bundleEffective sets an Observation's effectiveDateTime (see bundleDateTime).
func bundleEffective(o *obspb.Observation, t time.Time) {
	if t.IsZero() {
		return
	}
	o.Effective = &obspb.Observation_EffectiveX{
		Choice: &obspb.Observation_EffectiveX_DateTime{DateTime: bundleDateTime(t)},
	}
}

// bundleDateTime returns a FHIR dateTime of t, nil for the zero time. A time
// exactly at midnight UTC is what a date-only source value parses to, so it
// becomes a date ("2026-03-02"); other times keep their precision and offset.
func bundleDateTime(t time.Time) *dpb.DateTime {
	if t.IsZero() {
		return nil
	}
	if t.Location() == time.UTC && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return fhir.DateTime(t, fhir.PrecisionDay)
	}
	return fhir.DateTime(t, fhir.PrecisionAuto)
}

// bundlePeriod returns a Period of the times (see bundleDateTime), nil when both are zero.
func bundlePeriod(start, end time.Time) *dpb.Period {
	if start.IsZero() && end.IsZero() {
		return nil
	}
	return &dpb.Period{Start: bundleDateTime(start), End: bundleDateTime(end)}
}

// bundleBlank reports whether free text holds nothing but whitespace: such
// text is treated as absent. Other text is kept byte for byte.
func bundleBlank(s string) bool { return strings.TrimSpace(s) == "" }
