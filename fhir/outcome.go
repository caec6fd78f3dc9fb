package fhir

import (
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	oopb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/operation_outcome_go_proto"
)

// SystemPathwayRule is the code system of Issue.Code values, used in
// OperationOutcome.issue.details so callers can branch on the rule.
const SystemPathwayRule = "https://pathway-fhir.org/fhir/CodeSystem/validation-rule"

// OperationOutcome builds the FHIR OperationOutcome returned to the caller
// who sent the resource. It is the one place an issue's Diagnostics (which
// may quote the offending value) leaves Pathway, so never log its output.
// With no issues it reports a single informational "all OK".
func OperationOutcome(issues Issues) *oopb.OperationOutcome {
	oo := &oopb.OperationOutcome{}
	if len(issues) == 0 {
		oo.Issue = append(oo.Issue, &oopb.OperationOutcome_Issue{
			Severity: &oopb.OperationOutcome_Issue_SeverityCode{Value: cpb.IssueSeverityCode_INFORMATION},
			Code:     &oopb.OperationOutcome_Issue_CodeType{Value: cpb.IssueTypeCode_INFORMATIONAL},
			Details:  &dpb.CodeableConcept{Text: &dpb.String{Value: "all OK"}},
		})
		return oo
	}
	for _, is := range issues {
		i := &oopb.OperationOutcome_Issue{
			Severity: &oopb.OperationOutcome_Issue_SeverityCode{Value: severityCode(is.Severity)},
			Code:     &oopb.OperationOutcome_Issue_CodeType{Value: issueType(is.Code)},
			Details: &dpb.CodeableConcept{
				Coding: []*dpb.Coding{{System: &dpb.Uri{Value: SystemPathwayRule}, Code: &dpb.Code{Value: is.Code}}},
				Text:   &dpb.String{Value: is.Details},
			},
		}
		if d := strings.ToValidUTF8(is.Diagnostics, "\uFFFD"); d != "" {
			i.Diagnostics = &dpb.String{Value: d}
		}
		if is.Path != "" && is.Path != "(root)" && is.Path != "(file)" {
			i.Expression = []*dpb.String{{Value: is.Path}}
		}
		oo.Issue = append(oo.Issue, i)
	}
	return oo
}

func severityCode(s Severity) cpb.IssueSeverityCode_Value {
	switch s {
	case SeverityFatal:
		return cpb.IssueSeverityCode_FATAL
	case SeverityError:
		return cpb.IssueSeverityCode_ERROR
	case SeverityWarning:
		return cpb.IssueSeverityCode_WARNING
	case SeverityInformation:
		return cpb.IssueSeverityCode_INFORMATION
	}
	return cpb.IssueSeverityCode_ERROR
}

// issueType maps a rule code to the FHIR IssueType the spec expects.
func issueType(code string) cpb.IssueTypeCode_Value {
	switch {
	case code == "json", code == "unknown-element", code == "choice", code == "too-deep":
		return cpb.IssueTypeCode_STRUCTURE
	case code == "required":
		return cpb.IssueTypeCode_REQUIRED
	case code == "code-invalid":
		return cpb.IssueTypeCode_CODE_INVALID
	case code == "unknown-resource-type":
		return cpb.IssueTypeCode_NOT_SUPPORTED
	case code == "too-large":
		return cpb.IssueTypeCode_TOO_LONG
	case code == "value", code == "reference", code == "bundle-ref":
		return cpb.IssueTypeCode_VALUE
	case strings.HasPrefix(code, "pathway-"):
		return cpb.IssueTypeCode_BUSINESS_RULE
	case code == "internal", code == "unreadable":
		return cpb.IssueTypeCode_EXCEPTION
	case strings.HasPrefix(code, "api-"):
		if t, ok := apiIssueTypes[code]; ok {
			return t
		}
		return cpb.IssueTypeCode_PROCESSING
	}
	return cpb.IssueTypeCode_INVARIANT // ele-1, bdl-*, inv-1, prr-1
}

// apiIssueTypes are the rule codes of the FHIR API's errors (package
// server), each with the IssueType it reports.
var apiIssueTypes = map[string]cpb.IssueTypeCode_Value{
	"api-login":         cpb.IssueTypeCode_LOGIN,
	"api-forbidden":     cpb.IssueTypeCode_FORBIDDEN,
	"api-not-found":     cpb.IssueTypeCode_NOT_FOUND,
	"api-not-supported": cpb.IssueTypeCode_NOT_SUPPORTED,
	"api-invalid":       cpb.IssueTypeCode_INVALID,
	"api-conflict":      cpb.IssueTypeCode_CONFLICT,
	"api-precondition":  cpb.IssueTypeCode_CONFLICT,
	"api-transition":    cpb.IssueTypeCode_BUSINESS_RULE,
	"api-throttled":     cpb.IssueTypeCode_THROTTLED,
	"api-too-costly":    cpb.IssueTypeCode_TOO_COSTLY,
	"api-exception":     cpb.IssueTypeCode_EXCEPTION,
	"api-accepted":      cpb.IssueTypeCode_INFORMATIONAL,
}
