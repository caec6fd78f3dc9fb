package exchange

import (
	"context"
	"fmt"
	"slices"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// PurposeFor is the purpose of use a partner receives a patient's data
// under when it reads it on the API or gets a Task update: the purpose of
// the first route that sends to it, else (a partner that only refers) the
// first purpose of its agreement. "" when it has neither.
func (cfg *Config) PurposeFor(partner string) string {
	for _, r := range cfg.Routes {
		if slices.Contains(r.To, partner) {
			if r.Purpose == "" {
				return "COC" // a route's default
			}
			return r.Purpose
		}
	}
	if p := cfg.Policy.Partner(partner); p != nil && len(p.Agreement.Purposes) > 0 {
		return p.Agreement.Purposes[0]
	}
	return ""
}

// View is what one partner may see of some of a patient's resources now.
type View struct {
	// Resources are the permitted resources, filtered (elements removed or
	// masked as the decision requires), by "Type/id".
	Resources map[string]*rpb.ContainedResource
	// Decision is the decision they were filtered under.
	Decision policy.Decision
	// Purpose is the purpose of use decided for.
	Purpose string
}

// ViewFor filters stored resources of one patient for partner, under the
// patient's stored consents as they are now and the partner's agreement:
// the partner API shows a partner only this (a revocation takes effect at
// the next read). patient is "Patient/id" ("" when the resources are
// about nobody: then no consent applies and the base policy decides).
//
// referrer says the partner is the one that referred the patient (the
// Task's requester, the source of the record): it holds the case the
// consent was given to, so the consents' silence does not hide its own
// referral from it (the base policy is opt-out for it). A provision that
// denies it still does, the immigration rule still applies, and its
// agreement still limits what it sees of what others added (an outcome
// note with clinical detail, say).
func (p *Pipeline) ViewFor(ctx context.Context, partner, patient string, rs []store.Resource, referrer bool) (View, error) {
	v, _, err := p.viewFrom(ctx, &storeViews{p: p}, partner, patient, rs, referrer)
	return v, err
}

// viewed is what a view was decided on, for the audit log: the bundle
// filtered (as it was before filtering), the stored consents that decided
// with it and the time decided for.
type viewed struct {
	Bundle   *rpb.Bundle
	Consents []audit.Input
	At       time.Time
}

// viewSource gives a view the patient's stored resource and consents:
// read from the store (ViewFor), or read once for a page of Tasks.
type viewSource interface {
	// patient returns the stored resource of ref ("Type/id"), false
	// when there is none.
	patient(ctx context.Context, ref string) (store.Resource, bool, error)
	// consents returns what Pipeline.storedConsents(ctx, patient, b,
	// true) returns.
	consents(ctx context.Context, patient string, b *rpb.Bundle) ([]*conpb.Consent, []audit.Input, error)
}

// storeViews reads views' inputs from the store: the patient's resource
// and its consents in one round trip (GetAndSearch), as a view reads the
// patient and then the patient's consents. Use one per view.
type storeViews struct {
	p *Pipeline
	// read is the patient whose consents were read with it, consentRows
	// what they were.
	read        string
	consentRows []store.Resource
}

func (sv *storeViews) patient(ctx context.Context, ref string) (store.Resource, bool, error) {
	typ, id := splitRef(ref)
	r, found, consents, err := sv.p.Store.GetAndSearch(ctx, typ, id, consentsOf(ref))
	if err != nil {
		return store.Resource{}, false, err
	}
	sv.read, sv.consentRows = ref, consents
	return r, found, nil
}

func (sv *storeViews) consents(ctx context.Context, patient string, b *rpb.Bundle) ([]*conpb.Consent, []audit.Input, error) {
	if patient != "" && patient == sv.read {
		return consentsFrom(sv.consentRows, b, true)
	}
	return sv.p.storedConsents(ctx, patient, b, true)
}

// viewFrom is ViewFor with its inputs read from src; it also returns what
// was decided on (Bundle nil when no purpose is configured: nothing was
// decided).
func (p *Pipeline) viewFrom(ctx context.Context, src viewSource, partner, patient string, rs []store.Resource, referrer bool) (View, viewed, error) {
	v := View{Resources: map[string]*rpb.ContainedResource{}}
	pp := p.Config.Policy.Partner(partner)
	if pp == nil {
		return v, viewed{}, fmt.Errorf("partner %s is not in the configuration", partner)
	}
	v.Purpose = p.Config.PurposeFor(partner)
	if v.Purpose == "" {
		v.Decision = policy.NewDecision(policy.Deny, "No purpose of use is configured for "+partner+".")
		return v, viewed{}, nil
	}
	b := &rpb.Bundle{Type: &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_COLLECTION}}
	seen := map[string]bool{}
	add := func(r store.Resource) error {
		if seen[r.Ref()] || r.Format != FormatJSON {
			return nil
		}
		seen[r.Ref()] = true
		cr, err := ParseStored(r)
		if err != nil {
			return err
		}
		e := &rpb.Bundle_Entry{Resource: cr}
		if fhir.IsUUID(r.ID) {
			e.FullUrl = &dpb.Uri{Value: fhir.FullURL(r.ID)}
		}
		b.Entry = append(b.Entry, e)
		return nil
	}
	if patient != "" {
		pr, ok, err := src.patient(ctx, patient)
		if err != nil {
			return v, viewed{}, err
		}
		if ok {
			if err := add(pr); err != nil {
				return v, viewed{}, err
			}
		}
	}
	for _, r := range rs {
		if err := add(r); err != nil {
			return v, viewed{}, err
		}
	}
	consents, inputs, err := src.consents(ctx, patient, b)
	if err != nil {
		return v, viewed{}, err
	}
	at := p.now()
	req := policy.Request{Partner: pp, Agreement: &pp.Agreement, Purpose: v.Purpose, At: at, Base: p.Config.Policy.Network.BasePolicy}
	if referrer {
		req.Base = policy.OptOut
	}
	out, dec := p.Engine.Filter(req, b, consents...)
	v.Decision = dec
	for _, e := range out.GetEntry() {
		if r := e.GetResource(); r != nil {
			v.Resources[fhir.Key(fhir.Unwrap(r))] = r
		}
	}
	return v, viewed{Bundle: b, Consents: inputs, At: at}, nil
}

// splitRef splits "Type/id".
func splitRef(ref string) (string, string) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, ""
}
