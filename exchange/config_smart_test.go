package exchange

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// testJWKS returns a JWK Set with one RSA and one P-384 key, and the
// private key's d to put in when a test wants a private key in the set.
func testJWKS(t *testing.T) (rsaJWK, ecJWK map[string]any) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := ek.PublicKey.Bytes()
	rsaJWK = map[string]any{"kty": "RSA", "kid": "r1", "alg": "RS384", "use": "sig", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())}
	ecJWK = map[string]any{"kty": "EC", "kid": "e1", "crv": "P-384", "x": b64(pt[1:49]), "y": b64(pt[49:])}
	return rsaJWK, ecJWK
}

func writeJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigSMART(t *testing.T) {
	dir := t.TempDir()
	rj, ej := testJWKS(t)
	writeJSON(t, dir, "good.json", map[string]any{"keys": []any{rj, ej}})
	priv := map[string]any{}
	for k, v := range ej {
		priv[k] = v
	}
	priv["d"] = "c2VjcmV0LXByaXZhdGU"
	small := map[string]any{"kty": "RSA", "kid": "tiny", "n": b64(big.NewInt(0xC0FFEE).Bytes()), "e": "AQAB"}
	wrongCurve := map[string]any{"kty": "EC", "kid": "e2", "alg": "ES256", "crv": "P-384", "x": ej["x"], "y": ej["y"]}
	offCurve := map[string]any{"kty": "EC", "kid": "e3", "crv": "P-384", "x": ej["y"], "y": ej["x"]}
	hs := map[string]any{"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"}
	writeJSON(t, dir, "bad.json", map[string]any{"keys": []any{priv, small, wrongCurve, offCurve, hs, rj, rj}})
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{not json"), 0o644)

	api := func(s string) string {
		return strings.Replace(base, "    kind: ngo\n", "    kind: ngo\n    api:\n"+s, 1)
	}
	file := filepath.Join(dir, "pathway.yaml")
	t.Run("good", func(t *testing.T) {
		cfg, err := ParseConfig(file, []byte(api("      jwks_file: good.json\n      scopes: [system/Task.rs, system/Task.write]\n")))
		if err != nil {
			t.Fatal(err)
		}
		l := cfg.Partners["ngo-d"]
		if l.ClientID != "ngo-d" || len(l.APIKeys) != 2 || l.APIKeys[0].KID != "r1" || l.APIKeys[0].Alg != "RS384" || len(l.Scopes) != 2 {
			t.Errorf("link = %+v", l)
		}
		if _, ok := l.APIKeys[1].Key.(*ecdsa.PublicKey); !ok {
			t.Errorf("EC key is %T", l.APIKeys[1].Key)
		}
		if cfg.Partners["clinic-b"].APIKeys != nil || cfg.Partners["clinic-b"].ClientID != "clinic-b" {
			t.Errorf("clinic-b = %+v", cfg.Partners["clinic-b"])
		}
	})
	tests := []struct {
		name, api string
		want      []string
	}{
		{"missing file", "      jwks_file: nowhere.json\n", []string{"pathway.yaml:10:18: partners[1].api.jwks_file: cannot read the JWK Set"}},
		{"not JSON", "      jwks_file: broken.json\n", []string{"partners[1].api.jwks_file: " + filepath.Join(dir, "broken.json") + ": not a JWK Set"}},
		{"bad keys", "      jwks_file: bad.json\n", []string{
			`keys[0]: key "e1" holds a private key`,
			`keys[1]: key "tiny": an RSA key of 24 bits`,
			`keys[2]: key "e2": alg ES256 needs curve P-256, not P-384`,
			`keys[3]: key "e3": not a point of P-384`,
			`keys[4]: key "h": alg "HS256" is not a signing algorithm`,
			`keys[6]: kid "r1" is used twice`,
		}},
		{"bad scope", "      jwks_file: good.json\n      scopes: [system/Task.rs, patient/Task.read, system/Task.ur, \"system/Task.rs?status=requested\"]\n", []string{
			`pathway.yaml:11:`, `partners[1].api.scopes[1]: "patient/Task.read" is not a SMART system scope`,
			`partners[1].api.scopes[2]: "system/Task.ur"`, `partners[1].api.scopes[3]`,
		}},
		{"scopes without keys", "      scopes: [system/Task.rs]\n", []string{"partners[1].api: client_id and scopes are for SMART access tokens"}},
		{"unknown key", "      jwks_file: good.json\n      jwks_url: https://x\n", []string{`partners[1].api.jwks_url: unknown key "jwks_url"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(file, []byte(api(tc.api)))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("problems quote key material:\n%v", err)
			}
		})
	}
	t.Run("client ids are unique", func(t *testing.T) {
		y := strings.Replace(api("      jwks_file: good.json\n      client_id: clinic-b\n"), "    endpoint: https://clinic.example/fhir\n", "    endpoint: https://clinic.example/fhir\n    api: {jwks_file: good.json}\n", 1)
		_, err := ParseConfig(file, []byte(y))
		if err == nil || !strings.Contains(err.Error(), `partners[1].api.client_id: client id "clinic-b" is partner "clinic-b"'s too`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestParseScope(t *testing.T) {
	for s, want := range map[string]Scope{
		"system/Task.rs": {"Task", "rs"}, "system/Task.u": {"Task", "u"}, "system/*.read": {"*", "rs"},
		"system/Task.write": {"Task", "cud"}, "system/Task.*": {"Task", "cruds"}, "system/AuditEvent.s": {"AuditEvent", "s"},
	} {
		if got, ok := ParseScope(s); !ok || got != want {
			t.Errorf("ParseScope(%q) = %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "system/Task.", "system/Task.sr", "system/Task.rr", "patient/Task.rs", "user/*.read", "system/task.rs", "system/Task.rs?status=x", "launch", "system/Task.x"} {
		if got, ok := ParseScope(s); ok {
			t.Errorf("ParseScope(%q) = %v, want not a scope", s, got)
		}
	}
	rs, _ := ParseScope("system/Task.rs")
	r, _ := ParseScope("system/Task.r")
	u, _ := ParseScope("system/Task.u")
	all, _ := ParseScope("system/*.read")
	if !rs.Covers(r) || rs.Covers(u) || r.Covers(rs) || !all.Covers(rs) || rs.Covers(all) {
		t.Error("Covers is wrong")
	}
}
