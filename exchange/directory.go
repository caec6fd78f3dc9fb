package exchange

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/language"

	"github.com/pathway-fhir/pathway/policy"
)

// DirectoryFormat names a service-directory format partners are imported from.
type DirectoryFormat string

const (
	// DirectoryHSDS is Open Referral's Human Services Data Specification
	// (HSDS 3) as JSON: one organization, a list of them (an array or a
	// page with "contents"), or a tabular export (organizations, services,
	// locations, service_at_location, languages... as arrays).
	DirectoryHSDS DirectoryFormat = "hsds"
	// DirectoryFHIR is FHIR R4 JSON: a Bundle, one resource, or NDJSON, of
	// Organization, HealthcareService, Endpoint (and Location for
	// coverage areas), as an mCSD directory publishes them.
	DirectoryFHIR DirectoryFormat = "fhir"
)

// DirectoryFile is one input file of an import.
type DirectoryFile struct {
	Name string
	Data []byte
}

// DirectoryOptions configure an import.
type DirectoryOptions struct {
	// Kind is given to partners whose kind the directory does not make
	// clear. Empty: such a partner is an error.
	Kind policy.PartnerKind
}

// DirectoryPartner is one partner read from a directory, in the shape of
// a pathway.yaml partners[] entry, without an agreement: a directory
// never says what a partner may receive.
type DirectoryPartner struct {
	// ID is the partner id, derived from DirectoryID: the same directory id
	// always gives the same partner id.
	ID string `json:"id"`
	// DirectoryID is the organisation's id in the directory.
	DirectoryID string `json:"directory_id"`
	Name        string `json:"name,omitempty"`
	Kind        string `json:"kind"`
	// KindFrom says where Kind came from: the element it was inferred
	// from, or "--kind".
	KindFrom    string              `json:"kind_from"`
	Identifiers []policy.Identifier `json:"identifiers,omitempty"`
	Endpoint    string              `json:"endpoint,omitempty"`
	Services    Service             `json:"-"`
	// File and Element say where the organisation was read.
	File    string `json:"file"`
	Element string `json:"element"`
}

