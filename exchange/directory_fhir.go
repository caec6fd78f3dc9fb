package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	endpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/endpoint_go_proto"
	locpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/location_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
)

const (
	systemServiceCategory = "http://terminology.hl7.org/CodeSystem/service-category"
	systemServiceType     = "http://terminology.hl7.org/CodeSystem/service-type"
	systemOrgType         = "http://terminology.hl7.org/CodeSystem/organization-type"
	systemConnectionType  = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	systemSDOHCC          = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
	systemSNOMED          = "http://snomed.info/sct"
)

// fhirServiceCodes maps "system|code" of HealthcareService.category,
// .type and .specialty to Pathway's service codes, where the meaning is
// the same. Anything else is a warning.
var fhirServiceCodes = map[string]string{
	systemServiceCategory + "|8":                "mental-health", // Counselling
	systemServiceType + "|70":                   "mental-health", // Crisis Counselling
	systemServiceType + "|126":                  "housing",       // Crisis/Emergency Accommodation
	systemServiceType + "|128":                  "housing",       // Housing Information/Referral
	systemServiceType + "|130":                  "language-support",
	systemServiceType + "|344":                  "food-support",  // Food
	systemServiceType + "|548":                  "food-support",  // Food Relief/Food/Meals
	systemSNOMED + "|394913002":                 "mental-health", // Psychotherapy
	systemSNOMED + "|394587001":                 "mental-health", // Psychiatry
	systemSDOHCC + "|food-insecurity":           "food-support",
	systemSDOHCC + "|housing-instability":       "housing",
	systemSDOHCC + "|homelessness":              "housing",
	systemSDOHCC + "|inadequate-housing":        "housing",
	systemSDOHCC + "|financial-insecurity":      "financial-support",
	systemSDOHCC + "|employment-status":         "employment",
	systemSDOHCC + "|educational-attainment":    "education",
	systemSDOHCC + "|intimate-partner-violence": "domestic-violence-support",
	systemSDOHCC + "|language-access":           "language-support",
}

// fhirKindCodes are the codes that make a partner's kind clear.
var fhirKindCodes = map[string]policy.PartnerKind{
	systemOrgType + "|prov":     policy.KindClinic,    // Healthcare Provider
	systemOrgType + "|cg":       policy.KindCommunity, // Community Group
	systemServiceType + "|124":  policy.KindClinic,    // General Practice
	systemSNOMED + "|394587001": policy.KindClinic,    // Psychiatry
}

// fhirRes is one resource of the input, with where it was read.
type fhirRes struct {
	file, element string
	fullURL       string
	res           *fhir.ContainedResource
}

func (r fhirRes) name() string { return r.element }

// fhirIndex holds the input's resources by type and by reference key.
type fhirIndex struct {
	orgs     []fhirRes
	services []fhirRes
	byKey    map[string]fhirRes // "Type/id" and fullUrl
	// skipped counts resources of other types, per file and type.
	skipped map[[2]string]int
}

func (x *fhirIndex) resolve(ref *dpb.Reference) (fhirRes, bool) {
	if ref == nil {
		return fhirRes{}, false
	}
	if r, ok := x.byKey[fhir.RefString(ref)]; ok {
		return r, true
	}
	if t, id := fhir.RefType(ref), fhir.RefID(ref); t != "" && id != "" {
		r, ok := x.byKey[t+"/"+id]
		return r, ok
	}
	return fhirRes{}, false
}

// fhirFiles reads every file, then makes a partner of each Organization
// with the HealthcareServices it provides and the Endpoints it has.
func (im *importer) fhirFiles(files []DirectoryFile) {
	x := &fhirIndex{byKey: map[string]fhirRes{}, skipped: map[[2]string]int{}}
	for _, f := range files {
		im.fhirFile(f, x)
	}
	keys := make([][2]string, 0, len(x.skipped))
	for k := range x.skipped {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		im.warn(k[0], k[1], "%d resource(s) not imported: partners are made of Organization, HealthcareService and Endpoint", x.skipped[k])
	}
	byOrg := map[string][]fhirRes{}
	for _, s := range x.services {
		hs := s.res.GetHealthcareService()
		org, ok := x.resolve(hs.GetProvidedBy())
		if !ok || org.res.GetOrganization() == nil {
			im.warn(s.file, s.name()+".providedBy", "names no Organization of the input: service not imported")
			continue
		}
		key := org.file + "\x00" + org.element
		byOrg[key] = append(byOrg[key], s)
	}
	for _, o := range x.orgs {
		im.fhirOrg(o, byOrg[o.file+"\x00"+o.element], x)
	}
}

