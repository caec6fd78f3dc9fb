package mappings

import (
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// The values the referral's enumerated fields take (referral.go).
var (
	bundleGenders            = []string{"male", "female", "other", "unknown"}
	bundlePriorities         = []string{"routine", "urgent", "asap", "stat"}
	bundleContactPreferences = []string{"phone", "sms", "email", "in-person", "via-caseworker"}
	bundleLinkWorkerSexes    = []string{"female", "male", "no-preference"}
	bundleFormats            = []string{"individual", "group", "either"}
	bundleApproaches         = []string{"signposting", "conversation"}
	bundleConsentMethods     = []string{"verbal", "written", "digital"}
	// bundlePurposes are the purposes of use Pathway routes under (DESIGN.md).
	bundlePurposes = []string{"TREAT", "COC", "ETREAT", "BTG", "CAREMGT", "HOPERAT", "PUBHLTH", "HRESCH"}
)

// check records every problem with the referral: required values, values
// outside their sets, malformed codes, ids, dates and text. Problems name the
// target field and the rule, never the value.
func (b *bundler) check() {
	r := &b.r
	switch {
	case r.SourceSystem == "":
		b.fail("source.system", "required")
	case !bundleAbsURI(r.SourceSystem):
		b.fail("source.system", "not an absolute URI without spaces")
	}
	if r.RecordID == "" {
		b.fail("source.record_id", "required")
	} else {
		b.text("source.record_id", r.RecordID)
	}
	b.checkPatient()
	b.checkService()
	b.checkPractitioner()
	b.checkConsent()
	b.orgID("task.owner", r.Task.Owner)
	b.text("task.owner_name", r.Task.OwnerName)
	b.checkClinical()
}

func (b *bundler) checkPatient() {
	p := &b.r.Patient
	if p.IdentifierSystem != "" && !bundleAbsURI(p.IdentifierSystem) {
		b.fail("patient.identifier_system", "not an absolute URI without spaces")
	}
	b.text("patient.identifier", p.Identifier)
	b.text("patient.pseudonym", p.Pseudonym)
	b.text("patient.given_name", p.GivenName)
	b.text("patient.family_name", p.FamilyName)
	b.oneOf("patient.gender", p.Gender, bundleGenders)
	if p.BirthDate != "" {
		if _, ok := bundleBirthDate(p.BirthDate); !ok {
			b.fail("patient.birth_date", "not a date: YYYY, YYYY-MM or YYYY-MM-DD")
		}
	}
	for i, l := range p.Languages {
		if !bundleLanguageTag(l) {
			b.fail(bundleIndex("patient.languages", i), "not a BCP-47 language tag")
		}
	}
	if p.PreferredLanguage != "" && !bundleLanguageTag(p.PreferredLanguage) {
		b.fail("patient.preferred_language", "not a BCP-47 language tag")
	}
	b.text("patient.phone", p.Phone)
	b.text("patient.email", p.Email)
	b.oneOf("patient.contact_preference", p.ContactPreference, bundleContactPreferences)

	b.code("patient.country_of_birth", p.CountryOfBirth, "")
	b.code("patient.ethnicity", p.Ethnicity, "")
	b.code("patient.migrant_type", p.MigrantType, fhir.PathwayGroupMigrantType)
	b.code("patient.legal_status", p.LegalStatus, fhir.PathwayGroupLegalStatus)
	if p.YearOfArrival != "" {
		if _, ok := bundleYear(p.YearOfArrival); !ok {
			b.fail("patient.year_of_arrival", "not a year: YYYY")
		}
	}
	b.text("patient.migration_history", p.MigrationHistory)
	b.checkIdentifiers("patient.identifiers", p.Identifiers)
}

// checkIdentifiers checks identifiers: values and systems are text without
// control characters; a system given as a URI has no spaces.
func (b *bundler) checkIdentifiers(target string, ids []Identifier) {
	for i, id := range ids {
		t := bundleIndex(target, i)
		b.text(t, id.Value)
		b.text(t, id.System)
		if strings.Contains(id.System, "://") && !bundleAbsURI(id.System) {
			b.fail(t, "the system is not an absolute URI without spaces")
		}
	}
}

func (b *bundler) checkPractitioner() {
	p := &b.r.Practitioner
	b.checkIdentifiers("practitioner.identifiers", p.Identifiers)
	b.text("practitioner.given_name", p.GivenName)
	b.text("practitioner.family_name", p.FamilyName)
	b.text("practitioner.phone", p.Phone)
	b.text("practitioner.email", p.Email)
	if b.hasPractitioner() && bundleBlank(p.GivenName) && bundleBlank(p.FamilyName) && !bundleHasIdentifier(p.Identifiers) {
		b.fail("practitioner", "a name or an identifier is required when the record names a practitioner")
	}
}

// bundleHasIdentifier reports whether any identifier has a value.
func bundleHasIdentifier(ids []Identifier) bool {
	for _, id := range ids {
		if !bundleBlank(id.Value) {
			return true
		}
	}
	return false
}

// bundleOID reports whether s is a bare OID: numbers separated by dots,
// starting 0, 1 or 2 (2.16.840.1.113883.4.1).
func bundleOID(s string) bool {
	if len(s) < 3 || s[0] < '0' || s[0] > '2' || s[1] != '.' {
		return false
	}
	for _, arc := range strings.Split(s, ".") {
		if arc == "" || len(arc) > 1 && arc[0] == '0' {
			return false
		}
		for i := range len(arc) {
			if arc[i] < '0' || arc[i] > '9' {
				return false
			}
		}
	}
	return true
}

func (b *bundler) checkService() {
	s := &b.r.Service
	b.text("service.referral_id", s.ReferralIdentifier)
	b.checkIdentifiers("service.identifiers", s.Identifiers)
	if !s.OccurrenceStart.IsZero() && !s.OccurrenceEnd.IsZero() && s.OccurrenceEnd.Before(s.OccurrenceStart) {
		b.fail("service.occurrence_end", "before service.occurrence_start")
	}
	if len(s.Categories) == 0 && len(s.Needs) == 0 {
		b.fail("service", "at least one category or need is required")
	}
	for i, c := range s.Categories {
		b.requiredCode(bundleIndex("service.categories", i), c)
	}
	for i, c := range s.Needs {
		b.requiredCode(bundleIndex("service.needs", i), c)
	}
	b.oneOf("service.priority", s.Priority, bundlePriorities)
	b.code("service.triage", s.TriageLevel, "")
	b.text("service.reason", s.ReasonText)
	for i, c := range s.ReasonCodes {
		b.requiredCode(bundleIndex("service.reason_codes", i), c)
	}
	b.orgID("service.requester", s.Requester)
	b.text("service.requester_name", s.RequesterName)
	for i, n := range s.Notes {
		b.text(bundleIndex("service.notes", i), n)
	}
	b.oneOf("service.link_worker_sex", s.LinkWorkerSex, bundleLinkWorkerSexes)
	b.oneOf("service.format", s.Format, bundleFormats)
	b.oneOf("service.approach", s.Approach, bundleApproaches)
	b.text("service.patient_instruction", s.Instruction)
}

func (b *bundler) checkConsent() {
	c := &b.r.Consent
	if !c.Start.IsZero() && !c.End.IsZero() && c.End.Before(c.Start) {
		b.fail("consent.end", "before consent.start")
	}
	for i, p := range c.Partners {
		if p == "" {
			b.fail(bundleIndex("consent.partners", i), "empty")
			continue
		}
		b.orgID(bundleIndex("consent.partners", i), p)
	}
	for i, k := range c.PartnerKinds {
		if !bundleCodeString(k) {
			b.fail(bundleIndex("consent.partner_kinds", i), "not a code (no leading, trailing or repeated spaces)")
		}
	}
	for i, p := range c.Purposes {
		if !bundleIn(p, bundlePurposes) {
			b.fail(bundleIndex("consent.purposes", i), "not a purpose of use Pathway routes under ("+strings.Join(bundlePurposes, ", ")+")")
		}
	}
	b.oneOf("consent.method", c.Method, bundleConsentMethods)
	if c.ShareImmigrationData {
		// Immigration data never leaves without a provision naming partner and purpose.
		if c.Given == nil || !*c.Given {
			b.fail("consent.share_immigration_data", "needs consent.given true")
		} else if len(c.Partners) == 0 {
			b.fail("consent.share_immigration_data", "needs at least one partner in consent.partners: immigration data is shared only with partners named by id")
		}
	}
}

func (b *bundler) checkClinical() {
	for i, s := range b.r.Screenings {
		f := bundleIndex("screening", i)
		inst, ok := bundleInstruments[strings.ToLower(s.Instrument)]
		switch {
		case s.Instrument == "":
			b.fail(f+".instrument", "required")
		case !ok:
			b.fail(f+".instrument", "not one of phq-9, gad-7, rhs-15")
		}
		switch {
		case s.Score == nil:
			b.fail(f+".score", "required")
		case ok && (*s.Score < 0 || *s.Score > inst.max):
			b.fail(f+".score", "out of range for "+inst.name+" (0 to "+strconv.Itoa(inst.max)+")")
		}
	}
	for i, rk := range b.r.Risks {
		b.requiredCode(bundleIndex("risk", i)+".code", rk.Code)
	}
	for i, o := range b.r.Outcomes {
		f := bundleIndex("outcome", i)
		b.requiredCode(f+".code", o.Code)
		b.text(f+".value", o.Value)
	}
}

// text checks free text: valid UTF-8 and no control characters other than
// tab, carriage return and line feed (FHIR strings). Empty text is absent.
func (b *bundler) text(target, s string) {
	if !utf8.ValidString(s) {
		b.fail(target, "not valid UTF-8")
		return
	}
	for _, c := range s {
		if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			b.fail(target, "contains a control character")
			return
		}
	}
}

