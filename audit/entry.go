package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
)

// FormatVersion is the version of the canonical entry format, the "v"
// member of every leaf. A change to the format is a new version; verifiers
// refuse versions they do not know.
const FormatVersion = 1

// Kind is what an entry records.
type Kind string

const (
	// KindDecision is a purpose-limitation decision for (bundle, partner,
	// purpose of use): its effect, obligations and trail, and the hashes of
	// the exact inputs it read. Recorded as an IHE BALP consent
	// authorization decision (AuthZconsent).
	KindDecision Kind = "decision"
	// KindDisclosure is data leaving Pathway for a partner: a delivered
	// bundle and the hash of its exact bytes. Recorded as an IHE BALP
	// privacy disclosure at the source.
	KindDisclosure Kind = "disclosure"
	// KindAccess is a partner's RESTful access to Pathway's FHIR API.
	// Recorded as an IHE BALP RESTful operation.
	KindAccess Kind = "access"
)

func (k Kind) valid() bool {
	switch k {
	case KindDecision, KindDisclosure, KindAccess:
		return true
	}
	return false
}

// Effect is the result of a decision or of an access check.
type Effect string

const (
	// EffectPermit allowed it (with the entry's obligations, if any).
	EffectPermit Effect = "permit"
	// EffectDeny refused it.
	EffectDeny Effect = "deny"
)

func (e Effect) valid() bool {
	switch e {
	case EffectPermit, EffectDeny:
		return true
	}
	return false
}

// Input names one exact version of something an entry depends on, and the
// SHA-256 of its bytes.
type Input struct {
	// Ref is a versioned reference, "Consent/c1/_history/3", as the store
	// keeps every version (the hash is then store.Resource.Hash of that
	// version). Other forms are allowed, but the verifier only resolves
	// versioned references unless given an InputSource that knows them.
	Ref string
	// Hash is the SHA-256 of the exact bytes of that version.
	Hash [32]byte
}

// Entry is one record of the audit log. It holds identifiers, codes,
// references, hashes and decisions, never names or free text: every string
// is a token of printable ASCII without spaces, quotes or backslashes
// (Validate checks it), so no sentence about a person fits in one.
type Entry struct {
	// ID identifies the entry, unique in the log; it is also the id of the
	// entry's AuditEvent, so it must be a FHIR id (1 to 64 of A-Z a-z 0-9 - .).
	ID string
	// Kind is what the entry records.
	Kind Kind
	// Time is when it happened; kept in UTC to the microsecond.
	Time time.Time
	// Exchange groups the entries of one exchange (its decision and its
	// disclosure). Required for decisions and disclosures.
	Exchange string
	// Actor is the partner: the recipient of a decision or disclosure, the
	// caller of an access ("Organization/clinic-a"). Required.
	Actor string
	// Patient is the patient the data is about ("Patient/p1"), if any.
	Patient string
	// Purpose is the v3 ActReason purpose of use (TREAT, COC...). Required
	// for decisions and disclosures.
	Purpose string
	// Effect is the decision's, or the access check's, result. Required for
	// decisions and accesses; disclosures have none.
	Effect Effect
	// Obligations are the codes the decision attached (v3 ActCode REDACT,
	// NORDSCLCD...). Decisions only; kept sorted, without repeats.
	Obligations []string
	// Trail names what decided, in order (a consent provision, an agreement
	// clause), as references or codes. Decisions only.
	Trail []string
	// Inputs are the exact versions the entry depends on: for a decision
	// its consents, the partner's agreement and the resources decided on;
	// for a disclosure the resources disclosed; for an access the resources
	// read or written. Kept sorted by Ref, without repeats.
	Inputs []Input
	// Bundle is the exchanged Bundle ("Bundle/<id>") and the SHA-256 of the
	// exact bytes sent. Required for disclosures; decisions may name the
	// bundle they decided on.
	Bundle *Input
	// Interaction is the FHIR RESTful interaction (read, search-type,
	// create, update, transaction...). Required for accesses; a
	// disclosure may name how it was sent (transaction).
	Interaction string
	// Endpoint is the recipient's FHIR endpoint URL (disclosures), if known.
	Endpoint string
	// Observer is the Pathway instance that recorded the entry
	// ("Device/pathway"). Required.
	Observer string
	// Site is the network's site name (a DNS name), if configured.
	Site string
}

// LogValue implements slog.LogValuer: an entry logs as its id, kind and
// exchange only.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", e.ID), slog.String("kind", string(e.Kind)), slog.String("exchange", e.Exchange))
}

// Ref returns a versioned reference "Type/id/_history/version", the form
// Inputs use for what the store keeps.
func Ref(resourceType, id string, version int64) string {
	return fmt.Sprintf("%s/%s/_history/%d", resourceType, id, version)
}

