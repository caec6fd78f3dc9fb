package policy

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// becauseWithheldRef cites why a reference was removed.
const becauseWithheldRef = "reference to a withheld resource"

// maskText replaces masked texts, identifiers and contact details.
const maskText = "[masked]"

// redaction is one element removed or masked by the agreement's element
// rules or because what it referred to was withheld.
type redaction struct {
	action  ObligationAction
	path    string
	because string
}

// Filter decides a Bundle (a referral's transaction, a search result) for
// a partner and purpose under the partner's agreement (req.Agreement) and
// returns the Bundle to send: a new Bundle, the input untouched, still
// valid FHIR. The consents are the Bundle's own Consent resources, plus
// any given; each decides only for the resources about its own patient
// (see scopeConsents). On a deny or no-consent the Bundle is nil.
//
// The result keeps each resource's sensitivity labels, adds the labels the
// labelling rules give, marks resources that lost elements REDACTED (and
// MASKED), drops their narrative, attaches the agreement's refrain codes,
// and removes references to withheld resources (a required one becomes a
// data-absent-reason "masked" extension). The Bundle itself gets only the
// refrain codes: no label that reveals what it holds.
func (e *Engine) Filter(req Request, b *rpb.Bundle, consents ...*conpb.Consent) (*rpb.Bundle, Decision) {
	var in []entryIn
	for _, en := range b.GetEntry() {
		if en.GetResource() != nil {
			in = append(in, entryIn{fullURL: en.GetFullUrl().GetValue(), res: en.GetResource()})
		}
	}
	keys, rs := e.label(in, req.Agreement)
	all, about := scopeConsents(b, rs, keys, consents)
	ev := newEvaluator(e.withBase(req), all, keys)
	for i, cr := range ev.consents {
		cr.about = about[i]
	}
	effect := ev.decideData(rs)
	if effect != Permit {
		return nil, ev.finish(effect, rs)
	}
	removed := map[string]bool{}
	for _, r := range rs {
		if r.remove != nil {
			removed[r.key] = true
		}
	}
	out := bundleShell(b)
	var refrain []Label
	if req.Agreement != nil {
		for _, c := range req.Agreement.Refrain {
			if lb, ok := ParseLabel(c); ok {
				refrain = append(refrain, lb)
			}
		}
	}
	if len(refrain) > 0 {
		bw := inPlace(out.ProtoReflect())
		for _, lb := range refrain {
			addSecurity(bw, lb)
		}
	}
	idx := 0
	var kept []*resource
	for _, en := range b.GetEntry() {
		if en.GetResource() == nil {
			// An entry without a resource (a DELETE, a GET) is not data
			// the policy decided, and its search URL may name codes and
			// identifiers: it does not leave.
			continue
		}
		r := rs[idx]
		idx++
		if r.remove != nil {
			continue
		}
		ev.redact(r, removed)
		for _, lb := range refrain {
			addSecurity(r.w, lb)
		}
		// The entry's fullUrl, request, response, search and links are
		// shared with the input, like every unchanged part (read-only).
		ne := &rpb.Bundle_Entry{Resource: wrapLike(en.GetResource(), r.w.root), FullUrl: en.GetFullUrl(),
			Request: en.GetRequest(), Response: en.GetResponse(), Search: en.GetSearch(), Link: en.GetLink()}
		out.Entry = append(out.Entry, ne)
		kept = append(kept, r)
	}
	// Conditional searches may name only what the Bundle still holds. The
	// values are gathered only when some search is there to check.
	values := map[string]bool{}
	searches := false
	for _, ne := range out.Entry {
		searches = searches || strings.Contains(ne.GetRequest().GetUrl().GetValue(), "?") || ne.GetRequest().GetIfNoneExist() != nil
	}
	for _, l := range out.GetLink() {
		searches = searches || strings.Contains(l.GetUrl().GetValue(), "?")
	}
	if searches {
		for _, r := range kept {
			stringValues(r.w.root, values)
		}
	}
	for i, ne := range out.Entry {
		ne.Request = entryRequest(ne.Request, kept[i].w.root, values)
	}
	// A search result's total and links say no more than what is sent.
	if out.Total != nil && len(kept) < len(b.GetEntry()) {
		out.Total = &dpb.UnsignedInt{Value: uint32(matches(out))}
	}
	for i, l := range out.GetLink() {
		if u := l.GetUrl().GetValue(); strings.Contains(u, "?") {
			base, q, _ := strings.Cut(u, "?")
			if k := keptSearch(q, values); k != q {
				nl := proto.Clone(l).(*rpb.Bundle_Link)
				nl.Url = fhir.URI(strings.TrimSuffix(base+"?"+k, "?"))
				out.Link[i] = nl
			}
		}
	}
	return out, ev.finish(Permit, rs)
}

