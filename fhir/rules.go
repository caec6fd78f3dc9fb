package fhir

import (
	"strconv"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"
)

// checkRules applies the invariants google/fhir does not check and Pathway
// relies on. Base FHIR invariants keep their FHIR keys (bdl-3, inv-1, prr-1)
// and are errors; Pathway's referral conventions (DESIGN.md) are prefixed
// "pathway-" and are warnings here, because a valid FHIR resource may still
// be shown to `pathway validate`; the exchange enforces them as errors.
func checkRules(cr *ContainedResource) Issues {
	var is Issues
	checkResource(&is, "", cr, true)
	return is
}

// checkRulesQuick is checkRules without the rules that walk the whole
// resource when quickValid shows they would find nothing.
func checkRulesQuick(cr *ContainedResource) Issues {
	var is Issues
	checkResource(&is, "", cr, !quickValid(cr))
	return is
}

// checkResource applies the rules to one resource. Without deep, the rules
// that walk the whole resource (uri values, contained resources, urn:
// references in a transaction) are left out: Validate does so when
// quickValid has shown they find nothing.
func checkResource(is *Issues, prefix string, cr *ContainedResource, deep bool) {
	res := Unwrap(cr)
	if res == nil {
		return
	}
	if deep {
		if _, isBundle := res.(*rpb.Bundle); !isBundle {
			checkPrimitives(is, joinPath(prefix, TypeOf(res)), res.ProtoReflect())
		}
		checkContained(is, joinPath(prefix, TypeOf(res)), res.ProtoReflect())
	}
	switch r := res.(type) {
	case *rpb.Bundle:
		checkBundle(is, joinPath(prefix, "Bundle"), r, deep)
	case *tpb.Task:
		checkTask(is, joinPath(prefix, "Task"), r)
	case *srpb.ServiceRequest:
		checkServiceRequest(is, joinPath(prefix, "ServiceRequest"), r)
	}
}

// checkContained validates contained resources, which google/fhir keeps
// as Any and so neither its validator nor the walk above enters.
func checkContained(is *Issues, path string, m protoreflect.Message) {
	f := m.Descriptor().Fields().ByName("contained")
	if f == nil || !f.IsList() {
		return
	}
	list := m.Get(f).List()
	for i := range list.Len() {
		a, ok := list.Get(i).Message().Interface().(*anypb.Any)
		if !ok {
			continue
		}
		prefix := path + ".contained[" + strconv.Itoa(i) + "]"
		cr := &ContainedResource{}
		if err := a.UnmarshalTo(cr); err != nil {
			add(is, SeverityError, prefix, "value", "contained resource could not be read")
			continue
		}
		rep := &reporter{}
		if err := fhirvalidate.ValidateWithErrorReporter(cr, rep); err != nil {
			rep.issues = append(rep.issues, libIssues(err, SeverityError)...)
		}
		for _, x := range rep.issues {
			x.Path = prefix + "." + x.Path
			*is = append(*is, x)
		}
		checkResource(is, prefix, cr, true)
	}
}

func add(is *Issues, sev Severity, path, code, details string) {
	*is = append(*is, Issue{Severity: sev, Path: path, Code: code, Details: details})
}

