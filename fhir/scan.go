package fhir

import (
	"bytes"
	"strconv"
)

// maxDepth bounds JSON nesting, in the scanner and in google/fhir's parser, so
// hostile input cannot exhaust the stack. Real resources nest far less (a
// Questionnaire with deep item groups reaches about 30).
const maxDepth = 128

// scanner walks raw JSON once and reports what google/fhir's parser accepts
// silently but FHIR forbids (ele-1: every element has a value or children):
// null values, empty strings, empty objects and empty arrays. It keeps a FHIR
// path as it goes, inserting the resource type after "resource" and
// "contained" the way google/fhir does (Bundle.entry[0].resource.Task.status).
//
// The scanner never fails loudly: on malformed JSON it stops, and the
// parser's own error describes the problem.
type scanner struct {
	data   []byte
	path   []byte
	issues Issues
	depth  int
	bad    bool
}

// scanElements returns the ele-1 issues of one resource's JSON.
func scanElements(data []byte, rootType string) Issues {
	s := &scanner{data: data, path: append(make([]byte, 0, 128), rootType...)}
	i := s.ws(0)
	if i < len(data) && data[i] == '{' {
		s.object(i, true)
	}
	return s.issues
}

func (s *scanner) add(code, details string) {
	s.issues = append(s.issues, Issue{Severity: SeverityError, Path: string(s.path), Code: code, Details: details})
}

