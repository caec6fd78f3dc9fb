package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// The configuration decisions are made under is kept in the store as a
// versioned input of every decision: Basic/pathway-config, its exact
// bytes in format FormatConfig. It is never served as FHIR.
const (
	configType   = "Basic"
	configID     = "pathway-config"
	FormatConfig = "pathway.yaml"
)

// DefaultObserver names the Pathway instance in audit entries.
const DefaultObserver = "Device/pathway"

// DecisionRecord is one decision of the pipeline or the worker, for the
// audit log: references, codes, hashes and the exact bytes decided on, no
// personal data outside those bytes (which the store keeps anyway).
type DecisionRecord struct {
	// Exchange groups the entries of one exchange: the decision at
	// ingest, the decision at send time and the disclosure.
	Exchange       string
	ServiceRequest string
	Patient        string
	Partner        string
	Purpose        string
	// At is the time decided for, in UTC to the microsecond (the audit
	// log's precision, so that a verifier decides for the same instant).
	At       time.Time
	Decision policy.Decision
	// Decided is the exact Bundle decided on (labelled, addressed to the
	// partner, before filtering); it is kept as Bundle/DecidedID.
	Decided   []byte
	DecidedID string
	// DecidedHash, when not zero, is the SHA-256 of Decided, computed
	// where Decided was made (the ingest's preparing goroutines) instead
	// of by the transaction that keeps it.
	DecidedHash [32]byte
	// Consents are the patient's stored consents that decided with the
	// bundle's own, as versioned inputs.
	Consents []audit.Input
	// Attempt distinguishes the records of one message at send time
	// ("message id/attempt"); empty at ingest.
	Attempt string
	// Disclosed lists "Type/id" of the resources the filtered bundle holds
	// (send time only, when permitted).
	Disclosed []string
	// Referrer says the partner was decided for as the referral's referrer
	// (base policy opt-out for it; see Pipeline.ViewFor).
	Referrer bool
}

// referrerStep opens the trail of a decision made for the referrer of a
// referral, so that a verifier decides it the same way.
const referrerStep = "referrer#base_policy=opt-out"

// exchangeID is the exchange of a message key (the idempotency key of
// the outbox, which a decision without a message computes the same way).
func exchangeID(key string) string { return "x-" + key[:40] }

// messageKey is the outbox idempotency key of a bundle for partner and
// purpose from source.
func messageKey(partner, purpose, source string, payload []byte) string {
	h := sha256.New()
	h.Write([]byte(partner + "\x00" + purpose + "\x00" + source + "\x00"))
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil))
}

// Auditor writes decisions and disclosures to the audit log inside the
// transactions that make them: the ingest transaction (with the resources
// and the outbox message) and the transaction that settles a delivery.
type Auditor struct {
	// Observer is the recording instance ("Device/pathway" by default).
	Observer string
	// Site is the network's site name, if any.
	Site string
	// Config is the exact configuration the decisions are made under
	// (Config.Raw); it is stored as a versioned input of each decision.
	Config []byte
	// Notify, when set, is told after entries are appended (a
	// Checkpointer's Notify).
	Notify func()
}

func (a *Auditor) observer() string {
	if a.Observer != "" {
		return a.Observer
	}
	return DefaultObserver
}

// keep stores data as a versioned resource in tx and returns it as an
// audit input.
func keep(ctx context.Context, tx *store.Tx, typ, id, format, patient string, data []byte) (audit.Input, error) {
	r, err := tx.Put(ctx, store.Resource{Type: typ, ID: id, Format: format, Data: data, Patient: patient, Source: "pathway"})
	if err != nil {
		return audit.Input{}, fmt.Errorf("keeping %s/%s for the audit log: %w", typ, id, err)
	}
	return audit.Input{Ref: audit.Ref(typ, id, r.Version), Hash: r.Hash}, nil
}

