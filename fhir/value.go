package fhir

import (
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// Value is one value of a FHIR choice element: Observation.value[x], a
// QuestionnaireResponse answer, a Task input or output. Make one with
// IntegerValue, StringValue, BooleanValue, DateTimeValue, CodingValue,
// ConceptValue, QuantityValue or ReferenceValue. Each element allows some
// kinds only (an Observation takes a CodeableConcept, an answer a Coding);
// Build reports a kind the element does not allow. The zero Value is no value.
type Value struct {
	kind  ValueKind
	i     int32
	s     string
	b     bool
	t     time.Time
	cd    *dpb.Coding
	cc    *CodeableConcept
	q     *dpb.Quantity
	ref   *Reference
	empty bool // a kind whose payload was nil
}

// ValueKind names the FHIR type of a Value.
type ValueKind string

const (
	// ValueNone is the kind of the zero Value.
	ValueNone ValueKind = ""
	// ValueInteger is a FHIR integer.
	ValueInteger ValueKind = "integer"
	// ValueString is a FHIR string.
	ValueString ValueKind = "string"
	// ValueBoolean is a FHIR boolean.
	ValueBoolean ValueKind = "boolean"
	// ValueDateTime is a FHIR dateTime.
	ValueDateTime ValueKind = "dateTime"
	// ValueCoding is a Coding.
	ValueCoding ValueKind = "Coding"
	// ValueCodeableConcept is a CodeableConcept.
	ValueCodeableConcept ValueKind = "CodeableConcept"
	// ValueQuantity is a Quantity.
	ValueQuantity ValueKind = "Quantity"
	// ValueReference is a Reference.
	ValueReference ValueKind = "Reference"
)

// IntegerValue returns an integer value (a score, a count, a year).
func IntegerValue(n int32) Value { return Value{kind: ValueInteger, i: n} }

// StringValue returns a string value.
func StringValue(s string) Value { return Value{kind: ValueString, s: s, empty: s == ""} }

// BooleanValue returns a boolean value.
func BooleanValue(b bool) Value { return Value{kind: ValueBoolean, b: b} }

// DateTimeValue returns a dateTime value at the precision t carries.
func DateTimeValue(t time.Time) Value { return Value{kind: ValueDateTime, t: t, empty: t.IsZero()} }

// CodingValue returns a Coding value (what a questionnaire answer holds).
func CodingValue(c *dpb.Coding) Value { return Value{kind: ValueCoding, cd: c, empty: c == nil} }

// ConceptValue returns a CodeableConcept value (what an Observation holds).
func ConceptValue(cc *CodeableConcept) Value {
	return Value{kind: ValueCodeableConcept, cc: cc, empty: cc == nil}
}

// QuantityValue returns a Quantity value; see Quantity.
func QuantityValue(q *dpb.Quantity) Value { return Value{kind: ValueQuantity, q: q, empty: q == nil} }

// ReferenceValue returns a Reference value.
func ReferenceValue(r *Reference) Value { return Value{kind: ValueReference, ref: r, empty: r == nil} }

// Kind returns the FHIR type of the value, ValueNone for the zero Value.
func (v Value) Kind() ValueKind { return v.kind }

// IsZero reports whether v is the zero Value (no value).
func (v Value) IsZero() bool { return v.kind == ValueNone }

// choiceFields names the field of a google/fhir choice (value[x]) message
// that holds each kind.
var choiceFields = map[ValueKind]protoreflect.Name{
	ValueInteger:         "integer",
	ValueString:          "string_value",
	ValueBoolean:         "boolean",
	ValueDateTime:        "date_time",
	ValueCoding:          "coding",
	ValueCodeableConcept: "codeable_concept",
	ValueQuantity:        "quantity",
	ValueReference:       "reference",
}

// kindOrder lists the kinds in the order error messages name them.
var kindOrder = []ValueKind{ValueInteger, ValueString, ValueBoolean, ValueDateTime, ValueCoding,
	ValueCodeableConcept, ValueQuantity, ValueReference}

// datatype returns the value as its FHIR datatype message.
func (v Value) datatype() proto.Message {
	switch v.kind {
	case ValueInteger:
		return Integer(v.i)
	case ValueString:
		return String(v.s)
	case ValueBoolean:
		return Boolean(v.b)
	case ValueDateTime:
		return DateTime(v.t, PrecisionAuto)
	case ValueCoding:
		return v.cd
	case ValueCodeableConcept:
		return v.cc
	case ValueQuantity:
		return v.q
	case ValueReference:
		return v.ref
	case ValueNone:
	}
	return nil
}

// into puts the value into x, a google/fhir choice message such as
// *task_go_proto.Task_Parameter_ValueX, and reports whether it did. A
// missing value (when required), a kind x cannot hold, or an invalid value
// is reported to c as a problem at field.
func (v Value) into(c *specCheck, field string, required bool, x proto.Message) bool {
	if v.kind == ValueNone {
		if required {
			c.fail(field, "required")
		}
		return false
	}
	m := x.ProtoReflect()
	fields := m.Descriptor().Fields()
	fd := fields.ByName(choiceFields[v.kind])
	if fd == nil {
		var names []string
		for _, k := range kindOrder {
			if fields.ByName(choiceFields[k]) != nil {
				names = append(names, string(k))
			}
		}
		c.fail(field, "a "+string(v.kind)+" value is not allowed here (allowed: "+strings.Join(names, ", ")+")")
		return false
	}
	if v.empty {
		c.fail(field, "empty "+string(v.kind)+" value")
		return false
	}
	n := len(c.problems)
	switch v.kind {
	case ValueCoding:
		c.coding(field, v.cd, true)
	case ValueCodeableConcept:
		c.concept(field, v.cc, true)
	case ValueQuantity:
		if f, err := strconv.ParseFloat(v.q.GetValue().GetValue(), 64); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.fail(field, "a quantity needs a finite decimal value")
		}
	case ValueReference:
		c.ref(field, v.ref, true)
	case ValueNone, ValueInteger, ValueString, ValueBoolean, ValueDateTime:
	}
	if len(c.problems) > n {
		return false
	}
	m.Set(fd, protoreflect.ValueOfMessage(v.datatype().ProtoReflect()))
	return true
}