// matches counts a search result's matches: its entries in search mode
// match, or all of them when none says.
func matches(b *rpb.Bundle) int {
	n, modes := 0, false
	for _, en := range b.GetEntry() {
		if m := en.GetSearch().GetMode(); m != nil {
			modes = true
			if m.GetValue() == cpb.SearchEntryModeCode_MATCH {
				n++
			}
		}
	}
	if !modes {
		return len(b.GetEntry())
	}
	return n
}

// wrapLike puts a resource into a new ContainedResource, in the same
// slot the original holds its resource (res is a copy of that resource,
// so fhir.Wrap finds the same slot by its type).
func wrapLike(orig *fhir.ContainedResource, res protoreflect.Message) *fhir.ContainedResource {
	if cr, err := fhir.Wrap(res.Interface()); err == nil {
		return cr
	}
	om := orig.ProtoReflect()
	fd := om.WhichOneof(om.Descriptor().Oneofs().ByName("oneof_resource"))
	cr := &fhir.ContainedResource{}
	cr.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(res))
	return cr
}

// bundleShell copies the elements of b that say nothing about what it
// holds: everything but its entries, its signature (it signed the input)
// and the labels, tags, source and extensions of its meta. The Bundle that
// leaves gets only the agreement's refrain codes (Filter adds them): a
// label on the input Bundle (PSY, IMMIG, R, a tag "asylum-case") would
// reveal what it held, whatever was withheld from it.
//
// The copy is shallow, as copy on write makes every other part of the
// output: it shares the input's elements (Filter replaces a shared
// element, its total or a link, and never writes into one) and has lists
// of its own (Filter replaces links in its list).
func bundleShell(b *rpb.Bundle) *rpb.Bundle {
	out := &rpb.Bundle{}
	om := out.ProtoReflect()
	b.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch fd.Name() {
		case "entry", "signature":
			return true
		case "meta":
			if m := shellMeta(b.GetMeta()); m != nil {
				out.Meta = m
			}
			return true
		}
		if fd.IsList() {
			nl := om.Mutable(fd).List()
			src := v.List()
			for i := range src.Len() {
				nl.Append(src.Get(i))
			}
			return true
		}
		om.Set(fd, v)
		return true
	})
	return out
}

// shellMeta keeps of a Bundle's meta what reveals nothing of its content:
// versionId, lastUpdated and profiles.
func shellMeta(m *dpb.Meta) *dpb.Meta {
	if m == nil {
		return nil
	}
	out := &dpb.Meta{}
	if m.GetVersionId() != nil {
		out.VersionId = proto.Clone(m.GetVersionId()).(*dpb.Id)
	}
	if m.GetLastUpdated() != nil {
		out.LastUpdated = proto.Clone(m.GetLastUpdated()).(*dpb.Instant)
	}
	for _, p := range m.GetProfile() {
		out.Profile = append(out.Profile, proto.Clone(p).(*dpb.Canonical))
	}
	if isEmpty(out.ProtoReflect()) {
		return nil
	}
	return out
}

