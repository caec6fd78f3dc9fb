package policy

import (
	"net/url"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// entryRequest returns the request of a kept entry without the search
// parts of its ifNoneExist and url (a conditional create or update) that
// name values the Bundle sent no longer holds (values, see stringValues):
// an identifier the agreement removes, a masked date, a withheld
// resource's code. A conditional update left without search parts
// becomes a PUT to Type/id; so does a conditional create left without
// them when the resource has an id (a plain POST otherwise). The input
// request is not changed; it is returned as it is when nothing goes.
func entryRequest(req *rpb.Bundle_Entry_Request, res protoreflect.Message, values map[string]bool) *rpb.Bundle_Entry_Request {
	if req == nil {
		return nil
	}
	base, query, conditional := strings.Cut(req.GetUrl().GetValue(), "?")
	ifNoneExist := strings.TrimPrefix(req.GetIfNoneExist().GetValue(), "?")
	keptURL, keptINE := keptSearch(query, values), keptSearch(ifNoneExist, values)
	if (!conditional || keptURL == query) && (req.GetIfNoneExist() == nil || keptINE == ifNoneExist) {
		return req
	}
	out := proto.Clone(req).(*rpb.Bundle_Entry_Request)
	rtype := string(res.Descriptor().Name())
	id := fhir.IDOf(res.Interface())
	putByID := func() {
		if id == "" {
			out.Method = &rpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_POST}
			out.Url = fhir.URI(rtype)
			return
		}
		out.Method = &rpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_PUT}
		out.Url = fhir.URI(rtype + "/" + id)
	}
	if conditional {
		if keptURL != "" {
			out.Url = fhir.URI(base + "?" + keptURL)
		} else {
			putByID()
		}
	}
	if req.GetIfNoneExist() != nil {
		if keptINE != "" {
			out.IfNoneExist = fhir.String(keptINE)
		} else {
			out.IfNoneExist = nil
			if out.GetMethod().GetValue() == cpb.HTTPVerbCode_POST {
				putByID()
			}
		}
	}
	return out
}

// keptSearch returns the parts of a search query every value of which is
// still in the resource (each side of "system|value", each of a
// comma-separated list); "" when none is.
func keptSearch(query string, values map[string]bool) string {
	var kept []string
	for _, part := range strings.Split(query, "&") {
		if part == "" {
			continue
		}
		_, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		all := uv != ""
		for _, alt := range strings.Split(uv, ",") {
			for _, tok := range strings.Split(alt, "|") {
				if tok != "" && !values[tok] {
					all = false
				}
			}
		}
		if all {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

// stringValues adds to out every string value in a resource (ids, codes
// written as strings, identifiers, systems...), not its meta.
func stringValues(m protoreflect.Message, out map[string]bool) {
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() != nil && fd.Message().Name() == "Meta":
				return true // labels, not the resource's data
			case fd.Kind() == protoreflect.StringKind && !fd.IsList():
				out[v.String()] = true
			case fd.Message() != nil && fd.IsList():
				for i := range v.List().Len() {
					visit(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				visit(v.Message())
			}
			return true
		})
	}
	visit(m)
}