func (s *scanner) ws(i int) int {
	for i < len(s.data) {
		switch s.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value scans the value at i and returns the index after it.
func (s *scanner) value(i int, resourceSlot bool) int {
	if s.bad || i >= len(s.data) {
		s.bad = true
		return len(s.data)
	}
	switch c := s.data[i]; {
	case c == '{':
		return s.object(i, resourceSlot)
	case c == '[':
		return s.array(i, resourceSlot)
	case c == '"':
		end := s.str(i)
		if end == i+2 {
			s.add("ele-1", "empty string: omit the element instead")
		}
		return end
	case c == 'n':
		if !bytes.HasPrefix(s.data[i:], []byte("null")) {
			s.bad = true
			return len(s.data)
		}
		s.add("ele-1", "null value: omit the element instead")
		return i + 4
	default:
		// numbers, true, false: read up to the next delimiter.
		for i < len(s.data) {
			switch s.data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// str returns the index after the string starting at i.
func (s *scanner) str(i int) int {
	for j := i + 1; j < len(s.data); j++ {
		switch s.data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	s.bad = true
	return len(s.data)
}

func (s *scanner) enter() bool {
	s.depth++
	if s.depth > maxDepth {
		if !s.bad {
			s.add("too-deep", "JSON nested more than "+strconv.Itoa(maxDepth)+" levels")
		}
		s.bad = true
		return false
	}
	return true
}

// resourceType finds the "resourceType" member of the object at i without
// descending into nested values.
func (s *scanner) resourceType(i int) string {
	i = s.ws(i + 1)
	for i < len(s.data) && s.data[i] == '"' && !s.bad {
		kEnd := s.str(i)
		if s.bad {
			return ""
		}
		key := s.data[i+1 : kEnd-1]
		i = s.ws(kEnd)
		if i >= len(s.data) || s.data[i] != ':' {
			return ""
		}
		i = s.ws(i + 1)
		if string(key) == "resourceType" && i < len(s.data) && s.data[i] == '"' {
			end := s.str(i)
			if s.bad || end-1 <= i+1 {
				return ""
			}
			return string(s.data[i+1 : end-1])
		}
		i = s.skip(i)
		i = s.ws(i)
		if i < len(s.data) && s.data[i] == ',' {
			i = s.ws(i + 1)
		}
	}
	return ""
}

// skip returns the index after the value at i, without reporting anything.
func (s *scanner) skip(i int) int {
	depth := 0
	for i < len(s.data) {
		switch s.data[i] {
		case '"':
			i = s.str(i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth <= 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

type pendingNull struct {
	key  string
	path string
}

func (s *scanner) object(i int, resourceSlot bool) int {
	if !s.enter() {
		return len(s.data)
	}
	defer func() { s.depth-- }()
	base := len(s.path)
	if resourceSlot {
		if rt := s.resourceType(i); rt != "" && s.depth > 1 {
			s.path = append(s.path, '.')
			s.path = append(s.path, rt...)
		}
	}
	defer func() { s.path = s.path[:base] }()

	i = s.ws(i + 1)
	if i < len(s.data) && s.data[i] == '}' {
		s.add("ele-1", "empty object: omit the element instead")
		return i + 1
	}
	var keys map[string]bool
	var pending []pendingNull
	for !s.bad && i < len(s.data) {
		if s.data[i] != '"' {
			s.bad = true
			break
		}
		kEnd := s.str(i)
		if s.bad {
			break
		}
		key := string(s.data[i+1 : kEnd-1])
		i = s.ws(kEnd)
		if i >= len(s.data) || s.data[i] != ':' {
			s.bad = true
			break
		}
		i = s.ws(i + 1)
		elemBase := len(s.path)
		if len(s.path) > 0 {
			s.path = append(s.path, '.')
		}
		s.path = append(s.path, key...)
		if i < len(s.data) && s.data[i] == '[' {
			if keys == nil {
				keys = make(map[string]bool)
			}
			keys[key] = true
			var nulls []string
			i, nulls = s.primitiveArray(i, key == "contained")
			for _, p := range nulls {
				pending = append(pending, pendingNull{key: key, path: p})
			}
		} else {
			if keys == nil {
				keys = make(map[string]bool)
			}
			keys[key] = true
			i = s.value(i, key == "resource" || key == "outcome" || key == "return")
		}
		s.path = s.path[:elemBase]
		i = s.ws(i)
		if i < len(s.data) && s.data[i] == ',' {
			i = s.ws(i + 1)
			continue
		}
		if i < len(s.data) && s.data[i] == '}' {
			i++
			break
		}
		s.bad = true
	}
	// A null inside an array is how FHIR JSON keeps primitive arrays aligned
	// with their "_name" extension arrays; it is allowed only when the
	// sibling array exists.
	for _, p := range pending {
		sibling := "_" + p.key
		if len(p.key) > 0 && p.key[0] == '_' {
			sibling = p.key[1:]
		}
		if !keys[sibling] {
			s.issues = append(s.issues, Issue{Severity: SeverityError, Path: p.path, Code: "ele-1",
				Details: "null in an array without a matching " + strconv.Quote(sibling) + " array"})
		}
	}
	return i
}

// primitiveArray scans an array; nulls found directly inside it are returned
// as paths for the caller to judge.
func (s *scanner) primitiveArray(i int, resourceSlot bool) (int, []string) {
	if !s.enter() {
		return len(s.data), nil
	}
	defer func() { s.depth-- }()
	i = s.ws(i + 1)
	if i < len(s.data) && s.data[i] == ']' {
		s.add("ele-1", "empty array: omit the element instead")
		return i + 1, nil
	}
	var nulls []string
	base := len(s.path)
	for n := 0; !s.bad && i < len(s.data); n++ {
		s.path = append(s.path, '[')
		s.path = strconv.AppendInt(s.path, int64(n), 10)
		s.path = append(s.path, ']')
		if s.data[i] == 'n' && bytes.HasPrefix(s.data[i:], []byte("null")) {
			nulls = append(nulls, string(s.path))
			i += 4
		} else {
			i = s.value(i, resourceSlot)
		}
		s.path = s.path[:base]
		i = s.ws(i)
		if i < len(s.data) && s.data[i] == ',' {
			i = s.ws(i + 1)
			continue
		}
		if i < len(s.data) && s.data[i] == ']' {
			return i + 1, nulls
		}
		s.bad = true
	}
	return len(s.data), nulls
}

// array is used for arrays in value position (arrays of arrays never occur
// in FHIR, but the scanner must not misbehave on them).
func (s *scanner) array(i int, resourceSlot bool) int {
	end, nulls := s.primitiveArray(i, resourceSlot)
	for _, p := range nulls {
		s.issues = append(s.issues, Issue{Severity: SeverityError, Path: p, Code: "ele-1", Details: "null value: omit the element instead"})
	}
	return end
}