// oneOf checks an optional value against its allowed set.
func (b *bundler) oneOf(target, v string, allowed []string) {
	if v != "" && !bundleIn(v, allowed) {
		b.fail(target, "not one of "+strings.Join(allowed, ", "))
	}
}

// orgID checks an optional Organization id from the partner directory.
func (b *bundler) orgID(target, id string) {
	if id != "" && !bundleFHIRID(id) {
		b.fail(target, "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
}

// requiredCode checks a code that must carry something.
func (b *bundler) requiredCode(target string, c Code) {
	if !bundleHasCode(c) && c.Display == "" {
		b.fail(target, "required")
		return
	}
	b.code(target, c, "")
}

// bundleHasCode reports whether a code carries a system, a code or a text
// that is not blank: what Build writes. A blank code is absent.
func bundleHasCode(c Code) bool { return c.System != "" || c.Code != "" || !bundleBlank(c.Text) }

// code checks an optional code: a system is an absolute URI and comes with
// a code, a code comes with its system, texts are valid. A code of Pathway's
// CodeSystem must exist and not be a grouping code; group, when not "",
// names the group it must be under.
func (b *bundler) code(target string, c Code, group string) {
	b.text(target, c.Text)
	b.text(target, c.Display)
	switch {
	case c.System == "" && c.Code == "":
		if c.Display != "" {
			b.fail(target, "a display needs a system and a code")
		}
		return
	case c.System == "":
		b.fail(target, "a code needs a system")
		return
	case c.Code == "":
		b.fail(target, "a system needs a code")
		return
	case !bundleAbsURI(c.System):
		b.fail(target, "the system is not an absolute URI without spaces")
		return
	case !bundleCodeString(c.Code):
		b.fail(target, "not a code (no leading, trailing or repeated spaces)")
		return
	}
	if c.System != fhir.SystemPathway {
		return
	}
	parent, ok := bundlePathwayParents()[c.Code]
	switch {
	case !ok:
		b.fail(target, "not a code of Pathway's CodeSystem")
	case parent == "":
		b.fail(target, "a grouping code of Pathway's CodeSystem, not selectable: use a code under it")
	case group != "" && parent != group:
		b.fail(target, "a Pathway code outside the "+group+" group")
	}
}

// bundlePathwayParents maps each code of Pathway's CodeSystem to the code of
// its group ("" for the groups themselves).
var bundlePathwayParents = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	cs, err := fhir.PathwayCodeSystem()
	if err != nil {
		return m
	}
	for _, g := range cs.GetConcept() {
		m[g.GetCode().GetValue()] = ""
		for _, c := range g.GetConcept() {
			m[c.GetCode().GetValue()] = g.GetCode().GetValue()
		}
	}
	return m
})