// MarshalJSON writes the partner with snake_case service keys.
func (p DirectoryPartner) MarshalJSON() ([]byte, error) {
	type plain DirectoryPartner
	return json.Marshal(struct {
		plain
		Services struct {
			Categories []string `json:"categories"`
			Languages  []string `json:"languages"`
			Catchment  []string `json:"catchment"`
		} `json:"services"`
	}{plain: plain(p), Services: struct {
		Categories []string `json:"categories"`
		Languages  []string `json:"languages"`
		Catchment  []string `json:"catchment"`
	}{nonNil(p.Services.Categories), nonNil(p.Services.Languages), nonNil(p.Services.Catchment)}})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DirectoryNote is a warning or an error about one element of an input
// file. It names the element and codes, never personal data.
type DirectoryNote struct {
	File    string `json:"file"`
	Element string `json:"element,omitempty"`
	Message string `json:"message"`
}

func (n DirectoryNote) String() string {
	if n.Element == "" {
		return n.File + ": " + n.Message
	}
	return n.File + ": " + n.Element + ": " + n.Message
}

// DirectoryError lists every problem that stopped an import.
type DirectoryError struct {
	Problems []DirectoryNote
}

func (e *DirectoryError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// DirectoryImport is the result of an import: the partners in input
// order and the warnings about what could not be mapped.
type DirectoryImport struct {
	Format   DirectoryFormat    `json:"format"`
	Partners []DirectoryPartner `json:"partners"`
	Warnings []DirectoryNote    `json:"warnings"`
}

// importer collects partners, warnings and errors across files.
type importer struct {
	opts     DirectoryOptions
	out      DirectoryImport
	problems []DirectoryNote
	seen     map[string]DirectoryPartner // by partner id
}

func (im *importer) warn(file, element, format string, args ...any) {
	im.out.Warnings = append(im.out.Warnings, DirectoryNote{File: file, Element: element, Message: fmt.Sprintf(format, args...)})
}

func (im *importer) fail(file, element, format string, args ...any) {
	im.problems = append(im.problems, DirectoryNote{File: file, Element: element, Message: fmt.Sprintf(format, args...)})
}

// ImportDirectory reads partners from directory files. Every problem
// (a file that is not JSON, an organisation without an id, two
// organisations with one id) is reported, each naming its file and
// element, as a *DirectoryError; what cannot be mapped to pathway.yaml
// is a warning.
func ImportDirectory(format DirectoryFormat, files []DirectoryFile, opts DirectoryOptions) (*DirectoryImport, error) {
	if opts.Kind != "" && (!opts.Kind.Valid() || opts.Kind == policy.KindAuditor) {
		return nil, fmt.Errorf("kind %q: must be clinic, ngo or community", opts.Kind)
	}
	im := &importer{opts: opts, seen: map[string]DirectoryPartner{}, out: DirectoryImport{Format: format, Partners: []DirectoryPartner{}, Warnings: []DirectoryNote{}}}
	switch format {
	case DirectoryHSDS:
		for _, f := range files {
			im.hsdsFile(f)
		}
	case DirectoryFHIR:
		im.fhirFiles(files)
	default:
		return nil, fmt.Errorf("directory format %q: must be hsds or fhir", format)
	}
	if len(im.problems) > 0 {
		return nil, &DirectoryError{Problems: im.problems}
	}
	return &im.out, nil
}

// add records a partner, refusing a second one with the same id.
func (im *importer) add(p DirectoryPartner) {
	if prev, dup := im.seen[p.ID]; dup {
		what := "duplicate organization id " + strconv.Quote(p.DirectoryID)
		if prev.DirectoryID != p.DirectoryID {
			what = fmt.Sprintf("organization id %q gives partner id %q, as %q does", p.DirectoryID, p.ID, prev.DirectoryID)
		}
		im.fail(p.File, p.Element+".id", "%s: also at %s: %s", what, prev.File, prev.Element)
		return
	}
	im.seen[p.ID] = p
	im.out.Partners = append(im.out.Partners, p)
}

// chooseKind settles a partner's kind from what the directory said
// (votes: kind -> the element that said it), else the --kind default.
func (im *importer) chooseKind(p *DirectoryPartner, votes map[policy.PartnerKind]string) {
	if len(votes) == 1 {
		for k, from := range votes {
			p.Kind, p.KindFrom = string(k), from
		}
		return
	}
	if len(votes) > 1 {
		kinds := make([]string, 0, len(votes))
		for k, from := range votes {
			kinds = append(kinds, string(k)+" ("+from+")")
		}
		slices.Sort(kinds)
		im.warn(p.File, p.Element, "the directory suggests several kinds: %s", strings.Join(kinds, ", "))
	}
	if im.opts.Kind == "" {
		im.fail(p.File, p.Element, "the directory does not make clear whether organization %q is a clinic, an NGO or a community support: give --kind", p.DirectoryID)
		return
	}
	p.Kind, p.KindFrom = string(im.opts.Kind), "--kind"
}

var fhirIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
var notIDChars = regexp.MustCompile(`[^A-Za-z0-9\-.]+`)

// PartnerIDFromDirectory derives a partner id from a directory id: the
// id itself when it is a FHIR id, else its FHIR-id characters (at most 55)
// and 8 hex digits of its SHA-256, so that it stays the same on every
// import and distinct ids stay distinct.
func PartnerIDFromDirectory(dirID string) string {
	if fhirIDPattern.MatchString(dirID) {
		return dirID
	}
	s := strings.Trim(notIDChars.ReplaceAllString(dirID, "-"), "-.")
	if len(s) > 55 {
		s = strings.TrimRight(s[:55], "-.")
	}
	sum := sha256.Sum256([]byte(dirID))
	if s == "" {
		return "org-" + hex.EncodeToString(sum[:4])
	}
	return s + "-" + hex.EncodeToString(sum[:4])
}

// bcp47 returns the canonical BCP-47 tag of a language code (ISO 639-1
// or 639-3, or a BCP-47 tag), or false.
func bcp47(code string) (string, bool) {
	code = strings.TrimSpace(code)
	if code == "" {
		return "", false
	}
	tag, err := language.Parse(code)
	if err != nil || tag == language.Und {
		return "", false
	}
	return tag.String(), true
}

func addUnique(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// endpointProblem says why a FHIR base URL cannot be a partner endpoint,
// as lint would: "" when it can.
func endpointProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return "not an absolute http(s) URL"
	case u.User != nil:
		return "the URL carries credentials"
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return "plain http outside this machine (Pathway requires https)"
	}
	return ""
}

// YAML returns the partners as a pathway.yaml `partners:` fragment, with
// a commented placeholder agreement for each: until the operator writes
// the agreement signed with the partner, it receives nothing.
func (d *DirectoryImport) YAML(command string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Partners imported by `%s`.\n", command)
	b.WriteString("# Review each entry, write its data-sharing agreement, then paste it under\n")
	b.WriteString("# partners: in pathway.yaml and run `pathway config lint`.\n")
	b.WriteString("partners:\n")
	if len(d.Partners) == 0 {
		b.WriteString("  []\n")
	}
	for i, p := range d.Partners {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  # from %s: %s\n", p.File, p.Element)
		fmt.Fprintf(&b, "  - id: %s\n", yamlScalar(p.ID))
		if p.Name != "" {
			fmt.Fprintf(&b, "    name: %s\n", yamlScalar(p.Name))
		}
		fmt.Fprintf(&b, "    kind: %s # from %s\n", p.Kind, p.KindFrom)
		if len(p.Identifiers) > 0 {
			b.WriteString("    identifiers:\n")
			for _, id := range p.Identifiers {
				fmt.Fprintf(&b, "      - {system: %s, value: %s}\n", yamlQuote(id.System), yamlQuote(id.Value))
			}
		}
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "    endpoint: %s\n", yamlQuote(p.Endpoint))
		}
		s := p.Services
		if len(s.Categories)+len(s.Languages)+len(s.Catchment) > 0 {
			b.WriteString("    services:\n")
			for _, l := range []struct {
				key  string
				vals []string
			}{{"categories", s.Categories}, {"languages", s.Languages}, {"catchment", s.Catchment}} {
				if len(l.vals) == 0 {
					continue
				}
				q := make([]string, len(l.vals))
				for j, v := range l.vals {
					q[j] = yamlScalar(v)
				}
				fmt.Fprintf(&b, "      %s: [%s]\n", l.key, strings.Join(q, ", "))
			}
		}
		b.WriteString(agreementPlaceholder)
	}
	return b.Bytes()
}

const agreementPlaceholder = `    # agreement: NOT YET WRITTEN. Without one this partner receives nothing:
    # an agreement with no purposes denies every exchange. Copy the
    # data-sharing agreement signed with the partner (docs/policy.md):
    # only the purposes, resource types and labels it actually allows.
    # agreement:
    #   id: ""              # the signed agreement's reference
    #   purposes: []        # purposes of use the agreement allows
    #   resource_types: []
    #   labels: []
`

var plainScalar = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)

// yamlScalar writes s plain when that is unambiguous, else quoted.
func yamlScalar(s string) string {
	if plainScalar.MatchString(s) {
		switch strings.ToLower(s) {
		case "true", "false", "yes", "no", "on", "off", "null", "y", "n":
		default:
			return s
		}
	}
	return yamlQuote(s)
}

// yamlQuote writes s as a double-quoted scalar (JSON's escapes are YAML's).
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
