package fhir

import (
	"strconv"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// CodeableConcept is google/fhir's R4 CodeableConcept datatype.
type CodeableConcept = dpb.CodeableConcept

// Coding returns a Coding; an empty display is left out.
func Coding(system, code, display string) *dpb.Coding {
	c := &dpb.Coding{Code: &dpb.Code{Value: code}}
	if system != "" {
		c.System = &dpb.Uri{Value: system}
	}
	if display != "" {
		c.Display = &dpb.String{Value: display}
	}
	return c
}

// Concept returns a CodeableConcept of the codings given (nil ones are
// skipped); an empty text is left out.
func Concept(text string, codings ...*dpb.Coding) *CodeableConcept {
	cc := &CodeableConcept{}
	for _, c := range codings {
		if c != nil {
			cc.Coding = append(cc.Coding, c)
		}
	}
	if text != "" {
		cc.Text = &dpb.String{Value: text}
	}
	return cc
}

// String returns a FHIR string.
func String(s string) *dpb.String { return &dpb.String{Value: s} }

// Code returns a FHIR code.
func Code(s string) *dpb.Code { return &dpb.Code{Value: s} }

// URI returns a FHIR uri.
func URI(s string) *dpb.Uri { return &dpb.Uri{Value: s} }

// Canonical returns a FHIR canonical (a URL naming a definition, optionally with |version).
func Canonical(s string) *dpb.Canonical { return &dpb.Canonical{Value: s} }

// Markdown returns a FHIR markdown string.
func Markdown(s string) *dpb.Markdown { return &dpb.Markdown{Value: s} }

// Boolean returns a FHIR boolean.
func Boolean(b bool) *dpb.Boolean { return &dpb.Boolean{Value: b} }

// Integer returns a FHIR integer.
func Integer(n int32) *dpb.Integer { return &dpb.Integer{Value: n} }

// Quantity returns a Quantity of value in unit. A non-empty ucumCode puts
// the unit in UCUM (SystemUCUM) as well, so it can be compared and converted:
// Quantity(7.5, "hours", "h").
func Quantity(value float64, unit, ucumCode string) *dpb.Quantity {
	q := &dpb.Quantity{Value: &dpb.Decimal{Value: strconv.FormatFloat(value, 'f', -1, 64)}}
	if unit != "" {
		q.Unit = &dpb.String{Value: unit}
	}
	if ucumCode != "" {
		q.System = &dpb.Uri{Value: SystemUCUM}
		q.Code = &dpb.Code{Value: ucumCode}
	}
	return q
}

// Annotation returns a note: text only, no author or time.
func Annotation(text string) *dpb.Annotation {
	return &dpb.Annotation{Text: &dpb.Markdown{Value: text}}
}

// HumanName returns a name of a person. Any part may be empty; empty parts are left out.
func HumanName(family string, given ...string) *dpb.HumanName {
	n := &dpb.HumanName{}
	if family != "" {
		n.Family = &dpb.String{Value: family}
	}
	for _, g := range given {
		if g != "" {
			n.Given = append(n.Given, &dpb.String{Value: g})
		}
	}
	return n
}

// Phone returns a phone ContactPoint.
func Phone(number string) *dpb.ContactPoint {
	return &dpb.ContactPoint{
		System: &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_PHONE},
		Value:  &dpb.String{Value: number},
	}
}

// Email returns an email ContactPoint.
func Email(address string) *dpb.ContactPoint {
	return &dpb.ContactPoint{
		System: &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_EMAIL},
		Value:  &dpb.String{Value: address},
	}
}

// Precision is how much of a time a FHIR date, dateTime or instant keeps.
type Precision int

const (
	// PrecisionAuto keeps what the time carries: seconds when it has no
	// fraction of a second, else milliseconds when that is exact, else
	// microseconds (FHIR's finest).
	PrecisionAuto Precision = iota
	// PrecisionYear keeps the year only: "2024".
	PrecisionYear
	// PrecisionMonth keeps year and month: "2024-05".
	PrecisionMonth
	// PrecisionDay keeps the date: "2024-05-01".
	PrecisionDay
	// PrecisionSecond keeps whole seconds and the offset: "2024-05-01T10:00:00+02:00".
	PrecisionSecond
	// PrecisionMillisecond keeps milliseconds: "2024-05-01T10:00:00.123Z".
	PrecisionMillisecond
	// PrecisionMicrosecond keeps microseconds: "2024-05-01T10:00:00.123456Z".
	PrecisionMicrosecond
)

// autoPrecision returns the finest sub-day precision t needs.
func autoPrecision(t time.Time) Precision {
	switch ns := t.Nanosecond(); {
	case ns == 0:
		return PrecisionSecond
	case ns%int(time.Millisecond) == 0:
		return PrecisionMillisecond
	default:
		return PrecisionMicrosecond
	}
}