// label labels copies of the input resources and indexes them.
//
// A resource of a type the agreement a withholds is not copied, labelled
// or scanned: judge withholds it before reading its labels, codes or
// elements, and nothing of it leaves. It gets an item read from the
// input as it is (its patient is what scopeConsents needs); its outgoing
// references, which a consent's data "related" may ask about, are found
// on first use (keyIndex.refsOf), as labelling and scanning it would
// have found them. Its resource keeps the input message (msg) and no
// writer (w is nil).
func (e *Engine) label(in []entryIn, a *Agreement) (*keyIndex, []*resource) {
	keys := &keyIndex{alias: make(map[string]string, len(in)), items: make(map[string]*item, len(in))}
	rs := make([]*resource, 0, len(in))
	// The resources, their writers and their items, each kind in one array.
	store := make([]struct {
		r  resource
		w  cow
		it item
	}, len(in))
	for i, en := range in {
		msg := fhir.Unwrap(en.res)
		if msg == nil {
			continue
		}
		s := &store[i]
		r := &s.r
		*r = resource{fullURL: en.fullURL, item: &s.it, w: &s.w, msg: msg.ProtoReflect()}
		r.key = fhir.Key(msg)
		if fhir.IDOf(msg) == "" {
			r.key = fhir.TypeOf(msg) + "[" + itoa(i) + "]"
		}
		if en.fullURL != "" {
			keys.alias[en.fullURL] = r.key
		}
		rs = append(rs, r)
		if !e.reference && a.withholdsType(string(r.msg.Descriptor().Name())) {
			r.w = nil // withheld whatever it holds: not labelled
			if keys.withheld == nil {
				keys.withheld = map[string]bool{}
			}
			keys.withheld[r.key] = true
		}
	}
	// Labelled and scanned once every fullUrl is known (the scan reads
	// references through them).
	for _, r := range rs {
		if r.w == nil {
			buildItem(r.item, r.msg, metaOf(r.msg), r.key, keys)
			r.item.unlabelled = &unlabelled{l: e.labeller, m: r.msg}
			keys.items[r.key] = r.item
			continue
		}
		w := r.w
		w.reflective = e.reference
		w.start(r.msg)
		r.msg = w.root
		e.labelAndScan(r, keys)
		if len(r.scan.labelled) > 0 {
			lb := Label{fhir.SystemActCode, LabelProcessInline}
			if addSecurity(r.w, lb) {
				r.applied = append(r.applied, Applied{Rule: "inline-labels", Label: lb})
				r.item.labels = append(r.item.labels, lb)
			}
		}
		keys.items[r.key] = r.item
	}
	return keys, rs
}

// labelAndScan labels a resource's copy (Labeller.apply), makes its item
// (buildItem) and scans it (scan). The scan and the immigration codes'
// search of labelling are one walk (scanSearching) between the rules and
// the immigration codes: the scan sees the resource as it is after
// labelling, since the rest of labelling writes only meta (which the
// scan does not enter) unless the search finds what may be an
// immigration code, and then the resource is scanned again after it.
func (e *Engine) labelAndScan(r *resource, keys *keyIndex) {
	w, l := r.w, e.labeller
	if e.reference {
		r.applied, _ = l.apply(w)
		buildItem(r.item, r.msg, w.rootMeta(), r.key, keys)
		r.scan = scan(r.msg, r.item, keys, w.primLabels)
		return
	}
	out, inline, sensitive := l.applyRules(w)
	imm := &l.immig
	searched := imm.codes != nil && !slices.ContainsFunc(w.rootMeta().GetSecurity(), func(c *dpb.Coding) bool {
		return labelOf(c) == imm.labels[0]
	})
	var (
		sc            scanned
		codes         []*dpb.Coding
		refsOut       []string
		maybe, walked bool
	)
	if searched {
		// scan's primitive values: as scanPrims will read the labels
		// (nothing after the rules adds PROCESSINLINELABEL).
		prims := w.primLabels || slices.ContainsFunc(w.rootMeta().GetSecurity(), func(c *dpb.Coding) bool {
			return labelOf(c) == Label{fhir.SystemActCode, LabelProcessInline}
		})
		sc, codes, refsOut, maybe, walked = scanSearching(r.msg, keys, prims, false, imm)
	}
	r.applied, _ = l.applyRest(w, out, inline, sensitive, walked && !maybe)
	buildItem(r.item, r.msg, w.rootMeta(), r.key, keys)
	if walked && !maybe {
		r.item.codes, r.item.refsOut, r.item.scanned = codes, refsOut, true
		r.scan = sc
		return
	}
	r.scan = scanLight(r.msg, r.item, keys, w.primLabels)
}

