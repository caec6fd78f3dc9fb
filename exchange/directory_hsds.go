package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
)

// flexString reads a JSON string or number (tabular HSDS exports write
// some ids and identifiers as numbers); null is empty.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		*f = flexString(b)
	default:
		return errors.New("not a string or a number")
	}
	return nil
}

// The HSDS 3 objects, with only what partners are made of.
type hsdsOrganization struct {
	ID          flexString          `json:"id"`
	Name        string              `json:"name"`
	Identifiers []hsdsOrgIdentifier `json:"organization_identifiers"`
	Services    []hsdsService       `json:"services"`
	Contacts    []json.RawMessage   `json:"contacts"`
	Locations   []hsdsLocation      `json:"locations"`
}

type hsdsOrgIdentifier struct {
	OrganizationID flexString `json:"organization_id"`
	Scheme         string     `json:"identifier_scheme"`
	Type           string     `json:"identifier_type"`
	Identifier     flexString `json:"identifier"`
}

type hsdsService struct {
	ID                     flexString        `json:"id"`
	OrganizationID         flexString        `json:"organization_id"`
	Status                 string            `json:"status"`
	InterpretationServices string            `json:"interpretation_services"`
	Languages              []hsdsLanguage    `json:"languages"`
	ServiceAreas           []hsdsServiceArea `json:"service_areas"`
	Attributes             []hsdsAttribute   `json:"attributes"`
	ServiceAtLocations     []hsdsSAL         `json:"service_at_locations"`
	Contacts               []json.RawMessage `json:"contacts"`
}

type hsdsLanguage struct {
	ServiceID  flexString `json:"service_id"`
	LocationID flexString `json:"location_id"`
	Name       string     `json:"name"`
	Code       string     `json:"code"`
}

type hsdsServiceArea struct {
	ServiceID flexString `json:"service_id"`
}

type hsdsAttribute struct {
	LinkID         flexString    `json:"link_id"`
	TaxonomyTermID flexString    `json:"taxonomy_term_id"`
	TaxonomyTerm   *hsdsTaxonomy `json:"taxonomy_term"`
}

type hsdsTaxonomy struct {
	ID       flexString `json:"id"`
	Code     string     `json:"code"`
	Name     string     `json:"name"`
	Taxonomy string     `json:"taxonomy"`
	TermURI  string     `json:"term_uri"`
}

type hsdsSAL struct {
	ServiceID  flexString    `json:"service_id"`
	LocationID flexString    `json:"location_id"`
	Location   *hsdsLocation `json:"location"`
}

type hsdsLocation struct {
	ID        flexString     `json:"id"`
	Languages []hsdsLanguage `json:"languages"`
}

// hsdsFile reads one HSDS file: an organization, a list of them (an
// array, or a page with "contents"), or a tabular export.
func (im *importer) hsdsFile(f DirectoryFile) {
	data := bytes.TrimPrefix(f.Data, []byte("\xef\xbb\xbf"))
	if !json.Valid(data) {
		im.fail(f.Name, "", "not valid JSON")
		return
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var orgs []json.RawMessage
		if err := json.Unmarshal(trimmed, &orgs); err != nil {
			im.fail(f.Name, "", "not a list of HSDS organizations")
			return
		}
		im.hsdsOrgs(f.Name, "", orgs, false)
		return
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		im.fail(f.Name, "", "not an HSDS organization, organization list or tabular export (a JSON object or array)")
		return
	}
	if raw, ok := top["contents"]; ok {
		var orgs []json.RawMessage
		if err := json.Unmarshal(raw, &orgs); err != nil {
			im.fail(f.Name, "contents", "not a list of organizations")
			return
		}
		im.hsdsOrgs(f.Name, "contents", orgs, false)
		return
	}
	if tableKey(top, "organizations") != "" {
		im.hsdsTabular(f.Name, top)
		return
	}
	if _, ok := top["id"]; ok {
		im.hsdsOrgs(f.Name, "", []json.RawMessage{trimmed}, true)
		return
	}
	if _, ok := top["services"]; ok {
		im.fail(f.Name, "id", "an organization needs an id")
		return
	}
	im.fail(f.Name, "", "not an HSDS organization (no id), organization list (no contents) or tabular export (no organizations table)")
}

// hsdsOrgs reads nested organizations; prefix is their list's element
// ("contents", "" for a top-level array); single is one organization,
// the whole file.
func (im *importer) hsdsOrgs(file, prefix string, raws []json.RawMessage, single bool) {
	for i, raw := range raws {
		el := prefix + "[" + strconv.Itoa(i) + "]"
		if single {
			el = ""
		}
		var o hsdsOrganization
		if err := json.Unmarshal(raw, &o); err != nil {
			im.fail(file, joinEl(el, typeErrorField(err)), "%s", typeErrorMessage(err))
			continue
		}
		im.hsdsOrg(file, el, &o)
	}
}

