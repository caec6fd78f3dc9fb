package policy

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// Extensions and codes the policy engine reads and writes.
const (
	// ExtInlineSecurityLabel is the DS4P inline security label extension
	// (HL7 FHIR Data Segmentation for Privacy 1.0.0): valueCoding, on the
	// element it labels. A resource carrying inline labels has
	// PROCESSINLINELABEL in meta.security.
	ExtInlineSecurityLabel = "http://hl7.org/fhir/uv/security-label-ds4p/StructureDefinition/extension-inline-sec-label"
	// ExtDataAbsentReason is the core data-absent-reason extension; Pathway
	// puts it, with valueCode "masked", where a required element had to be
	// withheld (a reference to a resource that was not sent).
	ExtDataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
	// ExtConsentPartnerKind is the modifier extension on a Consent provision
	// that widens its actors to every partner of a kind (valueCode: clinic,
	// ngo, community, auditor). Package mappings writes it; the URL is
	// repeated here because policy may not import mappings.
	ExtConsentPartnerKind = "https://pathway-fhir.org/fhir/StructureDefinition/consent-partner-kind"

	// LabelProcessInline is v3-ActCode PROCESSINLINELABEL.
	LabelProcessInline = "PROCESSINLINELABEL"
	// MarkRedacted is v3-ObservationValue REDACTED: something was removed.
	MarkRedacted = "REDACTED"
	// MarkMasked is v3-ObservationValue MASKED: a value was masked.
	MarkMasked = "MASKED"
)

// sensitivityCodes are the v3-ActCode information sensitivity codes
// (_InformationSensitivityPolicy) Pathway recognises by their bare code in
// configuration, with the displays it writes.
var sensitivityCodes = map[string]string{
	"BH":       "behavioral health information sensitivity",
	"COGN":     "cognitive disability information sensitivity",
	"DVD":      "developmental disability information sensitivity",
	"EMOTDIS":  "emotional disturbance information sensitivity",
	"ETH":      "substance abuse information sensitivity",
	"ETHUD":    "alcohol use disorder information sensitivity",
	"GDIS":     "genetic disease information sensitivity",
	"HIV":      "HIV/AIDS information sensitivity",
	"MH":       "mental health information sensitivity",
	"MST":      "military sexual trauma information sensitivity",
	"OPIOIDUD": "opioid use disorder information sensitivity",
	"PSY":      "psychiatry disorder information sensitivity",
	"PSYTHPN":  "psychotherapy note information sensitivity",
	"SCA":      "sickle cell anemia information sensitivity",
	"SDV":      "sexual assault, abuse, or domestic violence information sensitivity",
	"SEX":      "sexuality and reproductive health information sensitivity",
	"SPI":      "specially protected information sensitivity",
	"STD":      "sexually transmitted disease information sensitivity",
	"SUD":      "substance use disorder information sensitivity",
	"TBOO":     "taboo",
	"VIO":      "violence information sensitivity",
}

// refrainCodes are the v3-ActCode refrain policies an agreement may attach.
var refrainCodes = map[string]string{
	"NOAUTH":      "no disclosure without subject authorization",
	"NOCOLLECT":   "no collection",
	"NODSCLCD":    "no disclosure without consent directive",
	"NODSCLCDS":   "no disclosure without information subject's consent directive",
	"NOINTEGRATE": "no integration",
	"NOLIST":      "no unlisted entity disclosure",
	"NOMOU":       "no disclosure without MOU",
	"NOORGPOL":    "no disclosure without organizational authorization",
	"NOPAT":       "no disclosure to patient, family or caregivers without attending provider's authorization",
	"NOPERSISTP":  "no collection beyond purpose of use",
	"NORDSCLCD":   "no redisclosure without consent directive",
	"NORDSCLCDS":  "no redisclosure without information subject's consent directive",
	"NORDSCLW":    "no disclosure without jurisdictional authorization",
	"NORELINK":    "no relinking",
	"NOREUSE":     "no reuse beyond purpose of use",
	"NOVIP":       "no unauthorized VIP disclosure",
	"ORCON":       "no disclosure without originator authorization",
}

// handlingCodes are v3-ActCode security labels that say how to handle data
// (obligations, refrains, markings), not what it is: they never gate a
// disclosure.
var handlingCodes = map[string]bool{
	"PROCESSINLINELABEL": true, "REDACT": true, "MASK": true, "MINEC": true,
	"DELAU": true, "PERSISTLABEL": true, "PRIVMARK": true, "AUDIT": true,
	"AUDTR": true, "CPLYCC": true, "CPLYCD": true, "CPLYJPP": true,
	"CPLYOPP": true, "CPLYOSP": true, "CPLYPOL": true, "ENCRYPT": true,
	"ENCRYPTR": true, "ENCRYPTT": true, "ENCRYPTU": true, "HUAPRV": true,
	"LABEL": true, "PSEUD": true, "ANONY": true, "AGGREGATE": true,
}

