package policy

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// referenceEngine is NewEngine(cfg) on the reference path (Engine.reference):
// the plainer code the faster paths replaced.
func referenceEngine(t testing.TB, cfg *Config) *Engine {
	t.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.reference = true
	return e
}

// sameFilter fails when the two engines filter a Bundle differently: the
// Bundle's bytes, or the decision's JSON.
func sameFilter(t *testing.T, name string, fast, ref *Engine, req Request, b *rpb.Bundle) {
	t.Helper()
	in := proto.Clone(b)
	out1, d1 := fast.Filter(req, b)
	out2, d2 := ref.Filter(req, b)
	if !proto.Equal(in, b) {
		t.Fatalf("%s: the input changed", name)
	}
	j1, _ := json.Marshal(d1)
	j2, _ := json.Marshal(d2)
	if !bytes.Equal(j1, j2) {
		t.Fatalf("%s: decisions differ from the reference path:\n%s\n%s", name, j1, j2)
	}
	if (out1 == nil) != (out2 == nil) {
		t.Fatalf("%s: one path sent a Bundle, the other not", name)
	}
	if out1 == nil {
		return
	}
	b1, err1 := fhir.Marshal(out1)
	b2, err2 := fhir.Marshal(out2)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: %v, %v", name, err1, err2)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("%s: Bundles differ from the reference path:\n%s\n%s", name, b1, b2)
	}
}

// withDataProvisions adds to each consent of the Bundle a nested provision
// about data: one resource of the Bundle, what it refers to ("related")
// or what refers to it ("dependents"), so that decisions ask about the
// references of resources that may be withheld by type.
func withDataProvisions(r *rand.Rand, b *rpb.Bundle) {
	var keys []string
	for _, en := range b.GetEntry() {
		if res := fhir.Unwrap(en.GetResource()); res != nil {
			keys = append(keys, fhir.Key(res))
		}
	}
	meanings := []cpb.ConsentDataMeaningCode_Value{cpb.ConsentDataMeaningCode_INSTANCE,
		cpb.ConsentDataMeaningCode_RELATED, cpb.ConsentDataMeaningCode_DEPENDENTS}
	for _, en := range b.GetEntry() {
		c := en.GetResource().GetConsent()
		if c == nil || c.GetProvision() == nil || r.IntN(3) == 0 {
			continue
		}
		typ, id, _ := cutKey(keys[r.IntN(len(keys))])
		effect := cpb.ConsentProvisionTypeCode_DENY
		if r.IntN(2) == 0 {
			effect = cpb.ConsentProvisionTypeCode_PERMIT
		}
		c.Provision.Provision = append(c.Provision.Provision, &conpb.Consent_Provision{
			Type: &conpb.Consent_Provision_TypeCode{Value: effect},
			Data: []*conpb.Consent_Provision_ProvisionData{{
				Meaning:   &conpb.Consent_Provision_ProvisionData_MeaningCode{Value: meanings[r.IntN(len(meanings))]},
				Reference: fhir.Ref(typ, id)}}})
	}
}

func cutKey(key string) (typ, id string, ok bool) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

// TestFilterMatchesReferencePath holds Filter to the reference path, byte
// for byte: on the test Bundles and on generated ones (with provisions
// about data), for every partner of the test configuration and of a
// permissive one, under several purposes.
func TestFilterMatchesReferencePath(t *testing.T) {
	purposes := []string{"COC", "TREAT", "HOPERAT", "PUBHLTH"}
	var bundles []*rpb.Bundle
	names, err := filepath.Glob(filepath.Join(policyTestdata, "bundles", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no test Bundles: %v", err)
	}
	for _, n := range names {
		bundles = append(bundles, readResource(t, n).GetBundle())
	}
	cfg := testConfig(t)
	g := &gen{r: rand.New(rand.NewPCG(3, 5)), partners: cfg.Partners}
	for range 150 {
		b := g.bundle()
		withDataProvisions(g.r, b)
		bundles = append(bundles, b)
	}
	n := 0
	for _, c := range []*Config{cfg, permissiveConfig(t)} {
		fast, err := NewEngine(c)
		if err != nil {
			t.Fatal(err)
		}
		ref := referenceEngine(t, c)
		for bi, b := range bundles {
			for pi := range c.Partners {
				p := &c.Partners[pi]
				for _, purpose := range purposes {
					req := Request{Partner: p, Agreement: &p.Agreement, Purpose: purpose, At: testTime}
					sameFilter(t, p.ID+"/"+purpose+"/bundle "+itoa(bi), fast, ref, req, b)
					n++
				}
			}
		}
	}
	t.Logf("%d filters compared", n)
}

// TestDecideMatchesReferencePath does the same for Decide with data.
func TestDecideMatchesReferencePath(t *testing.T) {
	cfg := testConfig(t)
	fast, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref := referenceEngine(t, cfg)
	g := &gen{r: rand.New(rand.NewPCG(9, 1)), partners: cfg.Partners}
	for i := range 100 {
		b := g.bundle()
		withDataProvisions(g.r, b)
		var consents []*conpb.Consent
		for _, en := range b.GetEntry() {
			if c := en.GetResource().GetConsent(); c != nil {
				consents = append(consents, c)
			}
		}
		cr, _ := fhir.Wrap(b)
		p := &cfg.Partners[i%len(cfg.Partners)]
		req := Request{Partner: p, Agreement: &p.Agreement, Purpose: g.pick([]string{"COC", "TREAT"}), At: testTime}
		j1, _ := json.Marshal(fast.Decide(req, consents, cr))
		j2, _ := json.Marshal(ref.Decide(req, consents, cr))
		if !bytes.Equal(j1, j2) {
			t.Fatalf("case %d: decisions differ from the reference path:\n%s\n%s", i, j1, j2)
		}
	}
}
