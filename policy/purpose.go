package policy

import (
	"slices"

	"github.com/pathway-fhir/pathway/fhir"
)

// purposeParent is the PurposeOfUse subtree of v3-ActReason
// (http://terminology.hl7.org/CodeSystem/v3-ActReason, THO 4.0.0, concept
// property subsumedBy, hierarchyMeaning is-a): each code to its parent.
// PurposeOfUse itself is the root. Notably COC, ETREAT, CLINTRL and POPHLTH
// are under TREAT, and CAREMGT is under HOPERAT, not TREAT.
var purposeParent = map[string]string{
	"HMARKT":  "PurposeOfUse",
	"HOPERAT": "PurposeOfUse",
	"HPAYMT":  "PurposeOfUse",
	"HRESCH":  "PurposeOfUse",
	"PATRQT":  "PurposeOfUse",
	"PUBHLTH": "PurposeOfUse",
	"TREAT":   "PurposeOfUse",

	"CAREMGT":   "HOPERAT",
	"DONAT":     "HOPERAT",
	"FRAUD":     "HOPERAT",
	"GOV":       "HOPERAT",
	"HACCRED":   "HOPERAT",
	"HCOMPL":    "HOPERAT",
	"HDECD":     "HOPERAT",
	"HDIRECT":   "HOPERAT",
	"HDM":       "HOPERAT",
	"HLEGAL":    "HOPERAT",
	"HOUTCOMS":  "HOPERAT",
	"HPRGRP":    "HOPERAT",
	"HQUALIMP":  "HOPERAT",
	"HSYSADMIN": "HOPERAT",
	"LABELING":  "HSYSADMIN",
	"METAMGT":   "HSYSADMIN",
	"MEMADMIN":  "HOPERAT",
	"MILCDM":    "HOPERAT",
	"PATADMIN":  "HOPERAT",
	"PATSFTY":   "HOPERAT",
	"PERFMSR":   "HOPERAT",
	"RECORDMGT": "HOPERAT",
	"SYSDEV":    "HOPERAT",
	"HTEST":     "SYSDEV",
	"TRAIN":     "HOPERAT",

	"CLMATTCH": "HPAYMT",
	"COVAUTH":  "HPAYMT",
	"COVERAGE": "HPAYMT",
	"ELIGDTRM": "COVERAGE",
	"ELIGVER":  "COVERAGE",
	"ENROLLM":  "COVERAGE",
	"MILDCRG":  "COVERAGE",
	"REMITADV": "HPAYMT",

	"BIORCH":      "HRESCH",
	"CLINTRCH":    "HRESCH",
	"CLINTRCHNPC": "CLINTRCH",
	"CLINTRCHPC":  "CLINTRCH",
	"PRECLINTRCH": "CLINTRCH",
	"DSRCH":       "HRESCH",
	"POARCH":      "HRESCH",
	"TRANSRCH":    "HRESCH",

	"FAMRQT":  "PATRQT",
	"PWATRNY": "PATRQT",
	"SUPNWK":  "PATRQT",

	"DISASTER": "PUBHLTH",
	"THREAT":   "PUBHLTH",

	"CLINTRL": "TREAT",
	"COC":     "TREAT",
	"ETREAT":  "TREAT",
	"BTG":     "ETREAT",
	"ERTREAT": "ETREAT",
	"POPHLTH": "TREAT",
}

// purposeDisplay names the purposes a link worker meets, in plain words.
var purposeDisplay = map[string]string{
	"TREAT":   "treatment",
	"COC":     "coordination of care",
	"ETREAT":  "emergency treatment",
	"BTG":     "break-the-glass emergency access",
	"CAREMGT": "care management",
	"HOPERAT": "healthcare operations",
	"PUBHLTH": "public health",
	"HRESCH":  "healthcare research",
	"HPAYMT":  "healthcare payment",
	"PATRQT":  "the patient's own request",
}

// IsPurpose reports whether code is a v3-ActReason purpose of use
// (PurposeOfUse or a code under it).
func IsPurpose(code string) bool {
	_, ok := purposeParent[code]
	return ok || code == "PurposeOfUse"
}

// Purposes returns every purpose-of-use code Pathway knows, sorted.
func Purposes() []string {
	out := make([]string, 0, len(purposeParent))
	for c := range purposeParent {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// PurposeSubsumes reports whether the purpose general covers the purpose
// specific: they are equal, or specific lies under general in the
// v3-ActReason hierarchy. PurposeSubsumes("TREAT", "COC") is true;
// PurposeSubsumes("TREAT", "CAREMGT") and PurposeSubsumes("COC", "TREAT")
// are false.
func PurposeSubsumes(general, specific string) bool {
	for c, n := specific, 0; c != "" && n < 16; c, n = purposeParent[c], n+1 {
		if c == general {
			return true
		}
	}
	return false
}

// purposeWords returns "coordination of care (COC)", or the code alone.
func purposeWords(code string) string {
	if d, ok := purposeDisplay[code]; ok {
		return d + " (" + code + ")"
	}
	return code
}

// codingSubsumesPurpose reports whether a provision's purpose coding covers
// the requested purpose. Only v3-ActReason codings (or codings without a
// system, read as v3-ActReason) can.
func codingSubsumesPurpose(system, code, purpose string) bool {
	if system != "" && system != fhir.SystemActReason {
		return false
	}
	return PurposeSubsumes(code, purpose)
}