func joinEl(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

// typeErrorField names the element a json type error is about.
func typeErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

func typeErrorMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "wrong type: a JSON " + te.Value + " where HSDS has " + hsdsTypeName(te.Type.String())
	}
	return "cannot be read as HSDS"
}

func hsdsTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.Contains(goType, "exchange.hsds"), strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "*"):
		return "an object"
	}
	return "a string"
}

// hsdsOrg turns one organization (its services nested) into a partner.
func (im *importer) hsdsOrg(file, el string, o *hsdsOrganization) {
	if o.ID == "" {
		im.fail(file, joinEl(el, "id"), "an organization needs an id")
		return
	}
	p := DirectoryPartner{DirectoryID: string(o.ID), ID: PartnerIDFromDirectory(string(o.ID)), Name: strings.TrimSpace(o.Name), File: file, Element: el}
	if p.Element == "" {
		p.Element = "(root)"
	}
	if p.Name == "" {
		im.warn(file, joinEl(el, "name"), "no name: add one")
	}
	for j, id := range o.Identifiers {
		iel := fmt.Sprintf("%s[%d]", joinEl(el, "organization_identifiers"), j)
		if id.Scheme == "" || id.Identifier == "" {
			im.warn(file, iel, "an identifier without identifier_scheme or identifier: not imported")
			continue
		}
		// HSDS identifier schemes are org-id.guide list codes (GB-CHC, GB-COH).
		p.Identifiers = append(p.Identifiers, policy.Identifier{System: "https://org-id.guide/list/" + id.Scheme, Value: string(id.Identifier)})
	}
	if len(o.Contacts) > 0 {
		im.warn(file, joinEl(el, "contacts"), "%d contact(s) not imported: pathway.yaml keeps no contact persons", len(o.Contacts))
	}
	for j, s := range o.Services {
		im.hsdsService(file, fmt.Sprintf("%s[%d]", joinEl(el, "services"), j), &s, &p.Services)
	}
	if len(o.Services) == 0 {
		im.warn(file, joinEl(el, "services"), "no services: the partner offers nothing routing can match; add services.categories")
	}
	im.chooseKind(&p, nil) // HSDS has no element that says clinic or community
	if p.Kind != "" {
		im.add(p)
	}
}

func (im *importer) hsdsService(file, el string, s *hsdsService, out *Service) {
	if st := strings.ToLower(s.Status); st != "" && st != "active" {
		im.warn(file, joinEl(el, "status"), "service status %q: not imported", st)
		return
	}
	for j, a := range s.Attributes {
		ael := fmt.Sprintf("%s[%d].taxonomy_term", joinEl(el, "attributes"), j)
		if a.TaxonomyTerm == nil {
			im.warn(file, ael, "no taxonomy term: not mapped")
			continue
		}
		if code, ok := hsdsCategory(a.TaxonomyTerm); ok {
			out.Categories = addUnique(out.Categories, code)
		} else {
			im.warn(file, ael, "taxonomy %q code %q has no Pathway service code: add the category by hand", a.TaxonomyTerm.Taxonomy, a.TaxonomyTerm.Code)
		}
	}
	langs := func(lel string, ls []hsdsLanguage) {
		for j, l := range ls {
			if tag, ok := bcp47(l.Code); ok {
				out.Languages = addUnique(out.Languages, tag)
			} else {
				im.warn(file, fmt.Sprintf("%s[%d].code", lel, j), "not an ISO 639 or BCP-47 language code: not imported")
			}
		}
	}
	langs(joinEl(el, "languages"), s.Languages)
	for j, sal := range s.ServiceAtLocations {
		if sal.Location != nil {
			langs(fmt.Sprintf("%s[%d].location.languages", joinEl(el, "service_at_locations"), j), sal.Location.Languages)
		}
	}
	if len(s.ServiceAreas) > 0 {
		im.warn(file, joinEl(el, "service_areas"), "a service area (a name or a GeoJSON extent) is not a list of districts or postal-code prefixes: set services.catchment by hand")
	}
	if strings.TrimSpace(s.InterpretationServices) != "" {
		im.warn(file, joinEl(el, "interpretation_services"), "free text: set services.interpreters by hand if the partner provides interpreters")
	}
	if len(s.Contacts) > 0 {
		im.warn(file, joinEl(el, "contacts"), "%d contact(s) not imported: pathway.yaml keeps no contact persons", len(s.Contacts))
	}
}

// openEligibility maps Open Eligibility taxonomy terms (by name) whose
// meaning is one of Pathway's service codes.
var openEligibility = map[string]string{
	"food":               "food-support",
	"housing":            "housing",
	"education":          "education",
	"work":               "employment",
	"legal":              "legal-advice",
	"mental health care": "mental-health",
}