// HashBytes returns the SHA-256 of b: the hash of an input or of a bundle.
func HashBytes(b []byte) [32]byte { return sha256.Sum256(b) }

// maxToken is the longest string an entry may hold.
const maxToken = 512

// validToken reports whether s is 1 to maxToken bytes of printable ASCII
// other than space, '"' and '\'.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > maxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// validFHIRID reports whether s is a FHIR id.
func validFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validLiteralRef reports whether s is "Type/id" with an R4 resource type
// and a FHIR id; want, if not empty, is the required type.
func validLiteralRef(s, want string) bool {
	t, id, ok := strings.Cut(s, "/")
	return ok && fhir.IsResourceType(t) && validFHIRID(id) && (want == "" || t == want)
}

// restfulInteractions are the codes of http://hl7.org/fhir/restful-interaction.
var restfulInteractions = map[string]fhir.AuditAction{
	"read":               fhir.AuditActionRead,
	"vread":              fhir.AuditActionRead,
	"update":             fhir.AuditActionUpdate,
	"patch":              fhir.AuditActionUpdate,
	"delete":             fhir.AuditActionDelete,
	"history":            fhir.AuditActionRead,
	"history-instance":   fhir.AuditActionRead,
	"history-type":       fhir.AuditActionRead,
	"history-system":     fhir.AuditActionRead,
	"create":             fhir.AuditActionCreate,
	"search":             fhir.AuditActionRead,
	"search-type":        fhir.AuditActionRead,
	"search-system":      fhir.AuditActionRead,
	"search-compartment": fhir.AuditActionRead,
	"capabilities":       fhir.AuditActionExecute,
	"transaction":        fhir.AuditActionExecute,
	"batch":              fhir.AuditActionExecute,
	"operation":          fhir.AuditActionExecute,
}

// normTime is how entries keep times: UTC, to the microsecond.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Normalized returns the entry as it is logged: Time in UTC to the
// microsecond, Obligations sorted without repeats, Inputs sorted by Ref,
// and empty lists as nil. Append logs the normalized entry.
func (e Entry) Normalized() Entry {
	e.Time = normTime(e.Time)
	if len(e.Obligations) == 0 {
		e.Obligations = nil
	} else {
		e.Obligations = slices.Compact(slices.Sorted(slices.Values(e.Obligations)))
	}
	if len(e.Trail) == 0 {
		e.Trail = nil
	} else {
		e.Trail = slices.Clone(e.Trail)
	}
	if len(e.Inputs) == 0 {
		e.Inputs = nil
	} else {
		e.Inputs = slices.Clone(e.Inputs)
		slices.SortStableFunc(e.Inputs, func(a, b Input) int { return strings.Compare(a.Ref, b.Ref) })
	}
	if e.Bundle != nil {
		b := *e.Bundle
		e.Bundle = &b
	}
	return e
}

// Validate checks a normalized entry and returns every problem found, joined.
// Messages name fields, never their values.
func (e Entry) Validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }
	token := func(field, s string, required bool) {
		switch {
		case s == "":
			if required {
				bad(field, "required")
			}
		case !validToken(s):
			bad(field, fmt.Sprintf("not a token (1 to %d bytes of printable ASCII without spaces, quotes or backslashes)", maxToken))
		}
	}
	if !validFHIRID(e.ID) {
		bad("id", "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
	if !e.Kind.valid() {
		bad("kind", "not decision, disclosure or access")
	}
	switch {
	case e.Time.IsZero():
		bad("time", "required")
	case !e.Time.Equal(normTime(e.Time)) || e.Time.Location() != time.UTC:
		bad("time", "not normalized (UTC, microseconds)")
	case e.Time.Year() < 1 || e.Time.Year() > 9999:
		bad("time", "outside years 1 to 9999")
	}
	token("exchange", e.Exchange, e.Kind == KindDecision || e.Kind == KindDisclosure)
	if !validLiteralRef(e.Actor, "") {
		bad("actor", "required, a reference Type/id")
	}
	if e.Patient != "" && !validLiteralRef(e.Patient, "Patient") {
		bad("patient", "not a reference Patient/id")
	}
	token("purpose", e.Purpose, e.Kind == KindDecision || e.Kind == KindDisclosure)
	switch {
	case e.Kind == KindDisclosure && e.Effect != "":
		bad("effect", "a disclosure has no effect")
	case e.Kind != KindDisclosure && !e.Effect.valid():
		bad("effect", "required: permit or deny")
	}
	if e.Kind != KindDecision && (len(e.Obligations) > 0 || len(e.Trail) > 0) {
		bad("obligations", "only decisions have obligations and a trail")
	}
	// The field names of list elements are only formatted for a message.
	tokenAt := func(format string, i int, s string) {
		if !validToken(s) {
			token(fmt.Sprintf(format, i), s, true)
		}
	}
	for i, o := range e.Obligations {
		tokenAt("obligations[%d]", i, o)
		if i > 0 && e.Obligations[i-1] >= o {
			bad("obligations", "not sorted without repeats")
		}
	}
	for i, s := range e.Trail {
		tokenAt("trail[%d]", i, s)
	}
	for i, in := range e.Inputs {
		tokenAt("inputs[%d].ref", i, in.Ref)
		if i > 0 && e.Inputs[i-1].Ref >= in.Ref {
			bad("inputs", "not sorted by ref without repeats")
		}
	}
	switch {
	case e.Bundle == nil:
		if e.Kind == KindDisclosure {
			bad("bundle", "required for a disclosure")
		}
	case e.Kind == KindAccess:
		bad("bundle", "an access has no bundle")
	case !validLiteralRef(e.Bundle.Ref, "Bundle"):
		bad("bundle.ref", "not a reference Bundle/id")
	}
	switch {
	case e.Interaction == "":
		if e.Kind == KindAccess {
			bad("interaction", "required for an access")
		}
	case e.Kind == KindDecision:
		bad("interaction", "a decision has no interaction")
	default:
		if _, ok := restfulInteractions[e.Interaction]; !ok {
			bad("interaction", "not a code of http://hl7.org/fhir/restful-interaction")
		}
	}
	token("endpoint", e.Endpoint, false)
	if !validLiteralRef(e.Observer, "") {
		bad("observer", "required, a reference Type/id")
	}
	token("site", e.Site, false)
	return errors.Join(errs...)
}

// Canonical returns the entry's canonical bytes, the leaf of the Merkle
// log (docs/audit.md, "Leaf format"): one JSON object, members in
// ascending byte order of their names, no whitespace, empty members left
// out, times as 2006-01-02T15:04:05.000000Z and hashes as lowercase hex.
// The entry must be normalized and valid.
func (e Entry) Canonical() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("entry %s: %w", safeID(e.ID), err)
	}
	return e.appendCanonical(make([]byte, 0, 512)), nil
}

