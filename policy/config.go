package policy

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pathway-fhir/pathway/fhir"
)

// Config is the part of pathway.yaml the policy engine reads: the network's
// base policy, the partners with their data-sharing agreements, and extra
// labelling rules and value sets. The full configuration (issue 5) embeds
// these types unchanged; the keys it owns (top level routes, routing,
// retry, store, signing_key; partner endpoint, auth, tls, services, api) are
// accepted here and ignored.
type Config struct {
	// Network holds the network's identity and base consent policy.
	Network Network `yaml:"network"`
	// Partners lists the organisations data may go to, each with its agreement.
	Partners []Partner `yaml:"partners"`
	// Labels lists labelling rules added to Pathway's defaults.
	Labels []LabelRule `yaml:"labels"`
	// ValueSets lists named sets of codes that label rules refer to, added
	// to Pathway's built-in value sets.
	ValueSets []ValueSet `yaml:"value_sets"`
}

// Network is the referral network itself.
type Network struct {
	// ID names the network (a FHIR id).
	ID string `yaml:"id"`
	// BasePolicy decides when no active consent of the patient applies.
	// Empty means opt-in.
	BasePolicy BasePolicy `yaml:"base_policy"`
}

// BasePolicy is the network's consent base policy.
type BasePolicy string

const (
	// OptIn: without an applicable consent nothing is shared (the default).
	OptIn BasePolicy = "opt-in"
	// OptOut: without an applicable consent data is shared, within the
	// partner's agreement; immigration and legal-status data still never is.
	OptOut BasePolicy = "opt-out"
)

// Valid reports whether b is opt-in or opt-out.
func (b BasePolicy) Valid() bool { return b == OptIn || b == OptOut }

// orDefault returns opt-in for the empty policy.
func (b BasePolicy) orDefault() BasePolicy {
	if b == "" {
		return OptIn
	}
	return b
}

// PartnerKind is the kind of a partner organisation.
type PartnerKind string

const (
	// KindClinic is a clinical service (psychological therapies, a GP practice).
	KindClinic PartnerKind = "clinic"
	// KindNGO is a non-governmental organisation with case workers.
	KindNGO PartnerKind = "ngo"
	// KindCommunity is a community support (a social-prescribing activity, a peer group).
	KindCommunity PartnerKind = "community"
	// KindAuditor is an auditor: reads the audit log, receives no referrals.
	KindAuditor PartnerKind = "auditor"
)

// Valid reports whether k is a known kind.
func (k PartnerKind) Valid() bool {
	switch k {
	case KindClinic, KindNGO, KindCommunity, KindAuditor:
		return true
	}
	return false
}

// Partner is one organisation of the network.
type Partner struct {
	// ID is the partner's id: its Organization is Organization/ID in
	// consents and referrals (a FHIR id).
	ID string `yaml:"id"`
	// Name is what link workers call it; explanations use it.
	Name string `yaml:"name"`
	// Kind is clinic, ngo, community or auditor.
	Kind PartnerKind `yaml:"kind"`
	// Identifiers are the partner's business identifiers (an ODS code, a
	// charity number): a consent actor naming one of them names the partner.
	Identifiers []Identifier `yaml:"identifiers"`
	// Agreement is the partner's data-sharing agreement.
	Agreement Agreement `yaml:"agreement"`
}

// Identifier is a business identifier.
type Identifier struct {
	System string `yaml:"system"`
	Value  string `yaml:"value"`
}

// displayName returns the partner's name, else "partner ID".
func (p *Partner) displayName() string {
	if p.Name != "" {
		return p.Name
	}
	if p.ID != "" {
		return "partner " + p.ID
	}
	return "the recipient"
}

// Agreement is a partner's data-sharing agreement: what it may receive, for
// which purposes, and what it must not do with it.
type Agreement struct {
	// ID names the agreement (a document reference, "dsa-2026-community-c");
	// trails cite it. Empty: "partners[ID].agreement".
	ID string `yaml:"id"`
	// Purposes lists the purposes of use (v3-ActReason) the partner may
	// receive data for; a purpose under one listed counts (COC under TREAT).
	// Any other purpose is a deny, whatever the consent says.
	Purposes []string `yaml:"purposes"`
	// ResourceTypes lists the resource types the partner may receive;
	// other resources are removed.
	ResourceTypes []string `yaml:"resource_types"`
	// Labels lists the sensitivity labels the partner may receive ("MH",
	// "IMMIG", "system|code"); resources and elements carrying any other
	// sensitivity label are removed.
	Labels []string `yaml:"labels"`
	// Elements lists minimum-necessary rules per resource type.
	Elements []ElementRule `yaml:"elements"`
	// Refrain lists v3-ActCode refrain codes put on everything sent (NORDSCLCD).
	Refrain []string `yaml:"refrain"`
	// Retention is how long the partner may keep the data, an ISO 8601
	// duration ("P1Y"); recorded, not enforced by the policy engine.
	Retention string `yaml:"retention"`
}