// fhirFile reads one file: a resource, a Bundle, or NDJSON.
func (im *importer) fhirFile(f DirectoryFile, x *fhirIndex) {
	data := bytes.TrimPrefix(f.Data, []byte("\xef\xbb\xbf"))
	if json.Valid(data) {
		im.fhirResult(f.Name, "", data, fhir.Parse(data), x)
		return
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' || !bytes.Contains(trimmed, []byte("\n")) {
		im.fail(f.Name, "", "not valid JSON (nor NDJSON: one FHIR resource per line)")
		return
	}
	rd := fhir.NewNDJSONReader(bytes.NewReader(data))
	for {
		line, r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			im.fail(f.Name, "", "reading: %v", err)
			return
		}
		im.fhirResult(f.Name, "line "+strconv.Itoa(line), nil, r, x)
	}
}

// fhirResult indexes what one parsed resource holds. data is the JSON,
// for a Bundle's per-entry issues.
func (im *importer) fhirResult(file, at string, data []byte, r fhir.Result, x *fhirIndex) {
	if r.Resource == nil && r.ResourceType != "" {
		im.fail(file, joinAt(at, resName(nil, r.ResourceType, r.ID)), "invalid: %s", issuesText(r.Issues))
		return
	}
	if r.Resource == nil {
		im.fail(file, at, "not a FHIR R4 resource: %s", issuesText(r.Issues))
		return
	}
	b := r.Resource.GetBundle()
	if b == nil {
		if r.Issues.HasErrors() {
			im.fail(file, joinAt(at, resName(r.Resource, r.ResourceType, r.ID)), "invalid: %s", issuesText(r.Issues))
			return
		}
		im.fhirIndexOne(fhirRes{file: file, element: joinAt(at, resName(r.Resource, "", ""))}, r.Resource, x)
		return
	}
	var entryIssues []fhir.EntryResult
	bundleIssues := r.Issues
	if data != nil {
		bundleIssues, entryIssues = fhir.SplitBundle(data, r)
	}
	if bundleIssues.HasErrors() {
		im.fail(file, joinAt(at, "Bundle"), "invalid: %s", issuesText(bundleIssues))
		return
	}
	for i, e := range b.GetEntry() {
		cr := e.GetResource()
		if cr == nil {
			continue
		}
		el := joinAt(at, fmt.Sprintf("Bundle.entry[%d] %s", i, resName(cr, "", "")))
		if i < len(entryIssues) && !entryIssues[i].Valid() {
			if isDirectoryType(resName(cr, "", "")) {
				im.fail(file, el, "invalid: %s", issuesText(entryIssues[i].Issues))
			} else {
				im.warn(file, el, "invalid, and not needed: %s", issuesText(entryIssues[i].Issues))
			}
			continue
		}
		im.fhirIndexOne(fhirRes{file: file, element: el, fullURL: e.GetFullUrl().GetValue()}, cr, x)
	}
}

func joinAt(at, name string) string {
	if at == "" {
		return name
	}
	return at + " " + name
}

func isDirectoryType(name string) bool {
	t, _, _ := strings.Cut(name, "/")
	return t == "Organization" || t == "HealthcareService" || t == "Endpoint" || t == "Location"
}

// resName is "Type/id" (or "Type" without an id) of a resource.
func resName(cr *fhir.ContainedResource, typ, id string) string {
	if cr != nil {
		if m := fhir.Unwrap(cr); m != nil {
			typ = string(m.ProtoReflect().Descriptor().Name())
			if f := m.ProtoReflect().Descriptor().Fields().ByName("id"); f != nil {
				if idm, ok := m.ProtoReflect().Get(f).Message().Interface().(*dpb.Id); ok {
					id = idm.GetValue()
				}
			}
		}
	}
	if typ == "" {
		typ = "resource"
	}
	if id == "" {
		return typ
	}
	return typ + "/" + id
}

// issuesText lists error issues by path and rule, never their values.
func issuesText(is fhir.Issues) string {
	var parts []string
	for _, i := range is {
		if i.Severity == fhir.SeverityError || i.Severity == fhir.SeverityFatal {
			parts = append(parts, i.Path+": "+i.Details)
		}
		if len(parts) == 3 {
			parts = append(parts, "...")
			break
		}
	}
	return strings.Join(parts, "; ")
}

