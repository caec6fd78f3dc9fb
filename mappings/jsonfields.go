package mappings

import (
	"encoding/json"
	"strconv"
	"strings"
)

// JSONFields adapts a decoded JSON object (decoded with UseNumber, so
// numbers keep their written form) to Fields. A ref is first looked up as a
// key as written: KoboToolbox exports keep group paths in keys
// ("grp_referral/need"). Otherwise it is a path through nested objects,
// separated by "/" or ".". Arrays along the way give one value per element.
type JSONFields map[string]any

// Lookup returns the values at ref.
func (j JSONFields) Lookup(ref string) ([]string, bool) {
	if v, ok := j[ref]; ok {
		return scalars(v), true
	}
	parts := strings.FieldsFunc(ref, func(r rune) bool { return r == '/' || r == '.' })
	if len(parts) < 2 {
		return nil, false
	}
	cur := []any{map[string]any(j)}
	for _, p := range parts {
		var next []any
		for _, c := range cur {
			switch o := c.(type) {
			case map[string]any:
				if v, ok := o[p]; ok {
					next = append(next, v)
				}
			case []any:
				for _, e := range o {
					if m, ok := e.(map[string]any); ok {
						if v, ok := m[p]; ok {
							next = append(next, v)
						}
					}
				}
			}
		}
		if len(next) == 0 {
			return nil, false
		}
		cur = next
	}
	var out []string
	for _, c := range cur {
		out = append(out, scalars(c)...)
	}
	return out, true
}

// scalars flattens a JSON value to strings; objects give nothing.
func scalars(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case json.Number:
		return []string{x.String()}
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}
	case bool:
		return []string{strconv.FormatBool(x)}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, scalars(e)...)
		}
		return out
	}
	return nil
}