// keepBundles keeps the decided bundles of recs as keep keeps each, in
// order, with one read of their heads and one batch write: a bundle whose
// bytes are those of its current version keeps that version, any other
// gets the next one (as the store's upsert numbers them; kept bundles are
// always FHIR JSON). Records of one bundle id (the Tasks of a page that
// have no focus share one) make successive versions of it, which the
// batch writes in order.
func keepBundles(ctx context.Context, tx *store.Tx, recs []DecisionRecord) ([]audit.Input, error) {
	// The rows are locked (PostgreSQL) so that the versions read are still
	// the current ones when the batch writes: a worker settling an older
	// message of the same referral writes the same Bundle ids. (A Bundle
	// not stored yet belongs to a referral no worker can have claimed.)
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.DecidedID
	}
	heads, err := tx.LockHeads(ctx, "Bundle", ids)
	if err != nil {
		return nil, fmt.Errorf("keeping the decided bundles for the audit log: %w", err)
	}
	ins := make([]audit.Input, len(recs))
	var rows []store.Resource
	for i, rec := range recs {
		hash := rec.DecidedHash
		if hash == ([32]byte{}) {
			hash = sha256.Sum256(rec.Decided)
		}
		h, ok := heads[rec.DecidedID]
		if !ok || h.Hash != hash {
			h.Version++
			h.Hash = hash
			heads[rec.DecidedID] = h // what the next record of this id follows
			rows = append(rows, store.Resource{Type: "Bundle", ID: rec.DecidedID, Format: FormatJSON, Data: rec.Decided, Patient: rec.Patient, Source: "pathway", Hash: hash})
		}
		ins[i] = audit.Input{Ref: audit.Ref("Bundle", rec.DecidedID, h.Version), Hash: hash}
	}
	if err := tx.PutBatch(ctx, rows); err != nil {
		return nil, fmt.Errorf("keeping the decided bundles for the audit log: %w", err)
	}
	return ins, nil
}

// decisionEntry builds the entry of rec, keeping its inputs in tx.
func (a *Auditor) decisionEntry(ctx context.Context, tx *store.Tx, rec DecisionRecord, prefix string) (audit.Entry, error) {
	// The decided bundle before the configuration, as an ingest keeps
	// them: transactions that take two rows in the same order never wait
	// for each other.
	bundleIn, err := keep(ctx, tx, "Bundle", rec.DecidedID, FormatJSON, rec.Patient, rec.Decided)
	if err != nil {
		return audit.Entry{}, err
	}
	cfgIn, err := a.keepConfig(ctx, tx)
	if err != nil {
		return audit.Entry{}, err
	}
	return a.entryOf(rec, prefix, cfgIn, bundleIn), nil
}

// keepConfig keeps the configuration bytes as the decisions' input.
func (a *Auditor) keepConfig(ctx context.Context, tx *store.Tx) (audit.Input, error) {
	if len(a.Config) == 0 {
		return audit.Input{}, errors.New("audit: the configuration bytes are required to keep decisions re-derivable")
	}
	return keep(ctx, tx, configType, configID, FormatConfig, "", a.Config)
}