func (im *importer) fhirIndexOne(r fhirRes, cr *fhir.ContainedResource, x *fhirIndex) {
	name := resName(cr, "", "")
	t, id, _ := strings.Cut(name, "/")
	if !isDirectoryType(name) {
		x.skipped[[2]string{r.file, t}]++
		return
	}
	r.res = cr
	if id == "" {
		if t == "Organization" {
			im.fail(r.file, r.element+".id", "an Organization needs an id: the partner id is derived from it")
			return
		}
		if r.fullURL == "" {
			im.warn(r.file, r.element, "no id and no fullUrl: nothing can refer to it; not imported")
			return
		}
	}
	if id != "" {
		if prev, dup := x.byKey[name]; dup && t != "Organization" {
			im.fail(r.file, r.element, "duplicate %s: also at %s: %s", name, prev.file, prev.element)
			return
		}
		x.byKey[name] = r
	}
	if r.fullURL != "" {
		x.byKey[r.fullURL] = r
	}
	switch t {
	case "Organization":
		x.orgs = append(x.orgs, r)
	case "HealthcareService":
		x.services = append(x.services, r)
	}
}

func codingKey(c *dpb.Coding) string {
	return c.GetSystem().GetValue() + "|" + c.GetCode().GetValue()
}

// fhirOrg makes the partner of one Organization.
func (im *importer) fhirOrg(o fhirRes, services []fhirRes, x *fhirIndex) {
	org := o.res.GetOrganization()
	dirID := org.GetId().GetValue()
	p := DirectoryPartner{DirectoryID: dirID, ID: PartnerIDFromDirectory(dirID), Name: strings.TrimSpace(org.GetName().GetValue()), File: o.file, Element: o.element}
	if p.Name == "" {
		im.warn(o.file, o.element+".name", "no name: add one")
	}
	if a := org.GetActive(); a != nil && !a.GetValue() {
		im.warn(o.file, o.element+".active", "the Organization is not active: check before adding it")
	}
	for j, id := range org.GetIdentifier() {
		sys, val := id.GetSystem().GetValue(), id.GetValue().GetValue()
		if sys == "" || val == "" {
			im.warn(o.file, fmt.Sprintf("%s.identifier[%d]", o.element, j), "an identifier without system or value: not imported")
			continue
		}
		p.Identifiers = append(p.Identifiers, policy.Identifier{System: sys, Value: val})
	}
	votes := map[policy.PartnerKind]string{}
	for j, cc := range org.GetType() {
		for _, c := range cc.GetCoding() {
			if k, ok := fhirKindCodes[codingKey(c)]; ok {
				votes[k] = fmt.Sprintf("%s.type[%d] %s", o.element, j, c.GetCode().GetValue())
			}
		}
	}
	endpoints := slices.Clone(org.GetEndpoint())
	for _, s := range services {
		im.fhirService(s, &p.Services, votes, x)
		endpoints = append(endpoints, s.res.GetHealthcareService().GetEndpoint()...)
	}
	if len(services) == 0 {
		im.warn(o.file, o.element, "no HealthcareService provided by it: the partner offers nothing routing can match; add services.categories")
	}
	p.Endpoint = im.fhirEndpoint(o, endpoints, x)
	im.chooseKind(&p, votes)
	if p.Kind != "" {
		im.add(p)
	}
}

