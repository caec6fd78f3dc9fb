package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/server"
	"github.com/pathway-fhir/pathway/store"
)

// demoConsent is the demo's second act: a referral held for want of the
// person's consent, the consent recorded on the API by the partner that
// referred, and the referral released.
type demoConsent struct {
	Referral string `json:"referral"`
	Partner  string `json:"partner"`
	// RecordedBy is the referring partner that recorded the consent
	// (PUT /fhir/Consent/ID with its token); Status is the API's answer.
	RecordedBy string `json:"recorded_by"`
	Status     int    `json:"status"`
	// HeldBefore and HeldAfter count the held sends.
	HeldBefore int `json:"held_before"`
	HeldAfter  int `json:"held_after"`
	// Delivered says the partner holds the referral after the next
	// delivery round.
	Delivered bool `json:"delivered"`
}

// demoRecordConsent finds the send held for want of consent (a referral
// whose record only proposed one), and has the partner that referred
// record the person's consent for the held partner and purpose on
// Pathway's API, as a link worker would once the person agreed. The API
// re-decides the person's held sends at once; the next delivery round
// sends what is now permitted.
func demoRecordConsent(ctx context.Context, n *network, st *store.Store, pipe *exchange.Pipeline) (*demoConsent, error) {
	held, err := st.HeldMessages(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	var h *store.Held
	for i := range held {
		if strings.HasPrefix(held[i].Reason, "no-consent") {
			h = &held[i]
			break
		}
	}
	if h == nil {
		return nil, nil
	}
	dc := &demoConsent{Partner: h.Partner, HeldBefore: len(held)}
	dc.Referral, _, _ = strings.Cut(h.Stream, " ")
	rt, err := st.Routings(ctx, false, "", 0)
	if err != nil {
		return nil, err
	}
	for _, r := range rt {
		if r.ServiceRequest == dc.Referral {
			dc.RecordedBy = r.Source
		}
	}
	link := n.cfg.Partners[dc.RecordedBy]
	if link == nil {
		return nil, fmt.Errorf("the held referral %s came from %q, not a partner", dc.Referral, dc.RecordedBy)
	}
	cs, err := st.Search(ctx, store.Query{Type: "Consent", Patient: h.Patient})
	if err != nil || len(cs) != 1 {
		return nil, fmt.Errorf("the consents of %s: %d, %v", h.Patient, len(cs), err)
	}
	_, patientID, _ := strings.Cut(h.Patient, "/")
	ircp := fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "information recipient"))
	actor := []fhir.ProvisionActor{{Role: ircp, Reference: fhir.Ref("Organization", h.Partner)}}
	purpose := []*dpb.Coding{fhir.PurposeOfUse(h.Purpose)}
	consent, err := fhir.ConsentSpec{
		ID:         cs[0].ID,
		Status:     fhir.ConsentStatusActive,
		Patient:    fhir.Ref("Patient", patientID),
		Performer:  []*fhir.Reference{fhir.Ref("Patient", patientID)},
		DateTime:   time.Now().UTC(),
		PolicyRule: fhir.Concept("", fhir.Coding(fhir.SystemActCode, "OPTIN", "opt-in")),
		// The partner and purpose the person agreed to, and never their
		// immigration or legal-status data.
		Provision: &fhir.Provision{Type: fhir.ProvisionTypePermit, Actor: actor, Purpose: purpose, Provision: []fhir.Provision{
			{Type: fhir.ProvisionTypeDeny, SecurityLabel: []*dpb.Coding{fhir.ImmigrationLabel()}},
		}},
	}.Build()
	if err != nil {
		return nil, err
	}
	body, err := fhir.Marshal(consent)
	if err != nil {
		return nil, err
	}

	// The API, in process, with a token for the referring partner.
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(raw[:])
	link.APITokens = append(link.APITokens, sha256.Sum256([]byte(token)))
	api, err := server.New(server.Options{Store: st, Pipeline: pipe, Audit: n.audit})
	if err != nil {
		return nil, err
	}
	hs := httptest.NewServer(api)
	defer func() {
		hs.Close()
		api.Close(ctx)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, hs.URL+"/fhir/Consent/"+cs[0].ID, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := hs.Client().Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	dc.Status = resp.StatusCode
	after, err := st.HeldMessages(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	dc.HeldAfter = len(after)
	return dc, nil
}
