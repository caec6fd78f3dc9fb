package mappings

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestReferralLogValueShowsBundleNotRecordID(t *testing.T) {
	r := Referral{SourceSystem: "https://ngo-a.example/cases", RecordID: "R-2026-0101"}
	r.Patient.Identifier = "C-5521"
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("converted", "referral", r)
	out := buf.String()
	for _, secret := range []string{"R-2026-0101", "C-5521"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q: %s", secret, out)
		}
	}
	b, err := Build(Referral{SourceSystem: r.SourceSystem, RecordID: r.RecordID, Service: Service{Categories: []Code{{Text: "x"}}, Requester: "ngo-a"}})
	want := "referral.bundle=Bundle/" + r.BundleID()
	if !strings.Contains(out, want) {
		t.Errorf("log %q lacks %q", out, want)
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.GetId().GetValue() != r.BundleID() {
		t.Errorf("BundleID %s, Build gave %s", r.BundleID(), b.GetId().GetValue())
	}
}