// entryOf builds the entry of rec, whose configuration and decided bundle
// are kept as cfgIn and bundleIn.
func (a *Auditor) entryOf(rec DecisionRecord, prefix string, cfgIn, bundleIn audit.Input) audit.Entry {
	inputs := append([]audit.Input{cfgIn, bundleIn}, rec.Consents...)
	out := outcomeOf(rec.Decision)
	if rec.Referrer {
		out.Trail = append([]string{referrerStep}, out.Trail...)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", prefix, rec.Exchange, rec.Attempt, rec.Partner, rec.Purpose, out.Effect)
	for _, in := range inputs {
		h.Write([]byte(in.Ref + "\x00"))
		h.Write(in.Hash[:])
	}
	for _, s := range append(out.Obligations, out.Trail...) {
		h.Write([]byte(s + "\x00"))
	}
	e := audit.Entry{
		ID: prefix + "-" + hex.EncodeToString(h.Sum(nil))[:40], Kind: audit.KindDecision, Time: rec.At,
		Exchange: rec.Exchange, Actor: "Organization/" + rec.Partner, Patient: rec.Patient, Purpose: rec.Purpose,
		Effect: out.Effect, Obligations: out.Obligations, Trail: out.Trail, Inputs: inputs,
		Bundle: &audit.Input{Ref: "Bundle/" + rec.DecidedID, Hash: bundleIn.Hash}, Observer: a.observer(), Site: a.Site,
	}
	return e
}

// Decided logs an ingest decision in the ingest transaction. A decision
// already logged (the same exchange, inputs and outcome: a re-ingest of
// the same record) is not logged again.
func (a *Auditor) Decided(ctx context.Context, tx *store.Tx, rec DecisionRecord) error {
	return a.DecidedAll(ctx, tx, []DecisionRecord{rec})
}

// DecidedAll logs ingest decisions in the ingest transaction as Decided
// logs each of them in order, with one append for all: the configuration
// is kept once, and the decisions already logged are left out.
func (a *Auditor) DecidedAll(ctx context.Context, tx *store.Tx, recs []DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	bundleIns, err := keepBundles(ctx, tx, recs)
	if err != nil {
		return err
	}
	return a.logDecided(ctx, tx, recs, bundleIns)
}

// logDecided is DecidedAll once the decided bundles are kept (keepBundles)
// as bundleIns.
func (a *Auditor) logDecided(ctx context.Context, tx *store.Tx, recs []DecisionRecord, bundleIns []audit.Input) error {
	if len(recs) == 0 {
		return nil
	}
	cfgIn, err := a.keepConfig(ctx, tx)
	if err != nil {
		return err
	}
	entries := make([]audit.Entry, len(recs))
	for i, rec := range recs {
		entries[i] = a.entryOf(rec, "d", cfgIn, bundleIns[i])
	}
	// A decision logged before (or twice in recs) is logged once: its
	// id is checked with the log's head.
	_, err = audit.AppendNew(ctx, tx, entries...)
	return err
}

// Settled logs what the worker did with a message, in the transaction
// that settles it: the decision made at send time and, when the bundle
// was delivered, the disclosure of the exact bytes sent (kept as a
// versioned Bundle, so that a receipt and a received copy can be matched).
func (a *Auditor) Settled(ctx context.Context, tx *store.Tx, r Result) error {
	if r.Decision == nil {
		return nil
	}
	rec := *r.Decision
	rec.Attempt = fmt.Sprintf("%d/%d", r.Message.ID, r.Message.Attempts)
	entries := make([]audit.Entry, 0, 2)
	dec, err := a.decisionEntry(ctx, tx, rec, "s")
	if err != nil {
		return err
	}
	entries = append(entries, dec)
	if r.Outcome == OutcomeDelivered {
		sentID := fhir.NewID("pathway-sent", rec.ServiceRequest, rec.Partner, rec.Purpose)
		sent, err := keep(ctx, tx, "Bundle", sentID, FormatJSON, rec.Patient, r.Sent)
		if err != nil {
			return err
		}
		// The disclosed resources, at the versions their filtered copies
		// were made from, and the exact bundle sent.
		inputs := []audit.Input{sent}
		for _, key := range rec.Disclosed {
			typ, id, _ := strings.Cut(key, "/")
			res, err := tx.Get(ctx, typ, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // a resource only the bundle holds
			}
			if err != nil {
				return fmt.Errorf("disclosure of %s: %w", key, err)
			}
			inputs = append(inputs, audit.Input{Ref: audit.Ref(typ, id, res.Version), Hash: res.Hash})
		}
		h := sha256.Sum256([]byte(dec.ID + "\x00disclosure"))
		disclosure := audit.Entry{
			ID: "t-" + hex.EncodeToString(h[:])[:40], Kind: audit.KindDisclosure, Time: rec.At,
			Exchange: rec.Exchange, Actor: "Organization/" + rec.Partner, Patient: rec.Patient, Purpose: rec.Purpose,
			Inputs: inputs, Bundle: &audit.Input{Ref: "Bundle/" + sentID, Hash: sent.Hash},
			Interaction: "transaction", Endpoint: r.Endpoint, Observer: a.observer(), Site: a.Site,
		}
		entries = append(entries, disclosure)
		// The Provenance of the disclosure, kept with it.
		prov, err := disclosure.Normalized().Provenance()
		if err != nil {
			return err
		}
		data, err := fhir.Marshal(prov)
		if err != nil {
			return fmt.Errorf("encoding the Provenance of %s: %w", disclosure.ID, err)
		}
		if _, err := tx.Put(ctx, store.Resource{Type: "Provenance", ID: prov.GetId().GetValue(), Format: FormatJSON, Data: data, Patient: rec.Patient, Source: "pathway"}); err != nil {
			return fmt.Errorf("keeping the Provenance of %s: %w", disclosure.ID, err)
		}
	}
	_, err = audit.Append(ctx, tx, entries...)
	return err
}

// outcomeOf is what the audit log records of a decision: permit or deny
// (no-consent is a deny under the base policy, which the trail names),
// the codes of its obligations, and its trail as tokens.
func outcomeOf(d policy.Decision) audit.Outcome {
	out := audit.Outcome{Effect: audit.EffectDeny}
	if d.Permitted() {
		out.Effect = audit.EffectPermit
	}
	seen := map[string]bool{}
	for _, o := range d.Obligations {
		code := ""
		switch o.Action {
		case policy.Remove:
			code = "REDACT"
		case policy.Mask:
			code = "MASK"
		case policy.AttachLabel:
			if o.Label != nil {
				code = o.Label.Code
			}
		}
		if code = tokenOf(code); code != "" && !seen[code] {
			seen[code] = true
			out.Obligations = append(out.Obligations, code)
		}
	}
	for _, s := range d.Trail {
		t := s.Ref
		if s.Path != "" {
			t += "#" + s.Path
		}
		if s.Target != "" {
			t += "@" + s.Target
		}
		if s.Effect != "" {
			t += "=" + string(s.Effect)
		}
		if t = tokenOf(t); t != "" {
			out.Trail = append(out.Trail, t)
		}
	}
	slices.Sort(out.Obligations)
	return out
}

// tokenOf makes s an audit token: spaces become '.', and any other
// character the log does not take becomes '_'.
func tokenOf(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == ' ':
			b[i] = '.'
		case c < ' ' || c > '~' || c == '"' || c == '\\':
			b[i] = '_'
		}
	}
	if len(b) > 512 {
		b = b[:512]
	}
	return string(b)
}

