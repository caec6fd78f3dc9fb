package fhir

import (
	_ "embed" // for the Pathway CodeSystem
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	cspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/code_system_go_proto"
)

// pathwayCodeSystemJSON is Pathway's own CodeSystem (SystemPathway), as published.
//
//go:embed codesystem-pathway.json
var pathwayCodeSystemJSON []byte

// Codes of Pathway's CodeSystem (SystemPathway). The grouping codes
// (PathwayGroup...) are not selectable: record the codes under them.
const (
	// PathwayGroupLegalStatus groups immigration and legal status codes.
	PathwayGroupLegalStatus = "legal-status"
	// PathwayGroupMigrantType groups migrant type codes.
	PathwayGroupMigrantType = "migrant-type"
	// PathwayGroupMigrationHistory groups migration history Observation codes.
	PathwayGroupMigrationHistory = "migration-history"
	// PathwayGroupReferralNeed groups what a referral asks for: service categories and named needs.
	PathwayGroupReferralNeed = "referral-need"
	// PathwayGroupSensitivity groups Pathway's security labels.
	PathwayGroupSensitivity = "sensitivity"

	// Referral needs (PathwayGroupReferralNeed); see the CodeSystem for definitions.
	PathwayNeedMentalHealth            = "mental-health"
	PathwayNeedSocialPrescribing       = "social-prescribing"
	PathwayNeedHousing                 = "housing"
	PathwayNeedLegalAdvice             = "legal-advice"
	PathwayNeedImmigrationAdvice       = "immigration-advice"
	PathwayNeedLanguageSupport         = "language-support"
	PathwayNeedHealthcareNavigation    = "healthcare-navigation"
	PathwayNeedGpRegistration          = "gp-registration"
	PathwayNeedEmployment              = "employment"
	PathwayNeedPeerSupport             = "peer-support"
	PathwayNeedFinancialSupport        = "financial-support"
	PathwayNeedFoodSupport             = "food-support"
	PathwayNeedEducation               = "education"
	PathwayNeedFamilySupport           = "family-support"
	PathwayNeedDomesticViolenceSupport = "domestic-violence-support"

	// PathwayLegalStatusAsylumSeeker: applied for asylum, waiting for a final decision.
	PathwayLegalStatusAsylumSeeker = "asylum-seeker"
	// PathwayLegalStatusRefugee: recognised or resettled as a refugee.
	PathwayLegalStatusRefugee = "refugee"
	// PathwayLegalStatusHumanitarianProtection: subsidiary, humanitarian or complementary protection.
	PathwayLegalStatusHumanitarianProtection = "humanitarian-protection"
	// PathwayLegalStatusTemporaryProtection: temporary protection granted to a displaced group.
	PathwayLegalStatusTemporaryProtection = "temporary-protection"
	// PathwayLegalStatusRefusedAsylumSeeker: asylum finally refused, still in the country.
	PathwayLegalStatusRefusedAsylumSeeker = "refused-asylum-seeker"
	// PathwayLegalStatusUndocumented: no valid visa or residence permit (irregular status).
	PathwayLegalStatusUndocumented = "undocumented"
	// PathwayLegalStatusStateless: not a national of any state.
	PathwayLegalStatusStateless = "stateless"
	// PathwayLegalStatusVisaHolder: on a time-limited visa or permit.
	PathwayLegalStatusVisaHolder = "visa-holder"
	// PathwayLegalStatusPermanentResident: permanent residence or indefinite leave to remain.
	PathwayLegalStatusPermanentResident = "permanent-resident"
	// PathwayLegalStatusCitizen: a citizen of the country where care is given.
	PathwayLegalStatusCitizen = "citizen"
	// PathwayLegalStatusUnknown: not known to the person recording it.
	PathwayLegalStatusUnknown = "unknown"
	// PathwayLegalStatusDeclined: the person chose not to say.
	PathwayLegalStatusDeclined = "declined-to-disclose"

	// PathwayMigrantLabour: moved mainly for work.
	PathwayMigrantLabour = "labour-migrant"
	// PathwayMigrantForced: moved because of conflict, persecution, violence or disaster.
	PathwayMigrantForced = "forced-migrant"
	// PathwayMigrantInternallyDisplaced: forced from home without crossing a border.
	PathwayMigrantInternallyDisplaced = "internally-displaced"
	// PathwayMigrantUnaccompaniedMinor: a child abroad without a responsible adult.
	PathwayMigrantUnaccompaniedMinor = "unaccompanied-minor"
	// PathwayMigrantSeparatedChild: a child separated from parents or primary caregiver.
	PathwayMigrantSeparatedChild = "separated-child"
	// PathwayMigrantTraffickingSurvivor: has been trafficked for exploitation.
	PathwayMigrantTraffickingSurvivor = "trafficking-survivor"
	// PathwayMigrantReturnee: has returned to the country of origin.
	PathwayMigrantReturnee = "returnee"
	// PathwayMigrantFamily: moved to join or accompany family.
	PathwayMigrantFamily = "family-migrant"
	// PathwayMigrantStudent: moved to study.
	PathwayMigrantStudent = "international-student"

	// PathwayHistoryCountryOfBirth: country of birth (value: ISO 3166-1 CodeableConcept).
	PathwayHistoryCountryOfBirth = "country-of-birth"
	// PathwayHistoryCountryOfNationality: a nationality (value: ISO 3166-1 CodeableConcept).
	PathwayHistoryCountryOfNationality = "country-of-nationality"
	// PathwayHistoryYearOfArrival: year of arrival in the country of care (value: integer).
	PathwayHistoryYearOfArrival = "year-of-arrival"
	// PathwayHistoryTransitCountry: a country passed through (value: ISO 3166-1 CodeableConcept).
	PathwayHistoryTransitCountry = "transit-country"
	// PathwayHistoryDetention: has been in immigration detention (value: boolean).
	PathwayHistoryDetention = "detention-experience"
	// PathwayHistoryFamilySeparation: separated from close family by migration (value: boolean).
	PathwayHistoryFamilySeparation = "family-separation"
)