// unlabelled is the input resource of an item label left unlabelled
// (its type is withheld), with the labeller that would have labelled it.
type unlabelled struct {
	l *Labeller
	m protoreflect.Message
}

// refsOf returns the keys of what the item's resource refers to. For a
// resource label left unlabelled, it labels a copy and scans it first,
// once, as label does for every other resource (the labels decide
// whether the scan looks into primitive values), and keeps what the scan
// found: the item's codes and references. Its patient stays as
// scopeConsents left it.
func (k *keyIndex) refsOf(it *item) []string {
	if u := it.unlabelled; u != nil {
		it.unlabelled = nil
		w := newCOW(u.m)
		u.l.apply(w)
		patient := it.patient
		buildItem(it, w.root, w.rootMeta(), it.key, k)
		it.patient = patient
		scan(w.root, it, k, w.primLabels)
	}
	return it.refsOut
}

// scopeConsents returns the consents that are about someone the Bundle's
// resources are about (the Bundle's own Consents, then the given ones),
// each with the keys of the patients it is about. A consent decides only
// for resources about its own patient: in a Bundle about several patients
// each patient's data is decided on that patient's consents, and the data
// of a patient without an applicable consent falls to the base policy. A
// consent about nobody in the Bundle is not used at all. A resource that
// names no patient belongs to the Bundle's patient when there is exactly
// one; otherwise no consent decides it.
func scopeConsents(b *rpb.Bundle, rs []*resource, keys *keyIndex, given []*conpb.Consent) ([]*conpb.Consent, []map[string]bool) {
	var patients []Patient
	var patientKeys []string
	subjects := map[string]bool{}
	for _, r := range rs {
		if r.item.patient != "" {
			subjects[r.item.patient] = true
		}
		if r.item.rtype != "Patient" {
			continue
		}
		p := Patient{Refs: []string{r.key}}
		if r.fullURL != "" {
			p.Refs = append(p.Refs, r.fullURL)
		}
		for _, id := range r.msg.Interface().(interface{ GetIdentifier() []*dpb.Identifier }).GetIdentifier() {
			p.Identifiers = append(p.Identifiers, Identifier{System: id.GetSystem().GetValue(), Value: id.GetValue().GetValue()})
		}
		patients = append(patients, p)
		patientKeys = append(patientKeys, r.key)
	}
	if len(subjects) == 1 {
		for k := range subjects {
			for _, r := range rs {
				if r.item.patient == "" {
					r.item.patient = k
				}
			}
		}
	}
	var all []*conpb.Consent
	for _, en := range b.GetEntry() {
		if c := en.GetResource().GetConsent(); c != nil {
			all = append(all, c)
		}
	}
	all = append(all, given...)
	var out []*conpb.Consent
	var about []map[string]bool
	for _, c := range all {
		set := map[string]bool{}
		if ref := refString(c.GetPatient()); ref != "" {
			set[keys.norm(ref)] = true
		}
		for i, p := range patients {
			if AboutPatient(c, p) {
				set[patientKeys[i]] = true
			}
		}
		used := false
		for k := range set {
			used = used || subjects[k]
		}
		if used {
			out = append(out, c)
			about = append(about, set)
		}
	}
	return out, about
}