// Rederiver re-derives logged decisions for `pathway audit verify`: from
// the logged configuration, bundle and consents only, it decides again
// for the logged partner, purpose and time.
type Rederiver struct {
	mu      sync.Mutex
	engines map[[32]byte]*rederiveEngine
}

type rederiveEngine struct {
	cfg    *policy.Config
	engine *policy.Engine
}

// NewRederiver returns a Rederiver.
func NewRederiver() *Rederiver { return &Rederiver{engines: map[[32]byte]*rederiveEngine{}} }

func (rd *Rederiver) engine(data []byte) (*rederiveEngine, error) {
	sum := sha256.Sum256(data)
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if e, ok := rd.engines[sum]; ok {
		return e, nil
	}
	cfg, err := policy.ParseConfig("logged configuration", data)
	if err != nil {
		return nil, fmt.Errorf("the logged configuration does not parse: %w", err)
	}
	engine, err := policy.NewEngine(cfg)
	if err != nil {
		return nil, fmt.Errorf("the logged configuration: %w", err)
	}
	e := &rederiveEngine{cfg: cfg, engine: engine}
	if len(rd.engines) > 64 {
		clear(rd.engines)
	}
	rd.engines[sum] = e
	return e, nil
}

// Rederive implements audit.Rederiver.
func (rd *Rederiver) Rederive(_ context.Context, d audit.Decision) (audit.Outcome, error) {
	var cfgData []byte
	var bundleData []byte
	var consents []*conpb.Consent
	for _, in := range d.Inputs {
		typ, _, _ := strings.Cut(in.Ref, "/")
		switch {
		case typ == configType && in.Format == FormatConfig:
			cfgData = in.Data
		case typ == "Bundle" && in.Format == FormatJSON:
			bundleData = in.Data
		case typ == "Consent" && in.Format == FormatJSON:
			r := fhir.Parse(in.Data)
			c := r.Resource.GetConsent()
			if c == nil {
				return audit.Outcome{}, fmt.Errorf("input %s is not a Consent", in.Ref)
			}
			consents = append(consents, c)
		default:
			return audit.Outcome{}, fmt.Errorf("input %s (format %s) is not one a decision reads", in.Ref, in.Format)
		}
	}
	if cfgData == nil || bundleData == nil {
		return audit.Outcome{}, errors.New("the decision logs no configuration or no bundle")
	}
	e, err := rd.engine(cfgData)
	if err != nil {
		return audit.Outcome{}, err
	}
	r := fhir.Parse(bundleData)
	b := r.Resource.GetBundle()
	if b == nil {
		return audit.Outcome{}, errors.New("the logged bundle does not parse as a Bundle")
	}
	id := strings.TrimPrefix(d.Entry.Actor, "Organization/")
	p := e.cfg.Partner(id)
	if p == nil {
		return audit.Outcome{}, fmt.Errorf("partner %s is not in the logged configuration", id)
	}
	req := policy.Request{Partner: p, Agreement: &p.Agreement, Purpose: d.Entry.Purpose, At: d.Entry.Time, Base: e.cfg.Network.BasePolicy}
	referrer := len(d.Entry.Trail) > 0 && d.Entry.Trail[0] == referrerStep
	if referrer {
		req.Base = policy.OptOut
	}
	_, dec := e.engine.Filter(req, b, consents...)
	out := outcomeOf(dec)
	if referrer {
		out.Trail = append([]string{referrerStep}, out.Trail...)
	}
	return out, nil
}