// pathwayCodes holds the parsed CodeSystem and its code -> display index.
var pathwayCodes = sync.OnceValues(func() (*cspb.CodeSystem, error) {
	cr, err := Decode(pathwayCodeSystemJSON)
	if err != nil {
		return nil, fmt.Errorf("reading the Pathway CodeSystem: %w", err)
	}
	cs, ok := Unwrap(cr).(*cspb.CodeSystem)
	if !ok {
		return nil, fmt.Errorf("reading the Pathway CodeSystem: a %s, not a CodeSystem", TypeOf(cr))
	}
	return cs, nil
})

var pathwayDisplays = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	cs, err := pathwayCodes()
	if err != nil {
		return m
	}
	var walk func([]*cspb.CodeSystem_ConceptDefinition)
	walk = func(cs []*cspb.CodeSystem_ConceptDefinition) {
		for _, c := range cs {
			m[c.GetCode().GetValue()] = c.GetDisplay().GetValue()
			walk(c.GetConcept())
		}
	}
	walk(cs.GetConcept())
	return m
})

// PathwayCodeSystem returns Pathway's own CodeSystem (SystemPathway) as
// published in fhir/codesystem-pathway.json: a copy the caller may change.
func PathwayCodeSystem() (*cspb.CodeSystem, error) {
	cs, err := pathwayCodes()
	if err != nil {
		return nil, err
	}
	return proto.Clone(cs).(*cspb.CodeSystem), nil
}

// PathwayCode returns the display of a code of SystemPathway, grouping codes
// included, and whether the code exists.
func PathwayCode(code string) (display string, ok bool) {
	display, ok = pathwayDisplays()[code]
	return display, ok
}

// PathwayCoding returns the SystemPathway coding of code, with its display,
// or nil when the code does not exist (builders report a nil coding).
func PathwayCoding(code string) *dpb.Coding {
	display, ok := PathwayCode(code)
	if !ok {
		return nil
	}
	return Coding(SystemPathway, code, display)
}

// ImmigrationLabel returns the security label for immigration and
// legal-status data: SystemPathway PathwaySensitivityImmigration.
func ImmigrationLabel() *dpb.Coding {
	return Coding(SystemPathway, PathwaySensitivityImmigration, "immigration and legal status information")
}
