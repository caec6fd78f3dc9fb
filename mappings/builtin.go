package mappings

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtins lists the names of the mappings shipped inside Pathway.
func Builtins() []string {
	entries, _ := fs.ReadDir(builtinFS, "builtin")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Builtin loads a built-in mapping by name.
func Builtin(name string) (*Mapping, error) {
	file := path.Join("builtin", name+".yaml")
	if _, err := fs.Stat(builtinFS, file); err != nil {
		return nil, fmt.Errorf("no built-in mapping %q: the built-in mappings are %s", name, strings.Join(Builtins(), ", "))
	}
	return LoadFile(file, func(p string) ([]byte, error) { return builtinFS.ReadFile(p) })
}