// ElementRule limits the elements of one resource type a partner receives.
type ElementRule struct {
	// ResourceType is the resource type the rule is about.
	ResourceType string `yaml:"resource_type"`
	// Keep, when given, lists the only top-level elements sent (besides id
	// and meta, and elements FHIR requires, which are always kept).
	Keep []string `yaml:"keep"`
	// Remove lists elements (dotted paths, "name.family") that are removed.
	Remove []string `yaml:"remove"`
	// Mask lists elements whose values are masked: dates cut to the year,
	// texts and identifiers replaced by a mask, names and addresses reduced.
	Mask []string `yaml:"mask"`
}

// LabelRule puts security labels on the resources or elements it matches.
type LabelRule struct {
	// Name identifies the rule in errors and docs.
	Name string `yaml:"name"`
	// ResourceTypes limits the rule to these resource types; empty: any.
	ResourceTypes []string `yaml:"resource_types"`
	// Path is the element (dotted FHIR path) whose codes are matched;
	// empty: the whole resource.
	Path string `yaml:"path"`
	// ExtensionURL, for a Path ending in extension, keeps only extensions
	// with this url.
	ExtensionURL string `yaml:"extension_url"`
	// Codes lists codes ("system|code") that trigger the rule when found
	// in the element. With neither Codes nor ValueSets, every element at
	// Path triggers it.
	Codes []string `yaml:"codes"`
	// ValueSets names value sets (built in or in value_sets) whose codes
	// trigger the rule.
	ValueSets []string `yaml:"value_sets"`
	// Labels are the labels put ("PSY", "IMMIG", "system|code").
	Labels []string `yaml:"labels"`
	// Inline puts the labels on the matched elements (DS4P inline labels)
	// instead of the resource's meta.security. Needs a Path.
	Inline bool `yaml:"inline"`
}

// ValueSet is a named set of codes.
type ValueSet struct {
	// Name is how label rules refer to it.
	Name string `yaml:"name"`
	// Include lists the codes, system by system.
	Include []ValueSetInclude `yaml:"include"`
}

// ValueSetInclude is part of a value set.
type ValueSetInclude struct {
	// System is the code system URL. Required.
	System string `yaml:"system"`
	// Codes lists codes of the system; with neither Codes nor IsA, every
	// code of the system is included.
	Codes []string `yaml:"codes"`
	// IsA includes a code and every code under it; only for Pathway's
	// CodeSystem, whose hierarchy Pathway knows.
	IsA string `yaml:"is_a"`
}

// Partner returns the partner with the id, or nil.
func (c *Config) Partner(id string) *Partner {
	for i := range c.Partners {
		if c.Partners[i].ID == id {
			return &c.Partners[i]
		}
	}
	return nil
}

// ConfigProblem is one problem found in a configuration file. Its message
// names keys and rules, never secrets.
type ConfigProblem struct {
	File      string
	Line, Col int
	// Path is the key path: "partners[1].agreement.purposes[0]".
	Path    string
	Message string
}

// String renders "file:line:col: path: message".
func (p ConfigProblem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
	}
	if p.Path != "" {
		return loc + ": " + p.Path + ": " + p.Message
	}
	return loc + ": " + p.Message
}

// ConfigError lists every problem of a configuration file.
type ConfigError struct {
	Problems []ConfigProblem
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ignoredKeys are keys other parts of pathway.yaml own (issue 5): accepted,
// not read here.
var ignoredKeys = map[reflect.Type]map[string]bool{
	reflect.TypeFor[Config]():  {"routes": true, "routing": true, "retry": true, "store": true, "signing_key": true},
	reflect.TypeFor[Partner](): {"endpoint": true, "auth": true, "tls": true, "services": true, "api": true},
}

// decoder decodes YAML nodes into the config structs, recording where each
// key path was written.
type decoder struct {
	file     string
	pos      map[string]*yaml.Node
	problems []ConfigProblem
}

func (d *decoder) fail(n *yaml.Node, path, msg string) {
	p := ConfigProblem{File: d.file, Path: path, Message: msg}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// failAt reports a problem at a recorded key path (its nearest recorded parent).
func (d *decoder) failAt(path, msg string) {
	for p := path; ; {
		if n, ok := d.pos[p]; ok {
			d.fail(n, path, msg)
			return
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			d.fail(nil, path, msg)
			return
		}
		p = p[:i]
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 32; i++ {
		n = n.Alias
	}
	return n
}

// decode fills v from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if n == nil {
		return
	}
	d.pos[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a text value")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false")
			return
		}
		v.SetBool(b)
	default:
		d.fail(n, path, "unsupported value")
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys to values")
		return
	}
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be plain text")
			continue
		}
		if key == "<<" {
			d.fail(k, path, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		if seen[key] {
			d.fail(k, join(path, key), "duplicate key")
			continue
		}
		seen[key] = true
		fi, ok := fields[key]
		if !ok {
			if ignoredKeys[t][key] {
				continue
			}
			known := make([]string, 0, len(fields))
			for f := range fields {
				known = append(known, f)
			}
			slices.Sort(known)
			d.fail(k, join(path, key), "unknown key (known here: "+strings.Join(known, ", ")+")")
			continue
		}
		d.pos[join(path, key)+"#key"] = k
		d.decode(val, v.Field(fi), join(path, key))
	}
}

