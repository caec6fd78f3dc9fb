package fhir

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity is the severity of a validation issue, as in FHIR's IssueSeverity.
type Severity string

const (
	// SeverityFatal means the input could not be read as a resource at all.
	SeverityFatal Severity = "fatal"
	// SeverityError means the resource is not valid FHIR R4 (or breaks a rule Pathway relies on).
	SeverityError Severity = "error"
	// SeverityWarning means the resource is valid but something will probably not work as intended.
	SeverityWarning Severity = "warning"
	// SeverityInformation is advice only.
	SeverityInformation Severity = "information"
)

// Issue is one problem found in a resource.
//
// Path, Code and Details never contain a value taken from the resource, so an
// Issue can be logged as it is. Diagnostics may hold the offending value (and
// with it personal data): it is meant only for the caller who sent the
// resource, in an OperationOutcome, and is never printed by String or Error.
type Issue struct {
	Severity Severity `json:"severity"`
	// Path is the location in google/fhir style: Bundle.entry[2].resource.Task.status.
	Path string `json:"path"`
	// Code names the rule that failed: an invariant key (ele-1, bdl-3, inv-1)
	// or one of the structural rule codes listed in docs/validation.md.
	Code string `json:"code"`
	// Details says what is wrong, in words safe to log.
	Details string `json:"details"`
	// Diagnostics may contain the offending value. Never log it.
	Diagnostics string `json:"-"`
}

// String renders the issue without its diagnostics, safe for logs.
func (i Issue) String() string {
	return fmt.Sprintf("%s %s [%s]: %s", i.Severity, i.Path, i.Code, i.Details)
}

// Issues is a list of issues about one resource.
type Issues []Issue

// HasErrors reports whether any issue is an error or fatal.
func (is Issues) HasErrors() bool {
	for _, i := range is {
		if i.Severity == SeverityError || i.Severity == SeverityFatal {
			return true
		}
	}
	return false
}

// Errors returns only the issues of severity error or fatal.
func (is Issues) Errors() Issues {
	var out Issues
	for _, i := range is {
		if i.Severity == SeverityError || i.Severity == SeverityFatal {
			out = append(out, i)
		}
	}
	return out
}

// sort orders issues by path, then code, so output is deterministic
// (google/fhir walks JSON objects in map order).
func (is Issues) sort() {
	slices.SortStableFunc(is, func(a, b Issue) int {
		return cmp.Or(comparePaths(a.Path, b.Path), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Details, b.Details))
	})
}

// comparePaths orders FHIR paths with numbers compared as numbers, so
// item[2] comes before item[10].
func comparePaths(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			na, nb := strings.TrimLeft(a[si:i], "0"), strings.TrimLeft(b[sj:j], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), cmp.Compare(na, nb)); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(a[i], b[j]); c != 0 {
			return c
		}
		i++
		j++
	}
	return cmp.Compare(len(a)-i, len(b)-j)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// InvalidError is returned by the strict decoding functions when a resource
// has errors. Its message lists paths and rules only, never values.
type InvalidError struct {
	// ResourceType and ID identify the resource when they could be read.
	ResourceType, ID string
	Issues           Issues
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid FHIR resource")
	if e.ResourceType != "" {
		b.WriteString(" ")
		b.WriteString(e.ResourceType)
		if e.ID != "" {
			b.WriteString("/")
			b.WriteString(e.ID)
		}
	}
	errs := e.Issues.Errors()
	for n, i := range errs {
		if n == 5 {
			fmt.Fprintf(&b, "; and %d more", len(errs)-n)
			break
		}
		b.WriteString("; ")
		fmt.Fprintf(&b, "%s [%s]: %s", i.Path, i.Code, i.Details)
	}
	return b.String()
}
