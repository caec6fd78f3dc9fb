package fhir

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// elementNames is every JSON element name R4 defines anywhere (status,
// valueQuantity, _given, ...), read once from google/fhir's descriptors.
// A key outside it is not written into an issue path: unknown keys are
// input, and input may be personal data ("Zahra": "").
var elementNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{"resourceType": true, "fhir_comments": true}
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			name := f.JSONName()
			names[name] = true
			names["_"+name] = true
			if f.Kind() != protoreflect.MessageKind {
				continue
			}
			if od := f.Message().Oneofs().ByName("choice"); od != nil {
				cf := od.Fields()
				for j := range cf.Len() {
					c := cf.Get(j).JSONName()
					full := name + strings.ToUpper(c[:1]) + c[1:]
					names[full] = true
					names["_"+full] = true
				}
			}
			visit(f.Message())
		}
	}
	visit((&ContainedResource{}).ProtoReflect().Descriptor())
	return names
})

// IsElementName reports whether name is an element name R4 defines.
func IsElementName(name string) bool { return elementNames()[name] }

// unknownSegment stands in a path for a key or type that is not part of R4.
const unknownSegment = "(unknown)"

// cleanPath rewrites a google/fhir path so it holds only R4 names:
// resource types after "resource" and "contained" get their proper case
// (google/fhir writes "resource.serviceRequest"), and any segment that is
// neither an element name nor a resource type becomes "(unknown)".
func cleanPath(p string) string {
	if p == "" || p == "(root)" {
		return p
	}
	segs := strings.Split(p, ".")
	changed := false
	for i, s := range segs {
		name, index, _ := strings.Cut(s, "[")
		if index != "" {
			index = "[" + index
		}
		var ok bool
		switch {
		case i == 0 || i > 0 && (segs[i-1] == "resource" || strings.HasPrefix(segs[i-1], "contained[") || segs[i-1] == "outcome" || segs[i-1] == "return"):
			if IsResourceType(name) {
				ok = true
			} else if up := strings.ToUpper(name[:min(1, len(name))]) + name[min(1, len(name)):]; IsResourceType(up) {
				name, ok = up, true
			} else {
				ok = IsElementName(name)
			}
		default:
			ok = IsElementName(name)
		}
		if !ok {
			name = unknownSegment
		}
		if s2 := name + index; s2 != s {
			segs[i] = s2
			changed = true
		}
	}
	if !changed {
		return p
	}
	return strings.Join(segs, ".")
}