// Patient identifies a patient: literal references to it ("Patient/p1",
// a Bundle fullUrl) and business identifiers.
type Patient struct {
	Refs        []string
	Identifiers []Identifier
}

// AboutPatient reports whether a Consent is about the patient: its
// Consent.patient is one of the references or carries one of the identifiers.
func AboutPatient(c *conpb.Consent, p Patient) bool {
	ref := c.GetPatient()
	if s := refString(ref); s != "" && containsString(p.Refs, s) {
		return true
	}
	if id := ref.GetIdentifier(); id != nil {
		for _, pi := range p.Identifiers {
			if pi.System == id.GetSystem().GetValue() && pi.Value == id.GetValue().GetValue() {
				return true
			}
		}
	}
	return false
}

// remover collects elements to remove from one resource and removes them
// together.
type remover struct {
	all []*elem
}

func (rm *remover) add(e *elem) {
	if e.parent == nil {
		return
	}
	if rm.all == nil {
		rm.all = make([]*elem, 0, 8) // room for a few at once, not an array per doubling
	}
	rm.all = append(rm.all, e)
}

// grow makes room for n more elements (and a few after them).
func (rm *remover) grow(n int) {
	rm.all = slices.Grow(rm.all, n+4)
}

func (rm *remover) empty() bool { return len(rm.all) == 0 }

// removes reports whether the element at path, or one holding it, is removed.
func (rm *remover) removes(path string) bool {
	for _, e := range rm.all {
		if p := e.path(); path == p || within(path, p) {
			return true
		}
	}
	return false
}

// apply removes the elements, then the elements they leave hollow. A
// required singular element becomes an empty element with a
// data-absent-reason "masked" extension; a required list left empty gets
// one such element.
func (rm *remover) apply(w *cow) {
	batch := rm.all
	seen := map[*elem]bool{}
	for len(batch) > 0 {
		removeBatch(w, batch)
		var next []*elem
		for _, e := range batch {
			up := e.up
			if up == nil || seen[up] {
				continue
			}
			seen[up] = true
			if hollow(w.current(up.msg)) {
				next = append(next, up)
			}
		}
		rm.all = append(rm.all, next...)
		batch = next
	}
}

func removeBatch(w *cow, batch []*elem) {
	// The list elements to remove, by the list holding them, in the
	// order the lists are first met.
	type group struct {
		p    protoreflect.Message
		fd   protoreflect.FieldDescriptor
		msgs []protoreflect.Message
		all  bool // the whole list goes (keepFields)
	}
	var room [8]group // a batch's lists are a few: on the stack
	groups := room[:0]
	for _, e := range batch {
		p := w.holder(e)
		if !e.fd.IsList() {
			if required(e.fd) {
				if v, ok := absent(p, e.fd); ok {
					p.Set(e.fd, v)
					continue
				}
			}
			if sl, ptr := w.slotOf(p, e.fd); sl != nil {
				*(*unsafe.Pointer)(unsafe.Add(ptr, sl.off)) = nil // p.Clear(e.fd), on the plan
				continue
			}
			p.Clear(e.fd)
			continue
		}
		gi := slices.IndexFunc(groups, func(g group) bool { return g.p == p && g.fd == e.fd })
		if gi < 0 {
			groups = append(groups, group{p: p, fd: e.fd})
			gi = len(groups) - 1
		}
		if e.idx < 0 {
			groups[gi].all = true
			continue
		}
		groups[gi].msgs = append(groups[gi].msgs, w.current(e.msg))
	}
	for _, g := range groups {
		if sl, ptr := w.slotOf(g.p, g.fd); sl != nil {
			// What the protoreflect code below does, on the plan: the
			// kept items go into a new slice (the old one may share its
			// array with the input), none leaves the field clear.
			at := (*[]unsafe.Pointer)(unsafe.Add(ptr, sl.off))
			if len(*at) == 0 {
				continue
			}
			var keep []unsafe.Pointer
			if !g.all {
				for _, c := range *at {
					if !slices.Contains(g.msgs, sl.sub.message(c)) {
						keep = append(keep, c)
					}
				}
			}
			*at = keep
			if len(keep) == 0 && required(g.fd) {
				if v, ok := absent(g.p, g.fd); ok {
					g.p.Mutable(g.fd).List().Append(v)
				}
			}
			continue
		}
		if !g.p.Has(g.fd) {
			continue
		}
		var keep []protoreflect.Value
		if !g.all {
			old := g.p.Get(g.fd).List()
			for i := range old.Len() {
				if v := old.Get(i); !slices.Contains(g.msgs, v.Message()) {
					keep = append(keep, v)
				}
			}
		}
		// A new list: the old one may share its array with the input.
		g.p.Clear(g.fd)
		if len(keep) > 0 {
			l := g.p.Mutable(g.fd).List()
			for _, v := range keep {
				l.Append(v)
			}
			continue
		}
		if required(g.fd) {
			if v, ok := absent(g.p, g.fd); ok {
				g.p.Mutable(g.fd).List().Append(v)
			}
		}
	}
}