// ParseConfig reads the policy parts of a pathway.yaml document. file names
// the document in problems ("pathway.yaml:12:5: ..."). Every problem is
// reported, as a *ConfigError; nothing is read from disk.
func ParseConfig(file string, data []byte) (*Config, error) {
	d := &decoder{file: file, pos: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, &ConfigError{Problems: []ConfigProblem{{File: file, Line: line, Col: 1, Message: msg}}}
	}
	cfg := &Config{}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	}
	if len(d.problems) == 0 {
		d.validate(cfg)
	}
	if len(d.problems) > 0 {
		return nil, &ConfigError{Problems: d.problems}
	}
	cfg.Network.BasePolicy = cfg.Network.BasePolicy.orDefault()
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlErrorLine splits a yaml syntax error into its line and message.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, "YAML syntax: " + m[2]
	}
	return 0, "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")
}

var validFHIRID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
var validDuration = regexp.MustCompile(`^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$`)

// validate checks what the decoded values mean.
func (d *decoder) validate(cfg *Config) {
	if b := cfg.Network.BasePolicy; b != "" && !b.Valid() {
		d.failAt("network.base_policy", "must be opt-in or opt-out")
	}
	if id := cfg.Network.ID; id != "" && !validFHIRID.MatchString(id) {
		d.failAt("network.id", "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
	ids := map[string]bool{}
	for i := range cfg.Partners {
		p := &cfg.Partners[i]
		path := "partners[" + strconv.Itoa(i) + "]"
		switch {
		case p.ID == "":
			d.failAt(path+".id", "required")
		case !validFHIRID.MatchString(p.ID):
			d.failAt(path+".id", "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .): it names Organization/ID")
		case ids[p.ID]:
			d.failAt(path+".id", "duplicate partner id")
		}
		ids[p.ID] = true
		if !p.Kind.Valid() {
			d.failAt(path+".kind", "must be clinic, ngo, community or auditor")
		}
		for j, id := range p.Identifiers {
			if id.System == "" || id.Value == "" {
				d.failAt(path+".identifiers["+strconv.Itoa(j)+"]", "an identifier needs a system and a value")
			}
		}
		d.validateAgreement(&p.Agreement, path+".agreement")
	}
	sets := builtinValueSets()
	names := map[string]bool{}
	for i, vs := range cfg.ValueSets {
		path := "value_sets[" + strconv.Itoa(i) + "]"
		switch {
		case vs.Name == "":
			d.failAt(path+".name", "required")
		case names[vs.Name]:
			d.failAt(path+".name", "duplicate value set name")
		case sets[vs.Name] != nil:
			d.failAt(path+".name", "a built-in value set has this name")
		}
		names[vs.Name] = true
		if len(vs.Include) == 0 {
			d.failAt(path+".include", "a value set needs at least one include")
		}
		for j, inc := range vs.Include {
			ip := path + ".include[" + strconv.Itoa(j) + "]"
			if inc.System == "" {
				d.failAt(ip+".system", "required")
			}
			if inc.IsA != "" {
				if inc.System != fhir.SystemPathway {
					d.failAt(ip+".is_a", "is_a works only for Pathway's CodeSystem ("+fhir.SystemPathway+")")
				} else if _, ok := fhir.PathwayCode(inc.IsA); !ok {
					d.failAt(ip+".is_a", "not a code of Pathway's CodeSystem")
				}
			}
			for k, c := range inc.Codes {
				if c == "" {
					d.failAt(ip+".codes["+strconv.Itoa(k)+"]", "empty code")
				}
			}
		}
	}
	for i, r := range cfg.Labels {
		d.validateLabelRule(r, "labels["+strconv.Itoa(i)+"]", names, sets)
	}
}

func (d *decoder) validateAgreement(a *Agreement, path string) {
	if id := a.ID; id != "" && strings.ContainsAny(id, " \t\n") {
		d.failAt(path+".id", "no spaces: the id is cited in decision trails")
	}
	for i, p := range a.Purposes {
		if !IsPurpose(p) {
			d.failAt(path+".purposes["+strconv.Itoa(i)+"]", "not a v3-ActReason purpose of use (TREAT, COC, ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH...)")
		}
	}
	if len(a.Purposes) > 0 && len(a.ResourceTypes) == 0 {
		d.failAt(path+".resource_types", "list the resource types the partner may receive")
	}
	for i, t := range a.ResourceTypes {
		if !fhir.IsResourceType(t) {
			d.failAt(path+".resource_types["+strconv.Itoa(i)+"]", "not an R4 resource type")
		}
	}
	for i, l := range a.Labels {
		lb, ok := ParseLabel(l)
		switch {
		case !ok:
			d.failAt(path+".labels["+strconv.Itoa(i)+"]", "not a label Pathway knows: write a sensitivity code (PSY, MH, BH, SDV, SUD, IMMIG...) or system|code")
		case !lb.gates():
			d.failAt(path+".labels["+strconv.Itoa(i)+"]", "not a sensitivity label: confidentiality codes and handling codes need no permission")
		}
	}
	types := map[string]bool{}
	for i, r := range a.Elements {
		rp := path + ".elements[" + strconv.Itoa(i) + "]"
		if !fhir.IsResourceType(r.ResourceType) {
			d.failAt(rp+".resource_type", "not an R4 resource type")
			continue
		}
		if types[r.ResourceType] {
			d.failAt(rp+".resource_type", "a second rule for the same resource type: merge them")
		}
		types[r.ResourceType] = true
		for _, kl := range []struct {
			k   string
			lst []string
		}{{"keep", r.Keep}, {"remove", r.Remove}, {"mask", r.Mask}} {
			k := kl.k
			for j, p := range kl.lst {
				if k == "keep" && strings.Contains(p, ".") {
					d.failAt(rp+".keep["+strconv.Itoa(j)+"]", "keep lists top-level elements only")
					continue
				}
				if why, ok := checkPath(r.ResourceType, p); !ok {
					d.failAt(rp+"."+k+"["+strconv.Itoa(j)+"]", why)
				}
			}
		}
	}
	for i, r := range a.Refrain {
		if refrainCodes[r] == "" {
			d.failAt(path+".refrain["+strconv.Itoa(i)+"]", "not a v3-ActCode refrain code (NORDSCLCD, NODSCLCD, NOREUSE...)")
		}
	}
	if a.Retention != "" && (!validDuration.MatchString(a.Retention) || a.Retention == "P") {
		d.failAt(path+".retention", "an ISO 8601 duration such as P1Y or P6M")
	}
}

func (d *decoder) validateLabelRule(r LabelRule, path string, names map[string]bool, builtin map[string]*ValueSet) {
	if r.Name == "" {
		d.failAt(path+".name", "required")
	}
	if len(r.Labels) == 0 {
		d.failAt(path+".labels", "a rule needs at least one label")
	}
	for i, l := range r.Labels {
		if _, ok := ParseLabel(l); !ok {
			d.failAt(path+".labels["+strconv.Itoa(i)+"]", "not a label Pathway knows: write PSY, MH, BH, SDV, SUD, IMMIG, R... or system|code")
		}
	}
	for i, t := range r.ResourceTypes {
		if !fhir.IsResourceType(t) {
			d.failAt(path+".resource_types["+strconv.Itoa(i)+"]", "not an R4 resource type")
			continue
		}
		if r.Path != "" {
			if why, ok := checkPath(t, r.Path); !ok {
				d.failAt(path+".path", why+" (in "+t+")")
			}
		}
	}
	if r.Inline && r.Path == "" {
		d.failAt(path+".inline", "inline labels need a path: the element to label")
	}
	if r.ExtensionURL != "" && !strings.HasSuffix(r.Path, "extension") && !strings.HasSuffix(r.Path, "modifierExtension") {
		d.failAt(path+".extension_url", "only for a path ending in extension")
	}
	for i, c := range r.Codes {
		if s, code, ok := strings.Cut(c, "|"); !ok || s == "" || code == "" {
			d.failAt(path+".codes["+strconv.Itoa(i)+"]", "write system|code")
		}
	}
	for i, v := range r.ValueSets {
		if !names[v] && builtin[v] == nil {
			d.failAt(path+".value_sets["+strconv.Itoa(i)+"]", "no value set of this name")
		}
	}
}

// String renders a config problem list for tests and logs.
func (e *ConfigError) String() string { return fmt.Sprint(e.Problems) }
