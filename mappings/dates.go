package mappings

import (
	"fmt"
	"strings"
	"time"
)

// dateFormat is a date format a mapping names with tokens (DD/MM/YYYY),
// turned into a Go layout once at load.
type dateFormat struct {
	written string
	layout  string
	// precision of what the format carries: "year", "month", "day" or "time".
	precision string
	iso       bool
}

// dateTokens maps format tokens to Go layout elements, longest first.
var dateTokens = []struct{ token, layout string }{
	{"YYYY", "2006"}, {"MM", "01"}, {"DD", "02"}, {"hh", "15"}, {"mm", "04"}, {"ss", "05"},
	{"ZZ", "-0700"}, // a zone offset written +hhmm or -hhmm (HL7 v2: 20220125162000+0200)
	{"M", "1"}, {"D", "2"},
}

// parseDateFormat reads a format such as DD/MM/YYYY, YYYY-MM-DD hh:mm,
// YYYYMMDDhhmmZZ or "iso" (FHIR/ISO 8601: YYYY, YYYY-MM, YYYY-MM-DD or a
// full date-time with zone).
func parseDateFormat(f string) (dateFormat, error) {
	if f == "iso" {
		return dateFormat{written: f, iso: true}, nil
	}
	var b strings.Builder
	df := dateFormat{written: f}
	has := map[string]bool{}
	for i := 0; i < len(f); {
		matched := false
		for _, t := range dateTokens {
			if strings.HasPrefix(f[i:], t.token) {
				b.WriteString(t.layout)
				has[t.token] = true
				i += len(t.token)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		c := f[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			return dateFormat{}, fmt.Errorf("date format %q: unknown token at %q: use YYYY, MM, M, DD, D, hh, mm, ss, ZZ and separators, or iso", f, f[i:])
		}
		b.WriteByte(c)
		i++
	}
	switch {
	case !has["YYYY"]:
		return dateFormat{}, fmt.Errorf("date format %q has no YYYY: two-digit years are ambiguous", f)
	case has["hh"]:
		df.precision = "time"
	case has["DD"] || has["D"]:
		df.precision = "day"
	case has["MM"] || has["M"]:
		df.precision = "month"
	default:
		df.precision = "year"
	}
	df.layout = b.String()
	return df, nil
}

// isoLayouts are what "iso" accepts, with their precision.
var isoLayouts = []struct{ layout, precision string }{
	{time.RFC3339Nano, "time"}, {"2006-01-02T15:04:05", "time"}, {"2006-01-02", "day"}, {"2006-01", "month"}, {"2006", "year"},
}

// parseDate tries each format in turn. It returns the time and the
// precision of the format that matched.
func parseDate(s string, formats []dateFormat, loc *time.Location) (time.Time, string, bool) {
	for _, f := range formats {
		if f.iso {
			for _, il := range isoLayouts {
				if t, err := time.ParseInLocation(il.layout, s, loc); err == nil {
					return t, il.precision, true
				}
			}
			continue
		}
		if t, err := time.ParseInLocation(f.layout, s, loc); err == nil {
			return t, f.precision, true
		}
	}
	return time.Time{}, "", false
}

// partialDate writes t at the given precision, as FHIR dates are written.
func partialDate(t time.Time, precision string) string {
	switch precision {
	case "year":
		return t.Format("2006")
	case "month":
		return t.Format("2006-01")
	}
	return t.Format("2006-01-02")
}

func formatList(fs []dateFormat) string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.written
	}
	return strings.Join(out, ", ")
}