func checkBundle(is *Issues, path string, b *rpb.Bundle, deep bool) {
	t := b.GetType().GetValue()
	if b.GetTotal() != nil && t != cpb.BundleTypeCode_SEARCHSET && t != cpb.BundleTypeCode_HISTORY {
		add(is, SeverityError, path+".total", "bdl-1", "total only when a search or history")
	}
	if id := b.GetIdentifier(); t == cpb.BundleTypeCode_DOCUMENT && (id.GetSystem().GetValue() == "" || id.GetValue().GetValue() == "") {
		add(is, SeverityError, path+".identifier", "bdl-9", "a document must have an identifier with a system and a value")
	}
	if t == cpb.BundleTypeCode_DOCUMENT && b.GetTimestamp() == nil {
		add(is, SeverityError, path+".timestamp", "bdl-10", "a document must have a date")
	}
	if t == cpb.BundleTypeCode_DOCUMENT && (len(b.GetEntry()) == 0 || TypeOf(b.GetEntry()[0].GetResource()) != "Composition") {
		add(is, SeverityError, path+".entry[0]", "bdl-11", "a document must have a Composition as the first resource")
	}
	if t == cpb.BundleTypeCode_MESSAGE && (len(b.GetEntry()) == 0 || TypeOf(b.GetEntry()[0].GetResource()) != "MessageHeader") {
		add(is, SeverityError, path+".entry[0]", "bdl-12", "a message must have a MessageHeader as the first resource")
	}
	needsRequest := t == cpb.BundleTypeCode_TRANSACTION || t == cpb.BundleTypeCode_BATCH || t == cpb.BundleTypeCode_HISTORY
	needsResponse := t == cpb.BundleTypeCode_TRANSACTION_RESPONSE || t == cpb.BundleTypeCode_BATCH_RESPONSE || t == cpb.BundleTypeCode_HISTORY
	fullURLs := make(map[string]int, len(b.GetEntry()))
	versioned := make(map[string]int, len(b.GetEntry())) // fullUrl|versionId -> first entry
	for n, e := range b.GetEntry() {
		ep := path + ".entry[" + strconv.Itoa(n) + "]"
		if e.GetSearch() != nil && t != cpb.BundleTypeCode_SEARCHSET {
			add(is, SeverityError, ep+".search", "bdl-2", "entry.search only when a search")
		}
		switch {
		case needsRequest && e.GetRequest() == nil:
			add(is, SeverityError, ep+".request", "bdl-3", "every entry of a transaction, batch or history needs a request (method and url)")
		case !needsRequest && e.GetRequest() != nil:
			add(is, SeverityError, ep+".request", "bdl-3", "entry.request only in a transaction, batch or history")
		}
		switch {
		case needsResponse && e.GetResponse() == nil:
			add(is, SeverityError, ep+".response", "bdl-4", "every entry of a response bundle needs a response")
		case !needsResponse && e.GetResponse() != nil:
			add(is, SeverityError, ep+".response", "bdl-4", "entry.response only in a batch-response, transaction-response or history")
		}
		if e.GetResource() == nil && e.GetRequest() == nil && e.GetResponse() == nil {
			add(is, SeverityError, ep, "bdl-5", "an entry must have a resource unless it has a request or response")
		}
		if u := e.GetFullUrl().GetValue(); u != "" {
			if strings.Contains(u, "/_history/") {
				add(is, SeverityError, ep+".fullUrl", "bdl-8", "fullUrl cannot be a version-specific reference")
			}
			if t != cpb.BundleTypeCode_HISTORY {
				key := u + "|" + versionOf(e)
				if prev, dup := versioned[key]; dup {
					add(is, SeverityError, ep+".fullUrl", "bdl-7", "fullUrl must be unique in a bundle (same as entry["+strconv.Itoa(prev)+"])")
				} else {
					versioned[key] = n
				}
			}
			fullURLs[u] = n
		}
		if e.GetResource() != nil {
			checkResource(is, ep+".resource", e.GetResource(), deep)
		}
	}
	if deep && (t == cpb.BundleTypeCode_TRANSACTION || t == cpb.BundleTypeCode_BATCH) {
		for n, e := range b.GetEntry() {
			if e.GetResource() == nil {
				continue
			}
			ep := path + ".entry[" + strconv.Itoa(n) + "].resource." + TypeOf(e.GetResource())
			walkReferences(Unwrap(e.GetResource()).ProtoReflect(), ep, func(p string, ref *dpb.Reference) {
				u := ref.GetUri().GetValue()
				if (strings.HasPrefix(u, "urn:uuid:") || strings.HasPrefix(u, "urn:oid:")) && !hasKey(fullURLs, u) {
					add(is, SeverityError, p, "bundle-ref", "reference to a urn: fullUrl that no entry of this bundle has")
				}
			})
		}
	}
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

func versionOf(e *rpb.Bundle_Entry) string {
	m := Unwrap(e.GetResource())
	if m == nil {
		return ""
	}
	f := m.ProtoReflect().Descriptor().Fields().ByName("meta")
	if f == nil {
		return ""
	}
	meta, ok := m.ProtoReflect().Get(f).Message().Interface().(*dpb.Meta)
	if !ok {
		return ""
	}
	return meta.GetVersionId().GetValue()
}

var (
	referenceName = (&dpb.Reference{}).ProtoReflect().Descriptor().FullName()
	uriNames      = map[protoreflect.FullName]bool{
		(&dpb.Uri{}).ProtoReflect().Descriptor().FullName():       true,
		(&dpb.Url{}).ProtoReflect().Descriptor().FullName():       true,
		(&dpb.Canonical{}).ProtoReflect().Descriptor().FullName(): true,
	}
)

// walk calls visit for every message inside m with its FHIR path, depth
// first; visit returns false to skip a message's children. Choice values
// get their JSON names (valueUrl, not value.url). Contained resources,
// held as Any, are not entered.
func walk(m protoreflect.Message, path string, visit func(string, protoreflect.Message) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		p := path + "." + fd.JSONName()
		step := func(p string, mv protoreflect.Message) {
			if od := mv.Descriptor().Oneofs().ByName("choice"); od != nil {
				if cf := mv.WhichOneof(od); cf != nil && cf.Kind() == protoreflect.MessageKind {
					name := cf.JSONName()
					p += strings.ToUpper(name[:1]) + name[1:]
					mv = mv.Get(cf).Message()
				}
			}
			if visit(p, mv) {
				walk(mv, p, visit)
			}
		}
		if fd.IsList() {
			l := v.List()
			for i := range l.Len() {
				step(p+"["+strconv.Itoa(i)+"]", l.Get(i).Message())
			}
		} else {
			step(p, v.Message())
		}
		return true
	})
}

