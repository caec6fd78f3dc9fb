package mappings

// Build: one Referral becomes one FHIR R4 transaction Bundle.
//
// The files bundle_*.go hold the parts: bundle_patient.go the Patient and
// the sensitive social-history Observations, bundle_service.go the
// ServiceRequest and the Task, bundle_consent.go the Consent,
// bundle_clinical.go screenings, risks and outcomes, bundle_check.go the
// checks of the referral's values.

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/fhir"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// Extensions Pathway defines for what R4 has no element for. Each is valid
// R4 (an extension needs no registration to be valid); their definitions
// will be published beside Pathway's CodeSystem.
const (
	// ExtReferralPreferences is a complex extension on ServiceRequest holding
	// the person's preferences in machine-readable form, for routing: the
	// sub-extensions "linkWorkerSex" (female | male | no-preference),
	// "format" (individual | group | either), "approach" (signposting |
	// conversation) and "contactPreference" (phone | sms | email | in-person |
	// via-caseworker), each a valueCode. The same preferences are written in
	// plain English in ServiceRequest.patientInstruction.
	ExtReferralPreferences = "https://pathway-fhir.org/fhir/StructureDefinition/referral-preferences"

	// ExtConsentPartnerKind is a modifier extension on a Consent provision
	// (valueCode: a partner kind from pathway.yaml, such as clinic, ngo or
	// community), repeated once per kind. It widens the provision's actors:
	// the provision applies to the Organizations named in provision.actor and
	// to every partner of the named kinds. It is a modifier extension because
	// a system that ignored it would read a provision without actors as
	// applying to every partner; R4 obliges such a system to refuse the
	// provision rather than misread it.
	ExtConsentPartnerKind = "https://pathway-fhir.org/fhir/StructureDefinition/consent-partner-kind"

	// ExtConsentMethod is an extension on Consent (valueCode: verbal |
	// written | digital) saying how the person gave or declined consent.
	ExtConsentMethod = "https://pathway-fhir.org/fhir/StructureDefinition/consent-method"
)

// Build turns a referral into one FHIR R4 transaction Bundle: Patient,
// ServiceRequest, Consent and Task, then the referring Practitioner when the
// record names one, one Observation per screening, one Flag per risk, the
// social-history Observations (legal status, migrant type, year of arrival,
// migration history, country of birth, ethnicity) the record has, and one
// Observation per outcome, in that order.
//
// Ids are deterministic: every resource id is fhir.NewID(r.SourceSystem,
// r.RecordID, type[, part...]) with the parts "Patient", "ServiceRequest",
// "Consent", "Task", "Practitioner", "Bundle"; "Observation", "screening", i;
// "Flag", i; "Observation", "outcome", i; and "Observation" with the
// social-history kind ("legal-status", "migrant-type", "year-of-arrival",
// "migration-history", "country-of-birth", "ethnicity"). Every entry is
// "PUT Type/id" with fullUrl "urn:uuid:<id>", and entries refer to each
// other by fullUrl, so ingesting the same record again changes nothing and
// a changed record gives new versions of the same resources. Nothing
// depends on the clock: the Bundle has no timestamp.
//
// A time exactly at midnight UTC is what a date-only source value parses
// to, so it is written as a FHIR date ("2026-03-02"); any other time keeps
// its precision and offset.
//
// Sensitive migration data never sits on the Patient: legal status, migrant
// type, year of arrival, migration history and country of birth are each an
// Observation labelled with Pathway's IMMIG label and confidentiality R, so
// that policy can withhold each of them whole, and nothing else in the
// bundle refers to them. Ethnicity is an Observation labelled R.
//
// When the referral cannot be represented, Build returns a *RecordError
// listing every problem, each naming the target field ("service.priority")
// and never its value.
func Build(r Referral) (*rpb.Bundle, error) {
	b := &bundler{r: r}
	b.check()
	if len(b.problems) > 0 {
		return nil, &RecordError{Problems: b.problems}
	}
	return b.build()
}

