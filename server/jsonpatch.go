package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// applyJSONPatch applies an RFC 6902 JSON Patch to a JSON document. It
// works on the generic JSON value: the result is parsed as FHIR (package
// fhir) before anything uses it. Errors name the operation and the path,
// never values.
func applyJSONPatch(doc, patch []byte) ([]byte, error) {
	var ops []struct {
		Op    string           `json:"op"`
		Path  *string          `json:"path"`
		From  *string          `json:"from"`
		Value *json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, errors.New("the patch is not a JSON array of operations")
	}
	var root any
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	if err := d.Decode(&root); err != nil {
		return nil, errors.New("the resource could not be read as JSON")
	}
	for i, op := range ops {
		if op.Path == nil {
			return nil, fmt.Errorf("operation %d: path is required", i)
		}
		path, err := splitPointer(*op.Path)
		if err != nil {
			return nil, fmt.Errorf("operation %d (%s): %w", i, op.Op, err)
		}
		value := func() (any, error) {
			if op.Value == nil {
				return nil, errors.New("value is required")
			}
			var v any
			d := json.NewDecoder(bytes.NewReader(*op.Value))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				return nil, errors.New("value is not JSON")
			}
			return v, nil
		}
		switch op.Op {
		case "add", "replace", "test":
			var v any
			if v, err = value(); err != nil {
				break
			}
			switch op.Op {
			case "add":
				root, err = addAt(root, path, v)
			case "replace":
				if root, err = removeAt(root, path); err == nil {
					root, err = addAt(root, path, v)
				}
			case "test":
				var cur any
				if cur, err = getAt(root, path); err == nil && !reflect.DeepEqual(cur, v) {
					err = errors.New("test failed: the value differs")
				}
			}
		case "remove":
			root, err = removeAt(root, path)
		case "move", "copy":
			if op.From == nil {
				err = errors.New("from is required")
				break
			}
			var from []string
			if from, err = splitPointer(*op.From); err != nil {
				break
			}
			var v any
			if v, err = getAt(root, from); err != nil {
				break
			}
			if op.Op == "move" {
				if root, err = removeAt(root, from); err != nil {
					break
				}
			} else {
				v = deepCopy(v)
			}
			root, err = addAt(root, path, v)
		default:
			err = errors.New("not an operation of RFC 6902")
		}
		if err != nil {
			return nil, fmt.Errorf("operation %d (%s %s): %w", i, op.Op, *op.Path, err)
		}
	}
	return json.Marshal(root)
}

func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("a path is a JSON Pointer starting with /")
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

func getAt(root any, path []string) (any, error) {
	cur := root
	for _, key := range path {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[key]
			if !ok {
				return nil, errors.New("the path does not exist")
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return nil, errors.New("the path does not exist")
			}
			cur = x[i]
		default:
			return nil, errors.New("the path does not exist")
		}
	}
	return cur, nil
}

// addAt adds v at path (RFC 6902 add): a member of an object, or an
// array item inserted at an index or appended with "-".
func addAt(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := getAt(root, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	key := path[len(path)-1]
	switch x := parent.(type) {
	case map[string]any:
		x[key] = v
		return root, nil
	case []any:
		i := len(x)
		if key != "-" {
			if i, err = strconv.Atoi(key); err != nil || i < 0 || i > len(x) {
				return nil, errors.New("the array index is out of range")
			}
		}
		x = append(x[:i], append([]any{v}, x[i:]...)...)
		return setAt(root, path[:len(path)-1], x)
	}
	return nil, errors.New("the parent is not an object or an array")
}

func removeAt(root any, path []string) (any, error) {
	if len(path) == 0 {
		return nil, errors.New("cannot remove the whole resource")
	}
	parent, err := getAt(root, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	key := path[len(path)-1]
	switch x := parent.(type) {
	case map[string]any:
		if _, ok := x[key]; !ok {
			return nil, errors.New("the path does not exist")
		}
		delete(x, key)
		return root, nil
	case []any:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(x) {
			return nil, errors.New("the array index is out of range")
		}
		x = append(x[:i:i], x[i+1:]...)
		return setAt(root, path[:len(path)-1], x)
	}
	return nil, errors.New("the path does not exist")
}

// setAt replaces the value at path (which exists).
func setAt(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := getAt(root, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	key := path[len(path)-1]
	switch x := parent.(type) {
	case map[string]any:
		x[key] = v
	case []any:
		i, _ := strconv.Atoi(key)
		x[i] = v
	}
	return root, nil
}
