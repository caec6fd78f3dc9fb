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

// maxIssues bounds the issues reported for one resource. Past it the
// input is plainly not what it claims to be, and listing more only costs
// memory (a million nulls would otherwise be a million issues).
const maxIssues = 100

func (s *scanner) add(code, details string) {
	s.addAt(string(s.path), code, details)
}

func (s *scanner) addAt(path, code, details string) {
	if len(s.issues) >= maxIssues {
		s.bad = true // stop scanning: Parse reports too-many-issues
		return
	}
	s.issues = append(s.issues, Issue{Severity: SeverityError, Path: path, Code: code, Details: details})
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

// pendingNull is a null found directly inside an array, judged when the
// object ends and its sibling "_name" (or "name") array is known.
type pendingNull struct {
	key   string
	index int
	path  string
}

func (s *scanner) object(i int, resourceSlot bool) int {
	if !s.enter() {
		return len(s.data)
	}
	defer func() { s.depth-- }()
	base := len(s.path)
	if resourceSlot {
		if rt := s.resourceType(i); rt != "" && s.depth > 1 {
			if !IsResourceType(rt) {
				rt = unknownSegment
			}
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
	names := elementNames()
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
		if names[key] {
			s.path = append(s.path, key...)
		} else {
			s.path = append(s.path, unknownSegment...) // unknown keys are input: never in a path
		}
		if keys == nil {
			keys = make(map[string]bool)
		}
		if keys[key] {
			s.add("duplicate-key", "element appears twice in one object: JSON readers disagree on which one counts")
		}
		keys[key] = true
		if i < len(s.data) && s.data[i] == '[' {
			var nulls []int
			arrayPath := string(s.path)
			i, nulls = s.primitiveArray(i, key == "contained")
			for _, n := range nulls {
				pending = append(pending, pendingNull{key: key, index: n, path: arrayPath})
			}
		} else {
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
	// A null must be matched by a value at the same index of the sibling.
	var nullAt map[string]map[int]bool
	if len(pending) > 0 {
		nullAt = map[string]map[int]bool{}
		for _, p := range pending {
			if nullAt[p.key] == nil {
				nullAt[p.key] = map[int]bool{}
			}
			nullAt[p.key][p.index] = true
		}
	}
	for _, p := range pending {
		sibling, primary := "_"+p.key, true
		if len(p.key) > 0 && p.key[0] == '_' {
			sibling, primary = p.key[1:], false
		}
		at := p.path + "[" + strconv.Itoa(p.index) + "]"
		switch {
		case !keys[sibling]:
			s.addAt(at, "ele-1", "null in an array without a matching "+siblingName(sibling, names)+" array")
		case primary && nullAt[sibling][p.index]:
			s.addAt(at, "ele-1", "null at the same index of both the value array and its extension array: one must have content")
		}
	}
	return i
}

// siblingName quotes a sibling element's name for a message, when it is an
// R4 name (a key of the input that is not may be personal data).
func siblingName(name string, names map[string]bool) string {
	if names[name] {
		return strconv.Quote(name)
	}
	return "sibling"
}

// primitiveArray scans an array; nulls found directly inside it are returned
// as paths for the caller to judge.
func (s *scanner) primitiveArray(i int, resourceSlot bool) (int, []int) {
	if !s.enter() {
		return len(s.data), nil
	}
	defer func() { s.depth-- }()
	i = s.ws(i + 1)
	if i < len(s.data) && s.data[i] == ']' {
		s.add("ele-1", "empty array: omit the element instead")
		return i + 1, nil
	}
	var nulls []int
	base := len(s.path)
	for n := 0; !s.bad && i < len(s.data); n++ {
		s.path = append(s.path, '[')
		s.path = strconv.AppendInt(s.path, int64(n), 10)
		s.path = append(s.path, ']')
		if s.data[i] == 'n' && bytes.HasPrefix(s.data[i:], []byte("null")) {
			nulls = append(nulls, n)
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
	base := string(s.path)
	end, nulls := s.primitiveArray(i, resourceSlot)
	for _, n := range nulls {
		s.addAt(base+"["+strconv.Itoa(n)+"]", "ele-1", "null value: omit the element instead")
	}
	return end
}
