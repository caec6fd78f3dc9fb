package fhir

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// SearchFields are the values a store indexes for a resource, read from
// the resource itself so they can never disagree with it.
type SearchFields struct {
	// Patient is "Patient/id": the resource itself, or its patient, subject
	// or for when that references a Patient.
	Patient string
	// Status is the resource's status code as FHIR spells it ("in-progress").
	Status string
	// Owner and Requester are references as written ("Organization/x").
	Owner, Requester string
}

// SearchFieldsOf returns the indexed values of a resource message or ContainedResource.
func SearchFieldsOf(res proto.Message) SearchFields { return searchFields(res, nil) }

// searchFields is SearchFieldsOf with each reference read through resolve
// (when not nil): the reference it stands for (EncodeTransaction's
// rewriting).
func searchFields(res proto.Message, resolve func(*Reference) *Reference) SearchFields {
	ref := func(m protoreflect.Message, name protoreflect.Name) *Reference {
		r := referenceField(m, name)
		if r != nil && resolve != nil {
			r = resolve(r)
		}
		return r
	}
	if cr, ok := res.(*ContainedResource); ok {
		res = Unwrap(cr)
	}
	var sf SearchFields
	if res == nil {
		return sf
	}
	m := res.ProtoReflect()
	if m.Descriptor().Name() == "Patient" {
		if id := IDOf(res); id != "" {
			sf.Patient = "Patient/" + id
		}
	} else {
		for _, name := range []protoreflect.Name{"patient", "subject", "for_value"} {
			if r := ref(m, name); r != nil && RefType(r) == "Patient" {
				sf.Patient = RefString(r)
				break
			}
		}
	}
	if r := ref(m, "owner"); r != nil {
		sf.Owner = RefString(r)
	}
	if r := ref(m, "requester"); r != nil {
		sf.Requester = RefString(r)
	}
	sf.Status = statusCode(m)
	return sf
}

func referenceField(m protoreflect.Message, name protoreflect.Name) *dpb.Reference {
	f := m.Descriptor().Fields().ByName(name)
	if f == nil || f.IsList() || f.Kind() != protoreflect.MessageKind || !m.Has(f) {
		return nil
	}
	ref, _ := m.Get(f).Message().Interface().(*dpb.Reference)
	return ref
}

// statusCode reads the status element's enum and returns its FHIR code.
func statusCode(m protoreflect.Message) string {
	f := m.Descriptor().Fields().ByName("status")
	if f == nil || f.IsList() || f.Kind() != protoreflect.MessageKind || !m.Has(f) {
		return ""
	}
	sm := m.Get(f).Message()
	vf := sm.Descriptor().Fields().ByName("value")
	if vf == nil || vf.Kind() != protoreflect.EnumKind {
		return ""
	}
	return EnumCode(vf.Enum().Values().ByNumber(sm.Get(vf).Enum()))
}

// EnumCode returns the FHIR code of a google/fhir enum value (IN_PROGRESS
// becomes "in-progress"), using the original code annotation when present.
func EnumCode(v protoreflect.EnumValueDescriptor) string {
	if v == nil || v.Number() == 0 {
		return ""
	}
	if orig, ok := proto.GetExtension(v.Options(), apb.E_FhirOriginalCode).(string); ok && orig != "" {
		return orig
	}
	return strings.ReplaceAll(strings.ToLower(string(v.Name())), "_", "-")
}

// MarshalBinary encodes a resource as deterministic proto binary, the form
// Pathway stores: the same resource always gives the same bytes, so a
// content hash tells a changed resource from a re-sent one.
func MarshalBinary(res proto.Message) ([]byte, error) {
	cr, err := Wrap(res)
	if err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cr)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", Key(cr), err)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func UnmarshalBinary(b []byte) (*ContainedResource, error) {
	cr := &ContainedResource{}
	if err := proto.Unmarshal(b, cr); err != nil {
		return nil, fmt.Errorf("decoding stored resource: %w", err)
	}
	if Unwrap(cr) == nil {
		return nil, fmt.Errorf("decoding stored resource: no resource in the bytes")
	}
	return cr, nil
}