// bundleInstrument is a screening instrument Build knows.
type bundleInstrument struct {
	name string // as written in the referral: "phq-9"
	max  int    // the highest total score
	// code is the Observation.code of the total score.
	code func() *fhir.CodeableConcept
}

// bundleInstruments are the screening instruments, by lower-case name.
// PHQ-9 and GAD-7 have LOINC codes for their total scores. The RHS-15
// (Refugee Health Screener, 14 items scored 0 to 4; its distress
// thermometer is a separate item) has no LOINC code, so its code is text
// only until Pathway's CodeSystem gets one.
var bundleInstruments = map[string]bundleInstrument{
	"phq-9": {name: "phq-9", max: 27, code: func() *fhir.CodeableConcept {
		return fhir.Concept("PHQ-9 total score",
			fhir.Coding(fhir.SystemLOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"))
	}},
	"gad-7": {name: "gad-7", max: 21, code: func() *fhir.CodeableConcept {
		return fhir.Concept("GAD-7 total score",
			fhir.Coding(fhir.SystemLOINC, "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"))
	}},
	"rhs-15": {name: "rhs-15", max: 56, code: func() *fhir.CodeableConcept {
		return fhir.Concept("Refugee Health Screener-15 (RHS-15) total score, items 1 to 14")
	}},
}

// bundleIn reports whether v is one of set.
func bundleIn(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// bundleIndex returns "field[i]".
func bundleIndex(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// bundleAbsURI reports whether s is an absolute URI (it has a scheme) with no whitespace.
func bundleAbsURI(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != ""
}

// bundleCodeString reports whether s is a FHIR code: no leading or trailing
// whitespace and single spaces only inside.
func bundleCodeString(s string) bool {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\t\r\n") || strings.Contains(s, "  ") {
		return false
	}
	return utf8.ValidString(s)
}

// bundleFHIRID reports whether s is a FHIR id: 1 to 64 of A-Z a-z 0-9 - .
func bundleFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// bundleLanguageTag reports whether s is shaped like a BCP-47 tag: a primary
// language subtag of 2 to 8 letters, then subtags of 1 to 8 letters or
// digits, separated by hyphens ("ar", "prs", "uk-UA", "ti-ER", "zh-Hant-TW").
func bundleLanguageTag(s string) bool {
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 || i == 0 && len(sub) < 2 {
			return false
		}
		for j := range len(sub) {
			c := sub[j]
			letter := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// bundleBirthDate parses YYYY, YYYY-MM or YYYY-MM-DD (a real calendar date)
// into a FHIR date of that precision.
func bundleBirthDate(s string) (*dpb.Date, bool) {
	layouts := map[int]string{4: "2006", 7: "2006-01", 10: "2006-01-02"}
	layout, ok := layouts[len(s)]
	if !ok {
		return nil, false
	}
	t, err := time.Parse(layout, s)
	if err != nil || t.Year() < 1 {
		return nil, false
	}
	switch len(s) {
	case 4:
		return fhir.Date(t.Year(), 0, 0), true
	case 7:
		return fhir.Date(t.Year(), t.Month(), 0), true
	default:
		return fhir.Date(t.Year(), t.Month(), t.Day()), true
	}
}

// bundleYear parses a four-digit year.
func bundleYear(s string) (int32, bool) {
	if len(s) != 4 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	return int32(n), true
}
