package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeExamples runs every `go run ./cmd/pathway ...` line of the
// README (up to a pipe or a redirection) from the repository root, so the
// examples keep naming real commands, flags and files. Exit status 2
// (usage or configuration error) fails the test; 0 and 1 are answers.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^go run \./cmd/pathway (.*)$`).FindAllSubmatch(readme, -1)
	if len(lines) < 2 {
		t.Fatalf("README has %d `go run ./cmd/pathway` examples, want at least 2", len(lines))
	}
	t.Chdir("../..")
	for _, l := range lines {
		cmdline := string(l[1])
		if i := strings.IndexAny(cmdline, "|>"); i >= 0 {
			cmdline = cmdline[:i]
		}
		args := strings.Fields(cmdline)
		// The rejects file of the convert example goes to a temporary folder.
		for i, a := range args {
			if a == "--rejects" && i+1 < len(args) {
				args[i+1] = t.TempDir() + "/" + args[i+1]
			}
		}
		code, out, errOut := runCmd(t, "", args...)
		if code == 2 {
			t.Errorf("README example %q: exit 2: %s", cmdline, errOut)
			continue
		}
		if len(out) == 0 {
			t.Errorf("README example %q printed nothing on standard output", cmdline)
		}
	}
}