// hsdsCategory maps a taxonomy term to a Pathway service code: a term of
// Pathway's own CodeSystem, or an Open Eligibility term with a clear
// equivalent.
func hsdsCategory(t *hsdsTaxonomy) (string, bool) {
	tax := strings.ToLower(strings.TrimSpace(t.Taxonomy))
	switch {
	case tax == strings.ToLower(fhir.SystemPathway) || tax == "pathway":
		if _, ok := fhir.PathwayCode(t.Code); ok {
			return t.Code, true
		}
	case strings.ReplaceAll(strings.ReplaceAll(tax, " ", ""), "-", "") == "openeligibility":
		code, ok := openEligibility[strings.ToLower(strings.TrimSpace(t.Name))]
		return code, ok
	}
	return "", false
}

// tableKey returns the key a tabular export uses for a table ("services"
// or "services.csv"), or "".
func tableKey(top map[string]json.RawMessage, name string) string {
	for _, k := range []string{name, name + ".csv"} {
		if _, ok := top[k]; ok {
			return k
		}
	}
	return ""
}

// hsdsTabular reads a tabular export: the tables joined by their foreign
// keys into nested organizations.
func (im *importer) hsdsTabular(file string, top map[string]json.RawMessage) {
	ok := true
	table := func(name string, dst any) string {
		k := tableKey(top, name)
		if name == "service_at_location" && k == "" {
			k = tableKey(top, "service_at_locations")
		}
		if k == "" {
			return ""
		}
		if err := json.Unmarshal(top[k], dst); err != nil {
			im.fail(file, joinEl(k, typeErrorField(err)), "%s", typeErrorMessage(err))
			ok = false
		}
		return k
	}
	var (
		orgs     []hsdsOrganization
		services []hsdsService
		ids      []hsdsOrgIdentifier
		langs    []hsdsLanguage
		areas    []hsdsServiceArea
		attrs    []hsdsAttribute
		terms    []hsdsTaxonomy
		sals     []hsdsSAL
		contacts []struct {
			OrganizationID flexString `json:"organization_id"`
			ServiceID      flexString `json:"service_id"`
		}
	)
	orgKey := table("organizations", &orgs)
	svcKey := table("services", &services)
	table("organization_identifiers", &ids)
	table("languages", &langs)
	table("service_areas", &areas)
	table("attributes", &attrs)
	table("taxonomy_terms", &terms)
	table("service_at_location", &sals)
	table("contacts", &contacts)
	if !ok {
		return
	}
	termByID := map[flexString]*hsdsTaxonomy{}
	for i := range terms {
		termByID[terms[i].ID] = &terms[i]
	}
	for i := range services {
		s := &services[i]
		if s.ID == "" {
			im.fail(file, fmt.Sprintf("%s[%d].id", svcKey, i), "a service needs an id")
			continue
		}
		for _, l := range langs {
			if l.ServiceID == s.ID {
				s.Languages = append(s.Languages, l)
			}
		}
		for _, a := range areas {
			if a.ServiceID == s.ID {
				s.ServiceAreas = append(s.ServiceAreas, a)
			}
		}
		for _, a := range attrs {
			if a.LinkID == s.ID {
				if a.TaxonomyTerm == nil {
					a.TaxonomyTerm = termByID[a.TaxonomyTermID]
				}
				s.Attributes = append(s.Attributes, a)
			}
		}
		for _, c := range contacts {
			if c.ServiceID == s.ID {
				s.Contacts = append(s.Contacts, nil)
			}
		}
		for _, sal := range sals {
			if sal.ServiceID != s.ID {
				continue
			}
			loc := &hsdsLocation{ID: sal.LocationID}
			for _, l := range langs {
				if l.LocationID != "" && l.LocationID == sal.LocationID && l.ServiceID == "" {
					loc.Languages = append(loc.Languages, l)
				}
			}
			sal.Location = loc
			s.ServiceAtLocations = append(s.ServiceAtLocations, sal)
		}
	}
	orgIDs := map[flexString]bool{}
	for i := range orgs {
		o := &orgs[i]
		orgIDs[o.ID] = true
		for _, id := range ids {
			if id.OrganizationID == o.ID {
				o.Identifiers = append(o.Identifiers, id)
			}
		}
		for _, c := range contacts {
			if c.OrganizationID == o.ID && c.ServiceID == "" {
				o.Contacts = append(o.Contacts, nil)
			}
		}
		for _, s := range services {
			if s.OrganizationID == o.ID && s.ID != "" {
				o.Services = append(o.Services, s)
			}
		}
		im.hsdsOrg(file, fmt.Sprintf("%s[%d]", orgKey, i), o)
	}
	for i, s := range services {
		if !orgIDs[s.OrganizationID] {
			im.warn(file, fmt.Sprintf("%s[%d].organization_id", svcKey, i), "names no organization of the file: service not imported")
		}
	}
}