func (im *importer) fhirService(s fhirRes, out *Service, votes map[policy.PartnerKind]string, x *fhirIndex) {
	hs := s.res.GetHealthcareService()
	if a := hs.GetActive(); a != nil && !a.GetValue() {
		im.warn(s.file, s.element+".active", "the service is not active: not imported")
		return
	}
	concepts := func(field string, ccs []*dpb.CodeableConcept) {
		for j, cc := range ccs {
			el := fmt.Sprintf("%s.%s[%d]", s.element, field, j)
			mapped := false
			var codes []string
			for _, c := range cc.GetCoding() {
				codes = append(codes, codingKey(c))
				if k, ok := fhirKindCodes[codingKey(c)]; ok {
					votes[k] = el + " " + c.GetCode().GetValue()
				}
				if code, ok := fhirServiceCodes[codingKey(c)]; ok {
					out.Categories = addUnique(out.Categories, code)
					mapped = true
				}
			}
			if !mapped {
				if len(codes) == 0 {
					im.warn(s.file, el, "text only, no coding: not mapped")
				} else {
					im.warn(s.file, el, "%s has no Pathway service code: add the category by hand", strings.Join(codes, ", "))
				}
			}
		}
	}
	concepts("category", hs.GetCategory())
	concepts("type", hs.GetType())
	concepts("specialty", hs.GetSpecialty())
	for j, cc := range hs.GetCommunication() {
		el := fmt.Sprintf("%s.communication[%d]", s.element, j)
		found := false
		for _, c := range cc.GetCoding() {
			if sys := c.GetSystem().GetValue(); sys != "" && sys != fhir.SystemLanguage {
				continue
			}
			if tag, ok := bcp47(c.GetCode().GetValue()); ok {
				out.Languages = addUnique(out.Languages, tag)
				found = true
			}
		}
		if !found {
			im.warn(s.file, el, "no BCP-47 (urn:ietf:bcp:47) coding: not imported")
		}
	}
	for j, ref := range hs.GetCoverageArea() {
		el := fmt.Sprintf("%s.coverageArea[%d]", s.element, j)
		if _, frag := ref.GetReference().(*dpb.Reference_Fragment); frag {
			im.warn(s.file, el, "a contained Location is not read: set services.catchment by hand")
			continue
		}
		r, ok := x.resolve(ref)
		var loc *locpb.Location
		if ok {
			loc = r.res.GetLocation()
		}
		if loc == nil {
			im.warn(s.file, el, "names no Location of the input: set services.catchment by hand")
			continue
		}
		switch a := loc.GetAddress(); {
		case a.GetDistrict().GetValue() != "":
			out.Catchment = addUnique(out.Catchment, a.GetDistrict().GetValue())
		case a.GetPostalCode().GetValue() != "":
			out.Catchment = addUnique(out.Catchment, a.GetPostalCode().GetValue())
		default:
			im.warn(s.file, el, "the Location has no address.district or address.postalCode: set services.catchment by hand")
		}
	}
}

// fhirEndpoint picks the partner's FHIR base URL: the first active
// hl7-fhir-rest Endpoint of the Organization or its services, or one the
// Organization manages.
func (im *importer) fhirEndpoint(o fhirRes, refs []*dpb.Reference, x *fhirIndex) string {
	var eps []fhirRes
	seen := map[string]bool{}
	for _, ref := range refs {
		r, ok := x.resolve(ref)
		if !ok || r.res.GetEndpoint() == nil {
			im.warn(o.file, o.element, "endpoint %s is not in the input: not imported", fhir.RefString(ref))
			continue
		}
		if !seen[r.element] {
			seen[r.element] = true
			eps = append(eps, r)
		}
	}
	orgName := "Organization/" + o.res.GetOrganization().GetId().GetValue()
	for _, r := range x.byKey {
		if ep := r.res.GetEndpoint(); ep != nil && !seen[r.element] {
			if m, ok := x.resolve(ep.GetManagingOrganization()); ok && m.element == o.element && m.file == o.file {
				seen[r.element] = true
				eps = append(eps, r)
			}
		}
	}
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].file+eps[i].element < eps[j].file+eps[j].element })
	chosen := ""
	for _, r := range eps {
		ep := r.res.GetEndpoint()
		ct := ep.GetConnectionType()
		if sys := ct.GetSystem().GetValue(); ct.GetCode().GetValue() != "hl7-fhir-rest" || (sys != "" && sys != systemConnectionType) {
			im.warn(r.file, r.element+".connectionType", "%s is not hl7-fhir-rest: not used as %s's endpoint", codingKey(ct), orgName)
			continue
		}
		if st := endpointStatus(ep); st != "active" {
			im.warn(r.file, r.element+".status", "status %s: not used as %s's endpoint", st, orgName)
			continue
		}
		addr := ep.GetAddress().GetValue()
		if why := endpointProblem(addr); why != "" {
			im.warn(r.file, r.element+".address", "%s: not used as %s's endpoint; set endpoint by hand", why, orgName)
			continue
		}
		if chosen != "" {
			im.warn(r.file, r.element, "another hl7-fhir-rest endpoint was chosen for %s", orgName)
			continue
		}
		chosen = strings.TrimRight(addr, "/")
	}
	return chosen
}

func endpointStatus(ep *endpb.Endpoint) string {
	v := ep.GetStatus().GetValue()
	code := fhir.EnumCode(v.Descriptor().Values().ByNumber(v.Number()))
	if code == "" {
		return "missing"
	}
	return code
}