// absent returns a new element of the field's type holding only a
// data-absent-reason "masked" extension, when the type can hold one.
func absent(parent protoreflect.Message, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	md := fd.Message()
	if md == nil || isChoice(md) {
		return protoreflect.Value{}, false
	}
	ef := md.Fields().ByName("extension")
	if ef == nil {
		return protoreflect.Value{}, false
	}
	var v protoreflect.Value
	if fd.IsList() {
		v = parent.Mutable(fd).List().NewElement()
	} else {
		v = parent.NewField(fd)
	}
	dar := &dpb.Extension{Url: fhir.URI(ExtDataAbsentReason),
		Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Code{Code: fhir.Code("masked")}}}
	v.Message().Mutable(ef).List().Append(protoreflect.ValueOfMessage(dar.ProtoReflect()))
	return v, true
}

// redact applies to a kept resource what was decided: withheld elements,
// references to withheld resources, the agreement's element rules, and
// the marks.
func (ev *evaluator) redact(r *resource, removed map[string]bool) {
	w := r.w
	m := w.root
	var rm remover
	for _, ed := range r.elems {
		rm.add(ed.e)
	}
	// The scan kept the references to resources withheld for their type;
	// the others are found again when one of them is withheld too.
	refs := r.scan.refs
	if r.scan.refsLeft && slices.ContainsFunc(r.item.refsOut, func(k string) bool { return removed[k] && !ev.keys.withholds(k) }) {
		refs = r.scan.refsAt(m, ev.keys)
	}
	for i := range refs {
		kr := &refs[i]
		if removed[kr.key] {
			e := kr.at.get()
			rm.add(e)
			r.redactions = append(r.redactions, redaction{action: Remove, path: e.path(),
				because: becauseWithheldRef})
		}
	}
	masked := false
	if a := ev.req.Agreement; a != nil {
		for i, er := range a.Elements {
			if er.ResourceType != r.item.rtype {
				continue
			}
			clause := ev.agreementRef() + " elements[" + itoa(i) + "]"
			if len(er.Keep) > 0 {
				keepFields(w, er.Keep, &rm, r, clause+".keep")
			}
			for _, p := range er.Remove {
				es := resolve(m, p)
				for i := range es {
					e := &es[i]
					rm.add(e)
					r.redactions = append(r.redactions, redaction{action: Remove, path: e.path(), because: clause + ".remove"})
				}
			}
			for _, p := range er.Mask {
				es := resolve(m, p)
				for i := range es {
					e := &es[i]
					if maskElem(w, e) {
						masked = true
						r.redactions = append(r.redactions, redaction{action: Mask, path: e.path(), because: clause + ".mask"})
					} else {
						rm.add(e)
						r.redactions = append(r.redactions, redaction{action: Remove, path: e.path(), because: clause + ".mask (cannot be masked)"})
					}
				}
			}
		}
	}
	changed := !rm.empty()
	rm.apply(w)
	if changed || masked {
		if fd := m.Descriptor().Fields().ByName("text"); fd != nil && m.Has(fd) {
			m.Clear(fd) // the narrative may repeat what was withheld
		}
	}
	if changed {
		addSecurity(w, Label{fhir.SystemObservationValue, MarkRedacted})
	}
	if masked {
		addSecurity(w, Label{fhir.SystemObservationValue, MarkMasked})
	}
	inline := masked
	for _, le := range r.scan.labelled {
		if !rm.removes(le.e.path()) {
			inline = true
		}
	}
	if inline {
		addSecurity(w, Label{fhir.SystemActCode, LabelProcessInline})
	} else {
		removeSecurity(w, Label{fhir.SystemActCode, LabelProcessInline})
	}
	r.removedPaths = &rm
}