// safeID returns the id for messages, or a placeholder when it is not a
// FHIR id (it could then be anything).
func safeID(id string) string {
	if validFHIRID(id) {
		return id
	}
	return "(invalid id)"
}

// timeLayout is how times are written in leaves.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// appendCanonical appends the canonical bytes of a valid, normalized entry.
// Its members are written in the order of canonicalKeys.
func (e *Entry) appendCanonical(b []byte) []byte {
	first := true
	key := func(k string) {
		if first {
			b = append(b, '{')
			first = false
		} else {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
	}
	str := func(k, v string) {
		if v != "" {
			key(k)
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		}
	}
	input := func(in Input) {
		b = append(b, `{"hash":"`...)
		b = hex.AppendEncode(b, in.Hash[:])
		b = append(b, `","ref":"`...)
		b = append(b, in.Ref...)
		b = append(b, `"}`...)
	}
	strs := func(k string, vs []string) {
		if len(vs) == 0 {
			return
		}
		key(k)
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	str("actor", e.Actor)
	if e.Bundle != nil {
		key("bundle")
		input(*e.Bundle)
	}
	str("effect", string(e.Effect))
	str("endpoint", e.Endpoint)
	str("exchange", e.Exchange)
	str("id", e.ID)
	if len(e.Inputs) > 0 {
		key("inputs")
		b = append(b, '[')
		for i, in := range e.Inputs {
			if i > 0 {
				b = append(b, ',')
			}
			input(in)
		}
		b = append(b, ']')
	}
	str("interaction", e.Interaction)
	str("kind", string(e.Kind))
	strs("obligations", e.Obligations)
	str("observer", e.Observer)
	str("patient", e.Patient)
	str("purpose", e.Purpose)
	str("site", e.Site)
	key("time")
	b = append(b, '"')
	b = appendTime(b, e.Time)
	b = append(b, '"')
	strs("trail", e.Trail)
	key("v")
	b = append(b, '1')
	return append(b, '}')
}

// appendTime appends t (UTC, years 1 to 9999) in timeLayout.
func appendTime(b []byte, t time.Time) []byte {
	num := func(n, width int) {
		for i := width - 1; i >= 0; i-- {
			d := n
			for range i {
				d /= 10
			}
			b = append(b, byte('0'+d%10))
		}
	}
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	num(year, 4)
	b = append(b, '-')
	num(int(month), 2)
	b = append(b, '-')
	num(day, 2)
	b = append(b, 'T')
	num(hour, 2)
	b = append(b, ':')
	num(minute, 2)
	b = append(b, ':')
	num(sec, 2)
	b = append(b, '.')
	num(t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// canonicalKeys are the members of a leaf in the order they must appear.
var canonicalKeys = []string{
	"actor", "bundle", "effect", "endpoint", "exchange", "id", "inputs", "interaction",
	"kind", "obligations", "observer", "patient", "purpose", "site", "time", "trail", "v",
}