// Encode is Build followed by fhir.Marshal: the bundle as compact FHIR JSON.
func Encode(r Referral) ([]byte, error) {
	bundle, err := Build(r)
	if err != nil {
		return nil, err
	}
	data, err := fhir.Marshal(bundle)
	if err != nil {
		return nil, fmt.Errorf("encoding referral bundle: %w", err)
	}
	return data, nil
}

// bundler builds the bundle of one referral. Its check pass (bundle_check.go)
// collects every problem with the referral; its build pass runs only when
// there is none, so the conversions there may assume valid values.
type bundler struct {
	r        Referral
	problems []FieldProblem
}

// fail records a problem with a target field. reason never holds the value.
func (b *bundler) fail(target, reason string) {
	b.problems = append(b.problems, FieldProblem{Target: target, Reason: reason})
}

// id returns the deterministic id of a resource derived from the record.
func (b *bundler) id(parts ...string) string {
	return fhir.NewID(b.r.SourceSystem, b.r.RecordID, parts...)
}

// bundleURN returns a reference to the entry with id, by its fullUrl.
func bundleURN(id string) *fhir.Reference { return fhir.RefURN(fhir.FullURL(id)) }

// system returns a namespace under the source system: SourceSystem + "/" + name.
func (b *bundler) system(name string) string {
	return strings.TrimSuffix(b.r.SourceSystem, "/") + "/" + name
}

// build assembles the bundle. Every fhir builder error here is a bug in
// Build's checks, reported with the resource type (builder errors are safe
// to log).
func (b *bundler) build() (*rpb.Bundle, error) {
	var entries []fhir.BundleEntry
	add := func(res proto.Message, err error) error {
		if err != nil {
			return fmt.Errorf("building referral bundle: %w", err)
		}
		entries = append(entries, fhir.UpdateEntry(res))
		return nil
	}

	patient, err := b.patient()
	if err := add(patient, err); err != nil {
		return nil, err
	}
	screenings, err := b.screenings()
	if err != nil {
		return nil, fmt.Errorf("building referral bundle: %w", err)
	}
	flags, err := b.flags()
	if err != nil {
		return nil, fmt.Errorf("building referral bundle: %w", err)
	}
	var supporting []*fhir.Reference
	supporting = append(supporting, bundleURN(b.id("Consent")))
	for _, o := range screenings {
		supporting = append(supporting, bundleURN(o.GetId().GetValue()))
	}
	for _, f := range flags {
		supporting = append(supporting, bundleURN(f.GetId().GetValue()))
	}
	sr, err := b.serviceRequest(supporting)
	if err := add(sr, err); err != nil {
		return nil, err
	}
	consent, err := b.consent()
	if err := add(consent, err); err != nil {
		return nil, err
	}
	task, err := b.task()
	if err := add(task, err); err != nil {
		return nil, err
	}
	if b.hasPractitioner() {
		pr, err := b.practitioner()
		if err := add(pr, err); err != nil {
			return nil, err
		}
	}
	for _, o := range screenings {
		entries = append(entries, fhir.UpdateEntry(o))
	}
	for _, f := range flags {
		entries = append(entries, fhir.UpdateEntry(f))
	}
	social, err := b.socialHistory()
	if err != nil {
		return nil, fmt.Errorf("building referral bundle: %w", err)
	}
	for _, o := range social {
		entries = append(entries, fhir.UpdateEntry(o))
	}
	outcomes, err := b.outcomes()
	if err != nil {
		return nil, fmt.Errorf("building referral bundle: %w", err)
	}
	for _, o := range outcomes {
		entries = append(entries, fhir.UpdateEntry(o))
	}

	bundle, err := fhir.BundleSpec{
		ID:    b.id("Bundle"),
		Type:  fhir.BundleTypeTransaction,
		Entry: entries,
	}.Build()
	if err != nil {
		return nil, fmt.Errorf("building referral bundle: %w", err)
	}
	return bundle, nil
}