// alwaysKept are the elements minimum-necessary rules never remove.
var alwaysKept = map[string]bool{"id": true, "meta": true, "resourceType": true}

// keepFields removes the top-level elements not in keep (required ones
// stay). w is the resource's writer, m its root. A dropped list goes as
// one element standing for the whole list (idx -1: its path has no
// index), which removeBatch removes as it would remove each of its items.
func keepFields(w *cow, keep []string, rm *remover, r *resource, because string) {
	m := w.root
	fr := newFieldReader(m)
	drop := droppable(m.Descriptor(), keep)
	set := func(fd protoreflect.FieldDescriptor) bool {
		if sl := fr.slot(fd); sl != nil {
			return sl.has(fr.ptr)
		}
		return m.Has(fd)
	}
	n := 0
	for _, fd := range drop {
		if set(fd) {
			n++
		}
	}
	if n == 0 {
		return
	}
	es := make([]elem, 0, n) // the elems removed, in one array (the remover points into it)
	rm.grow(n)
	r.redactions = slices.Grow(r.redactions, n)
	for _, fd := range drop {
		if !set(fd) {
			continue
		}
		name := fhirName(fd)
		es = append(es, elem{parent: m, fd: fd, idx: -1, name: name})
		rm.add(&es[len(es)-1])
		r.redactions = append(r.redactions, redaction{action: Remove, path: name, because: because})
	}
}

// droppableList is what one keep list drops from one resource type.
type droppableList struct {
	keep []string // a copy: the caller's list may change after
	drop []protoreflect.FieldDescriptor
}

// droppableCache maps a resource type to the keep lists seen for it
// (*atomic.Pointer[[]droppableList]). A keep list is found by comparing
// it with those seen, string by string: a key made by joining the list
// cost an allocation per call. An agreement names one keep list per
// resource type, so the lists are few.
var droppableCache sync.Map

// droppable returns, in field order, the fields of a resource type that a
// keep list drops when they are set: those not kept, not always kept and
// not required.
func droppable(md protoreflect.MessageDescriptor, keep []string) []protoreflect.FieldDescriptor {
	v, ok := droppableCache.Load(md)
	if !ok {
		v, _ = droppableCache.LoadOrStore(md, new(atomic.Pointer[[]droppableList]))
	}
	seen := v.(*atomic.Pointer[[]droppableList])
	if lists := seen.Load(); lists != nil {
		for _, l := range *lists {
			if slices.Equal(l.keep, keep) {
				return l.drop
			}
		}
	}
	kept := map[protoreflect.FieldDescriptor]bool{}
	for _, k := range keep {
		if fd, _, ok := fieldFor(md, k); ok {
			kept[fd] = true
		}
	}
	var drop []protoreflect.FieldDescriptor
	fields := md.Fields() // in field order: Range's order is undefined
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !kept[fd] && !alwaysKept[fhirName(fd)] && !required(fd) {
			drop = append(drop, fd)
		}
	}
	// Publish a new list of lists (readers take no lock); a list added
	// by another call at the same time may be lost, and is made again.
	for {
		old := seen.Load()
		var next []droppableList
		if old != nil {
			next = slices.Clone(*old)
		}
		next = append(next, droppableList{keep: slices.Clone(keep), drop: drop})
		if seen.CompareAndSwap(old, &next) {
			return drop
		}
	}
}

