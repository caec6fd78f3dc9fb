package exchange

import (
	"context"
	"fmt"
	"slices"
	"strings"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

// pageViews holds what the views of one page of Tasks read, read once for
// the page: the patients' stored resources and their stored consents, in
// one query each instead of one per view. A view of a patient not on the
// page, or of a bundle that holds a Consent, reads the store as ViewFor
// does. The views decide exactly as ViewFor's would at that moment.
type pageViews struct {
	p        *Pipeline
	loaded   map[string]bool // "Patient/id" read for the page
	patients map[string]store.Resource
	byPt     map[string][]*conpb.Consent
	inputsOf map[string][]audit.Input
}

// loadPageViews reads the patients (references "Patient/id") and their
// consents for the views of a page.
func (p *Pipeline) loadPageViews(ctx context.Context, patients []string) (*pageViews, error) {
	pv := &pageViews{p: p, loaded: map[string]bool{}, patients: map[string]store.Resource{},
		byPt: map[string][]*conpb.Consent{}, inputsOf: map[string][]audit.Input{}}
	var refs, ids []string
	for _, ref := range patients {
		id, ok := strings.CutPrefix(ref, "Patient/")
		if !ok || id == "" || pv.loaded[ref] {
			continue
		}
		pv.loaded[ref] = true
		refs = append(refs, ref)
		ids = append(ids, id)
	}
	if len(refs) == 0 {
		return pv, nil
	}
	pts, err := p.Store.GetMany(ctx, "Patient", ids)
	if err != nil {
		return nil, err
	}
	for id, r := range pts {
		pv.patients["Patient/"+id] = r
	}
	byPatient, err := p.Store.CurrentOfPatients(ctx, "Consent", refs)
	if err != nil {
		return nil, err
	}
	// As storedConsents reads them (its bundle holding no Consent).
	for ref, rs := range byPatient {
		for _, r := range rs {
			if r.Format != FormatJSON {
				continue
			}
			cr, err := ParseStored(r)
			if err != nil {
				return nil, err
			}
			c := cr.GetConsent()
			if c == nil {
				return nil, fmt.Errorf("stored %s does not parse as a Consent", r.Ref())
			}
			pv.byPt[ref] = append(pv.byPt[ref], c)
			pv.inputsOf[ref] = append(pv.inputsOf[ref], audit.Input{Ref: audit.Ref(r.Type, r.ID, r.Version), Hash: r.Hash})
		}
	}
	return pv, nil
}

func (pv *pageViews) patient(ctx context.Context, ref string) (store.Resource, bool, error) {
	if !pv.loaded[ref] {
		return (&storeViews{p: pv.p}).patient(ctx, ref)
	}
	r, ok := pv.patients[ref]
	return r, ok, nil
}

func (pv *pageViews) consents(ctx context.Context, patient string, b *rpb.Bundle) ([]*conpb.Consent, []audit.Input, error) {
	holdsConsent := false
	for _, e := range b.GetEntry() {
		if e.GetResource().GetConsent() != nil {
			holdsConsent = true
			break
		}
	}
	if patient == "" || !pv.loaded[patient] || holdsConsent {
		return (&storeViews{p: pv.p}).consents(ctx, patient, b)
	}
	// Clipped: a caller appending to them cannot change another's.
	return slices.Clip(pv.byPt[patient]), slices.Clip(pv.inputsOf[patient]), nil
}