// checkPrimitives finds values google/fhir's patterns let through: uri,
// url and canonical values must not contain whitespace (FHIR regex \S*).
func checkPrimitives(is *Issues, path string, res protoreflect.Message) {
	walk(res, path, func(p string, m protoreflect.Message) bool {
		if uriNames[m.Descriptor().FullName()] {
			if v := m.Get(m.Descriptor().Fields().ByName("value")).String(); strings.ContainsAny(v, " \t\r\n") {
				add(is, SeverityError, p, "value", "uri, url and canonical values must not contain whitespace")
			}
			return false
		}
		return true
	})
}

// walkReferences calls fn for every Reference in m.
func walkReferences(m protoreflect.Message, path string, fn func(string, *dpb.Reference)) {
	walk(m, path, func(p string, mv protoreflect.Message) bool {
		if mv.Descriptor().FullName() != referenceName {
			return true
		}
		if ref, ok := mv.Interface().(*dpb.Reference); ok {
			fn(p, ref)
		}
		return false
	})
}

// Task statuses after which DESIGN.md asks for a reason a person can read.
var needsReason = map[cpb.TaskStatusCode_Value]bool{
	cpb.TaskStatusCode_REJECTED:  true,
	cpb.TaskStatusCode_CANCELLED: true,
	cpb.TaskStatusCode_ON_HOLD:   true,
	cpb.TaskStatusCode_FAILED:    true,
}

func checkTask(is *Issues, path string, t *tpb.Task) {
	// FHIRPath compares a date with a date-time as "unknown", and the
	// invariant then holds: only compare values of the same precision.
	if a, m := t.GetAuthoredOn(), t.GetLastModified(); a != nil && m != nil &&
		a.GetPrecision() == m.GetPrecision() && m.GetValueUs() < a.GetValueUs() {
		add(is, SeverityError, path+".lastModified", "inv-1", "lastModified must be on or after authoredOn")
	}
	if needsReason[t.GetStatus().GetValue()] && t.GetStatusReason().GetText().GetValue() == "" {
		add(is, SeverityWarning, path+".statusReason.text", "pathway-task-reason",
			"a rejected, cancelled, on-hold or failed referral Task needs statusReason.text saying why")
	}
	if isFulfill(t.GetCode()) && t.GetFocus() == nil {
		add(is, SeverityWarning, path+".focus", "pathway-task-focus", "a fulfill Task needs focus: the ServiceRequest to fulfil")
	}
}

func isFulfill(cc *dpb.CodeableConcept) bool {
	for _, c := range cc.GetCoding() {
		if c.GetSystem().GetValue() == SystemTaskCode && c.GetCode().GetValue() == "fulfill" {
			return true
		}
	}
	return false
}

func checkServiceRequest(is *Issues, path string, sr *srpb.ServiceRequest) {
	if len(sr.GetOrderDetail()) > 0 && sr.GetCode() == nil {
		add(is, SeverityError, path+".orderDetail", "prr-1", "orderDetail only when code is present")
	}
}
