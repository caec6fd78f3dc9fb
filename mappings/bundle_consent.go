package mappings

import (
	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// consent builds the privacy Consent the record states: scope
// patient-privacy, category LOINC 59284-0 and v3-ActCode IDSCL, policyRule
// OPTIN, dateTime consent.date, and
//
//   - consent.given absent: status proposed and no provision. The record did
//     not say; the network's base policy decides (deny, by default).
//   - consent.given false: status active, one deny provision without
//     criteria: nothing may be shared. An active deny, rather than status
//     rejected, holds whatever the network's base policy is.
//   - consent.given true: status active and a permit provision with the
//     period (consent.start, consent.end), the partners as actors
//     (Organization references, role v3-ParticipationType IRCP), the partner
//     kinds as ExtConsentPartnerKind modifier extensions, and the purposes
//     (v3-ActReason; COC when none is given). Nested in it, as an exception,
//     a deny provision for data labelled IMMIG. When the person agreed to
//     share immigration and legal-status data, that deny has its own
//     exception: a permit for IMMIG data naming the same partners (by id;
//     kinds never unlock IMMIG data) and the same purposes. So immigration
//     data leaves only under a provision that names partner and purpose.
//
// The patient, who made the decision, is the performer when the record
// says whether consent was given; consent.method goes in ExtConsentMethod.
func (b *bundler) consent() (*conpb.Consent, error) {
	c := &b.r.Consent
	patient := bundleURN(b.id("Patient"))
	spec := fhir.ConsentSpec{
		ID:         b.id("Consent"),
		Status:     fhir.ConsentStatusProposed,
		Patient:    patient,
		PolicyRule: fhir.Concept("", fhir.Coding(fhir.SystemActCode, "OPTIN", "opt-in")),
	}
	if c.Given != nil {
		spec.Status = fhir.ConsentStatusActive
		spec.Performer = []*fhir.Reference{bundleURN(b.id("Patient"))}
		if *c.Given {
			spec.Provision = b.permit()
		} else {
			spec.Provision = &fhir.Provision{Type: fhir.ProvisionTypeDeny, Period: bundlePeriod(c.Start, c.End)}
		}
	}
	consent, err := spec.Build()
	if err != nil {
		return nil, err
	}
	consent.DateTime = bundleDateTime(c.Date)
	if c.Given != nil && *c.Given && len(c.PartnerKinds) > 0 {
		seen := map[string]bool{}
		for _, k := range c.PartnerKinds {
			if seen[k] {
				continue
			}
			seen[k] = true
			consent.Provision.ModifierExtension = append(consent.Provision.ModifierExtension, &dpb.Extension{
				Url:   fhir.URI(ExtConsentPartnerKind),
				Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Code{Code: fhir.Code(k)}},
			})
		}
	}
	if c.Method != "" {
		consent.Extension = append(consent.Extension, &dpb.Extension{
			Url:   fhir.URI(ExtConsentMethod),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Code{Code: fhir.Code(c.Method)}},
		})
	}
	return consent, nil
}

// permit returns the provision of a consent given: see consent.
func (b *bundler) permit() *fhir.Provision {
	c := &b.r.Consent
	immigration := fhir.Provision{
		Type:          fhir.ProvisionTypeDeny,
		SecurityLabel: []*dpb.Coding{fhir.ImmigrationLabel()},
	}
	if c.ShareImmigrationData {
		immigration.Provision = []fhir.Provision{{
			Type:          fhir.ProvisionTypePermit,
			Actor:         b.actors(),
			Purpose:       b.purposes(),
			SecurityLabel: []*dpb.Coding{fhir.ImmigrationLabel()},
		}}
	}
	return &fhir.Provision{
		Type:      fhir.ProvisionTypePermit,
		Period:    bundlePeriod(c.Start, c.End),
		Actor:     b.actors(),
		Purpose:   b.purposes(),
		Provision: []fhir.Provision{immigration},
	}
}

// actors returns the partners, each once, as information recipients.
func (b *bundler) actors() []fhir.ProvisionActor {
	var out []fhir.ProvisionActor
	seen := map[string]bool{}
	for _, p := range b.r.Consent.Partners {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, fhir.ProvisionActor{
			Role:      fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "information recipient")),
			Reference: fhir.Ref("Organization", p),
		})
	}
	return out
}

// purposes returns the purposes of use, each once; COC when none is given.
func (b *bundler) purposes() []*dpb.Coding {
	codes := b.r.Consent.Purposes
	if len(codes) == 0 {
		codes = []string{"COC"}
	}
	var out []*dpb.Coding
	seen := map[string]bool{}
	for _, p := range codes {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, fhir.PurposeOfUse(p))
	}
	return out
}
