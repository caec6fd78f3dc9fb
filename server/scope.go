package server

import (
	"net/http"
	"strings"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/policy"
)

// perms are the SMART v2 permission letters of each FHIR interaction of
// this API.
var perms = map[string]string{"read": "r", "vread": "r", "search-type": "s", "update": "u", "patch": "u", "create": "c", "delete": "d"}

// v1Names are the SMART v1 forms that grant a permission letter.
var v1Names = map[string]string{"r": "read", "s": "read", "u": "write", "c": "write", "d": "write"}

// needed returns the scopes a request needs: the interaction on the
// resource type of its path, and read of what a Task search includes.
func needed(r *http.Request, interaction string) []exchange.Scope {
	if interaction == "transaction" {
		// Referral intake creates the referral: its ServiceRequest, with
		// the Patient, Consent and Task made from it.
		return []exchange.Scope{{Type: "ServiceRequest", Perms: "c"}}
	}
	typ, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/fhir/"), "/")
	p := perms[interaction]
	if p == "" {
		p = "cruds" // an interaction this table does not know needs everything
	}
	need := []exchange.Scope{{Type: typ, Perms: p}}
	if typ == "Task" && interaction == "search-type" {
		for _, inc := range r.URL.Query()["_include"] {
			switch inc {
			case "Task:focus":
				need = append(need, exchange.Scope{Type: "ServiceRequest", Perms: "r"})
			case "Task:patient":
				need = append(need, exchange.Scope{Type: "Patient", Perms: "r"})
			}
		}
	}
	return need
}

// scoped checks an access token's scopes against what the request needs,
// and answers 403 naming the missing scope. Static tokens (no scopes)
// pass: they may do everything the partner's role allows.
func (s *Server) scoped(w http.ResponseWriter, r *http.Request, c *caller, interaction string) bool {
	if c.scopes == nil {
		return true
	}
	for _, n := range needed(r, interaction) {
		ok := false
		for _, have := range c.scopes {
			ok = ok || have.Covers(n)
		}
		if ok {
			continue
		}
		v2 := "system/" + n.Type + "." + n.Perms
		w.Header().Set("WWW-Authenticate", `Bearer realm="pathway", error="insufficient_scope", scope="`+v2+`"`)
		s.fail(w, r, http.StatusForbidden, "api-forbidden", "the access token lacks the scope "+v2+" (or system/"+n.Type+"."+v1Names[n.Perms]+"): ask for it at "+tokenPath)
		s.logAccess(r.Context(), c, interaction, policy.Deny)
		return false
	}
	return true
}