// timeZone returns google/fhir's timezone string for t: "Z" for UTC (printed
// as Z), else the numeric offset "+02:00", which is what the parser records.
func timeZone(t time.Time) string {
	_, off := t.Zone()
	if t.Location() == time.UTC {
		return "Z"
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	b := []byte{sign, '0', '0', ':', '0', '0'}
	h, m := off/3600, off%3600/60
	b[1], b[2] = byte('0'+h/10), byte('0'+h%10)
	b[4], b[5] = byte('0'+m/10), byte('0'+m%10)
	return string(b)
}

// dayStartUs returns the microseconds of midnight UTC of t's date (as seen in
// t's own zone), truncated to the precision; this is how the parser stores
// a date without a time.
func dayStartUs(t time.Time, p Precision) int64 {
	y, m, d := t.Date()
	switch p {
	case PrecisionYear:
		m, d = time.January, 1
	case PrecisionMonth:
		d = 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// DateTime returns a FHIR dateTime of t at precision p. Times keep t's UTC
// offset ("Z" for time.UTC); dates (year, month, day precision) keep t's
// calendar date in its own zone. The zero time gives nil, so an unset
// time.Time leaves the element out.
func DateTime(t time.Time, p Precision) *dpb.DateTime {
	if t.IsZero() {
		return nil
	}
	if p < PrecisionYear || p > PrecisionMicrosecond {
		p = autoPrecision(t)
	}
	switch p {
	case PrecisionYear:
		return &dpb.DateTime{ValueUs: dayStartUs(t, p), Timezone: "UTC", Precision: dpb.DateTime_YEAR}
	case PrecisionMonth:
		return &dpb.DateTime{ValueUs: dayStartUs(t, p), Timezone: "UTC", Precision: dpb.DateTime_MONTH}
	case PrecisionDay:
		return &dpb.DateTime{ValueUs: dayStartUs(t, p), Timezone: "UTC", Precision: dpb.DateTime_DAY}
	case PrecisionSecond:
		return &dpb.DateTime{ValueUs: t.Truncate(time.Second).UnixMicro(), Timezone: timeZone(t), Precision: dpb.DateTime_SECOND}
	case PrecisionMillisecond:
		return &dpb.DateTime{ValueUs: t.Truncate(time.Millisecond).UnixMicro(), Timezone: timeZone(t), Precision: dpb.DateTime_MILLISECOND}
	default: // PrecisionMicrosecond
		return &dpb.DateTime{ValueUs: t.UnixMicro(), Timezone: timeZone(t), Precision: dpb.DateTime_MICROSECOND}
	}
}

// Instant returns a FHIR instant of t, at the precision t carries (seconds,
// milliseconds or microseconds), with t's UTC offset. The zero time gives nil.
func Instant(t time.Time) *dpb.Instant {
	if t.IsZero() {
		return nil
	}
	switch autoPrecision(t) {
	case PrecisionSecond:
		return &dpb.Instant{ValueUs: t.UnixMicro(), Timezone: timeZone(t), Precision: dpb.Instant_SECOND}
	case PrecisionMillisecond:
		return &dpb.Instant{ValueUs: t.UnixMicro(), Timezone: timeZone(t), Precision: dpb.Instant_MILLISECOND}
	default:
		return &dpb.Instant{ValueUs: t.Truncate(time.Microsecond).UnixMicro(), Timezone: timeZone(t), Precision: dpb.Instant_MICROSECOND}
	}
}

// Date returns a FHIR date. A zero day gives a year-month date and a zero
// month a year-only date, for what is only partly known (common for the
// birth dates of people who arrived without papers): Date(1990, 3, 14) is
// "1990-03-14", Date(1990, 3, 0) is "1990-03", Date(1990, 0, 0) is "1990".
func Date(year int, month time.Month, day int) *dpb.Date {
	switch {
	case month == 0:
		return &dpb.Date{ValueUs: time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), Timezone: "UTC", Precision: dpb.Date_YEAR}
	case day == 0:
		return &dpb.Date{ValueUs: time.Date(year, month, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), Timezone: "UTC", Precision: dpb.Date_MONTH}
	default:
		return &dpb.Date{ValueUs: time.Date(year, month, day, 0, 0, 0, 0, time.UTC).UnixMicro(), Timezone: "UTC", Precision: dpb.Date_DAY}
	}
}

// Period returns a Period from start to end at the precision each carries.
// A zero start or end leaves that bound open; both zero gives nil.
func Period(start, end time.Time) *dpb.Period {
	if start.IsZero() && end.IsZero() {
		return nil
	}
	return &dpb.Period{Start: DateTime(start, PrecisionAuto), End: DateTime(end, PrecisionAuto)}
}