// maskElem masks an element's value in place and marks it MASKED; it
// returns false for a type Pathway does not know how to mask.
func maskElem(w *cow, e *elem) bool {
	switch e.msg.Interface().(type) {
	case *dpb.Date, *dpb.DateTime, *dpb.String, *dpb.Markdown, *dpb.Identifier, *dpb.ContactPoint,
		*dpb.HumanName, *dpb.Address, *dpb.CodeableConcept, *dpb.Annotation:
	default:
		return false
	}
	switch v := w.msg(e).Interface().(type) {
	case *dpb.Date:
		t := time.UnixMicro(v.GetValueUs()).In(zone(v.GetTimezone()))
		v.ValueUs = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, t.Location()).UnixMicro()
		v.Precision = dpb.Date_YEAR
	case *dpb.DateTime:
		t := time.UnixMicro(v.GetValueUs()).In(zone(v.GetTimezone()))
		v.ValueUs = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, t.Location()).UnixMicro()
		v.Precision = dpb.DateTime_YEAR
	case *dpb.String:
		v.Value = maskText
	case *dpb.Markdown:
		v.Value = maskText
	case *dpb.Identifier:
		v.Value = fhir.String(maskText)
		v.Period, v.Assigner = nil, nil
	case *dpb.ContactPoint:
		v.Value = fhir.String(maskText)
		v.Period = nil
	case *dpb.HumanName:
		v.Family, v.Given, v.Prefix, v.Suffix, v.Period = nil, nil, nil, nil, nil
		v.Text = fhir.String(maskText)
	case *dpb.Address:
		v.Line, v.City, v.District, v.PostalCode, v.Text, v.Period = nil, nil, nil, nil, nil, nil
	case *dpb.CodeableConcept:
		v.Coding = nil
		v.Text = fhir.String(maskText)
	case *dpb.Annotation:
		v.Text = fhir.Markdown(maskText)
		v.Author = nil
	default:
		return false
	}
	addInline(w, e, Label{fhir.SystemObservationValue, MarkMasked})
	return true
}

// hollow reports whether an element holds nothing: no field set, an
// extension without value or extensions, or a choice without a value.
func hollow(m protoreflect.Message) bool {
	if isEmpty(m) {
		return true
	}
	switch v := m.Interface().(type) {
	case *dpb.Extension:
		return v.GetValue() == nil && len(v.GetExtension()) == 0
	}
	if isChoice(m.Descriptor()) {
		set := choiceSet(m)
		return set == nil || (set.Message() != nil && isEmpty(m.Get(set).Message()))
	}
	return false
}

// removeSecurity removes a label from meta.security.
func removeSecurity(w *cow, lb Label) {
	found := false
	for _, c := range w.rootMeta().GetSecurity() {
		if labelOf(c) == lb {
			found = true
		}
	}
	if !found {
		return
	}
	meta := writableMeta(w)
	meta.Security = slices.DeleteFunc(meta.Security, func(c *dpb.Coding) bool { return labelOf(c) == lb })
	if isEmpty(meta.ProtoReflect()) {
		w.root.Clear(w.root.Descriptor().Fields().ByName("meta"))
	}
}