// confidentialityRank orders v3-Confidentiality codes; an unlabelled
// resource counts as N.
var confidentialityRank = map[string]int{"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}

var confidentialityDisplay = map[string]string{
	"U": "unrestricted", "L": "low", "M": "moderate", "N": "normal", "R": "restricted", "V": "very restricted",
}

// Label is a security label: a code of a code system.
type Label struct {
	System string `json:"system" yaml:"system"`
	Code   string `json:"code" yaml:"code"`
}

// String renders the label as a person reads it: "PSY", "IMMIG", or
// "system|code" for codes outside v3-ActCode and Pathway's CodeSystem.
func (l Label) String() string {
	switch l.System {
	case fhir.SystemActCode, fhir.SystemPathway, fhir.SystemConfidentiality, fhir.SystemObservationValue:
		return l.Code
	}
	return l.System + "|" + l.Code
}

// Coding returns the label as a new Coding with the display Pathway knows.
func (l Label) Coding() *dpb.Coding {
	return fhir.Coding(l.System, l.Code, labelDisplay(l))
}

var (
	// sharedCodings maps labels to their shared Codings: a map replaced,
	// never changed, when one is added (reads take no lock).
	sharedCodings   atomic.Pointer[map[Label]*dpb.Coding]
	sharedCodingsMu sync.Mutex
)

// sharedCoding returns one Coding per label for the resources Pathway
// writes: they are read-only, so one message serves them all.
func (l Label) sharedCoding() *dpb.Coding {
	if m := sharedCodings.Load(); m != nil {
		if c, ok := (*m)[l]; ok {
			return c
		}
	}
	sharedCodingsMu.Lock()
	defer sharedCodingsMu.Unlock()
	next := map[Label]*dpb.Coding{}
	if m := sharedCodings.Load(); m != nil {
		if c, ok := (*m)[l]; ok {
			return c
		}
		maps.Copy(next, *m)
	}
	c := l.Coding()
	next[l] = c
	sharedCodings.Store(&next)
	return c
}

// ParseLabel reads a label as configuration writes it: a bare v3-ActCode
// sensitivity or refrain code ("PSY", "NORDSCLCD"), Pathway's IMMIG, a
// confidentiality code ("R"), or "system|code" for anything else.
func ParseLabel(s string) (Label, bool) {
	if sys, code, ok := strings.Cut(s, "|"); ok {
		if sys == "" || code == "" {
			return Label{}, false
		}
		return Label{System: sys, Code: code}, true
	}
	switch {
	case s == fhir.PathwaySensitivityImmigration:
		return Label{System: fhir.SystemPathway, Code: s}, true
	case sensitivityCodes[s] != "", refrainCodes[s] != "", handlingCodes[s]:
		return Label{System: fhir.SystemActCode, Code: s}, true
	case confidentialityDisplay[s] != "":
		return Label{System: fhir.SystemConfidentiality, Code: s}, true
	case s == MarkRedacted || s == MarkMasked:
		return Label{System: fhir.SystemObservationValue, Code: s}, true
	}
	return Label{}, false
}

func labelOf(c *dpb.Coding) Label {
	return Label{System: c.GetSystem().GetValue(), Code: c.GetCode().GetValue()}
}

// labelDisplay returns the display Pathway writes for a label it adds.
func labelDisplay(l Label) string {
	switch l.System {
	case fhir.SystemActCode:
		if d := sensitivityCodes[l.Code]; d != "" {
			return d
		}
		if d := refrainCodes[l.Code]; d != "" {
			return d
		}
		if l.Code == LabelProcessInline {
			return "process inline security label"
		}
	case fhir.SystemPathway:
		if l.Code == fhir.PathwaySensitivityImmigration {
			return fhir.ImmigrationLabel().GetDisplay().GetValue()
		}
	case fhir.SystemConfidentiality:
		return confidentialityDisplay[l.Code]
	case fhir.SystemObservationValue:
		switch l.Code {
		case MarkRedacted:
			return "redacted"
		case MarkMasked:
			return "masked"
		}
	}
	return ""
}

// gates reports whether a label restricts who may receive the data: every
// label except confidentiality codes, integrity and transformation marks
// (v3-ObservationValue), purposes of use on data (v3-ActReason), and
// v3-ActCode handling and refrain codes. An unknown label gates, so data
// with a label Pathway does not know is withheld unless an agreement lists it.
func (l Label) gates() bool {
	switch l.System {
	case fhir.SystemConfidentiality, fhir.SystemObservationValue, fhir.SystemActReason:
		return false
	case fhir.SystemActCode:
		return !handlingCodes[l.Code] && refrainCodes[l.Code] == ""
	}
	return true
}

// isImmigration reports whether l is Pathway's immigration and legal-status label.
func (l Label) isImmigration() bool {
	return l.System == fhir.SystemPathway && l.Code == fhir.PathwaySensitivityImmigration
}
