package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
)

func TestKeysGenerate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "audit.key")
	code, stdout, stderr := runCmd(t, "", "keys", "generate", "--name", "pathway.example.org/audit", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	info, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	skey, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(skey), "PRIVATE+KEY+pathway.example.org/audit+") {
		t.Errorf("key file does not hold a signed-note private key")
	}
	if strings.Contains(stdout, "PRIVATE") || strings.Contains(stderr, strings.TrimSpace(string(skey))) {
		t.Error("the private key was printed")
	}
	vkey := strings.TrimSpace(stdout)
	v, err := audit.NewVerifier(vkey)
	if err != nil || v.Name() != "pathway.example.org/audit" {
		t.Fatalf("stdout %q is not the verifier key: %v", stdout, err)
	}
	derived, err := audit.VerifierKey(string(skey))
	if err != nil || derived != vkey {
		t.Errorf("printed verifier key %q is not the key file's (%q, %v)", vkey, derived, err)
	}
	// A checkpoint signed with the file verifies with the printed key.
	signer, err := audit.NewSigner(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.SignCheckpoint(signer, 1, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(cp.Note, v); err != nil {
		t.Errorf("checkpoint signed with the generated key: %v", err)
	}

	// Never overwrite a key.
	code, _, stderr = runCmd(t, "", "keys", "generate", "--out", out)
	if code != 2 || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("second generate: exit %d, %s", code, stderr)
	}
	if again, _ := os.ReadFile(out); string(again) != string(skey) {
		t.Error("the key file changed")
	}
}

func TestKeysGenerateUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "generate"}, "--out FILE is required"},
		{[]string{"keys", "generate", "--name", "has space", "--out", filepath.Join(dir, "a.key")}, "--name"},
		{[]string{"keys", "generate", "--name", "a+b", "--out", filepath.Join(dir, "b.key")}, "--name"},
	} {
		code, _, stderr := runCmd(t, "", tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused commands wrote %d files", len(entries))
	}
}
