package main

import (
	"os/exec"
	"strings"
	"testing"
)

// layer is each package's tier (DESIGN.md, "Architecture"): a package may
// import only packages of lower tiers.
var layer = map[string]int{
	"fhir":        0,
	"mappings":    1,
	"policy":      1,
	"store":       1,
	"connectors":  2,
	"audit":       2,
	"exchange":    3,
	"server":      4,
	"cmd/pathway": 5,
}

const module = "github.com/pathway-fhir/pathway/"

// tierOf returns the tier of a package of this module (subpackages share
// their top-level package's tier) and false for packages outside the layers.
func tierOf(pkg string) (string, int, bool) {
	rel := strings.TrimPrefix(pkg, module)
	for name, tier := range layer {
		if rel == name || strings.HasPrefix(rel, name+"/") {
			return name, tier, true
		}
	}
	return rel, 0, false
}

func TestImportLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from, fromTier, ok := tierOf(fields[0])
		if !ok {
			t.Errorf("package %s is in no layer: add it to the table in this test and to docs/architecture.md", fields[0])
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to, toTier, _ := tierOf(imp)
			checked++
			if to != from && toTier >= fromTier {
				t.Errorf("%s (tier %d) imports %s (tier %d): imports must point down", fields[0], fromTier, imp, toTier)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no imports inside the module were checked")
	}
}
