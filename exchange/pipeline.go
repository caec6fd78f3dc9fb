package exchange

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// FormatJSON is the store format of resources the pipeline writes: FHIR
// JSON as fhir.Marshal writes it.
const FormatJSON = "json"

// KindTransaction is the outbox kind of a referral: a transaction Bundle,
// labelled and not yet filtered (it is filtered when sent).
const KindTransaction = "transaction"

// KindReferrerUpdate is the outbox kind of a Task change sent back to the
// partner that referred: a transaction Bundle decided for it as the
// referrer (Pipeline.ViewFor).
const KindReferrerUpdate = "referrer-update"

// Pipeline ingests referral bundles: it labels them, routes them, decides
// for each target under the patient's consents and the target's agreement,
// and writes the resources, the routing and one outbox message per
// permitted target in one transaction.
type Pipeline struct {
	Store  *store.Store
	Config *Config
	Engine *policy.Engine
	Now    func() time.Time
	Logger *slog.Logger
	// Audit, when set, logs every decision in the transaction that acts
	// on it (ingest here, send time in Prepare and the Deliverer).
	Audit *Auditor
	// GroupSize is the most referrals IngestBatch writes in one
	// transaction; 0 means MaxGroup.
	GroupSize int
	// TakeBundles lets Ingest and IngestBatch label the bundles handed to
	// them in place instead of labelling copies: set it when each bundle
	// is made for the pipeline and not read again by the caller (pathway
	// ingest converts a record, hands its bundle over and drops it). A
	// copy of a referral's bundle is a tenth of the CPU of its ingest.
	TakeBundles bool
}

// IngestResult says what became of one referral.
type IngestResult struct {
	ServiceRequest string
	Risk           Risk
	// Routes are the chosen targets with their reasons.
	Routes []Route
	// Unroutable says why no partner could take it (held, not dropped).
	Unroutable string
	// Decisions holds each target's decision.
	Decisions map[string]policy.Decision
	// Enqueued counts new outbox messages; Unchanged those already there
	// (a re-ingest of the same record); Held the targets whose decision
	// did not permit a send: their messages wait for a consent that
	// permits them (Pipeline.ReleaseHeld).
	Enqueued, Unchanged, Held int
}

// now is the decision time, in UTC to the microsecond: the audit log's
// precision, so that a verifier re-deriving a decision decides for the
// same instant.
func (p *Pipeline) now() time.Time {
	t := time.Now()
	if p.Now != nil {
		t = p.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (p *Pipeline) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Ingest runs one referral transaction Bundle (as a mapping makes it)
// through the pipeline. source is the partner or connector it came from.
// The input bundle is not changed (unless TakeBundles).
func (p *Pipeline) Ingest(ctx context.Context, source string, b *rpb.Bundle) (IngestResult, error) {
	pl, err := p.label(source, b)
	if err != nil {
		return IngestResult{}, err
	}
	if pl.capacity() {
		open, err := p.Store.OpenReferrals(ctx, pl.ownTasks()...)
		if err != nil {
			return pl.res, err
		}
		pl.place(p.Config.Routing, open)
	} else {
		pl.place(p.Config.Routing, nil)
	}
	if err := p.decide(ctx, pl, p.now()); err != nil {
		return pl.res, err
	}
	err = p.Store.WithTx(ctx, func(tx *store.Tx) error { return p.writeOne(ctx, tx, pl) })
	if err != nil {
		return pl.res, fmt.Errorf("ingesting %s: %w", pl.facts.ServiceRequest, err)
	}
	p.ingested(ctx, pl)
	return pl.res, nil
}

// ingestPlan is one referral on its way through Ingest: labelled, then
// placed, then decided for each target, then written. Everything but the
// write is done outside the transaction, so that IngestBatch can do it for
// many referrals at once.
type ingestPlan struct {
	source   string
	facts    Facts
	labelled *rpb.Bundle
	cands    []Candidate
	purposes map[string]string
	placed   Decision
	patient  string
	now      time.Time
	storedIn []audit.Input
	sends    []send
	rows     []store.Resource
	routing  store.Routing
	res      IngestResult
	// For IngestBatch: placed at least once; its new Tasks counted
	// against the capacities of the referrals after it.
	placedOnce, counted bool
	// For IngestBatch: the patient's stored consents, read for the whole
	// group in one query (consentsRead), as storedConsents reads them.
	consentRows  []store.Resource
	consentsRead bool
	// release: once written, the messages held for the patient are
	// re-decided (markReleases).
	release bool
}

// send is what goes to one target: the decision and the bytes decided on
// (its own copy, with the Task addressed to it), queued when permitted and
// held otherwise.
type send struct {
	partner, purpose string
	decided          []byte   // the bundle decided on, as sent to the outbox
	hash             [32]byte // of decided, when audited
	key              string
	decision         policy.Decision
}

// label reads the referral's facts and labels a copy of it. It reads
// nothing from the store.
func (p *Pipeline) label(source string, b *rpb.Bundle) (*ingestPlan, error) {
	pl := &ingestPlan{source: source}
	facts, err := FactsOf(b)
	if err != nil {
		return pl, err
	}
	if facts.RequesterOrg == "" {
		facts.RequesterOrg = source
	}
	pl.facts = facts
	pl.res.ServiceRequest = facts.ServiceRequest
	labelled := b
	if !p.TakeBundles {
		labelled = proto.Clone(b).(*rpb.Bundle)
	}
	for _, e := range labelled.GetEntry() {
		if e.GetResource() != nil {
			p.Engine.Labeller().Apply(e.GetResource())
		}
		// The Task's requester is the partner that sent the referral: it
		// follows it, may cancel it and records the patient's consent (a
		// practitioner named by the record stays on the ServiceRequest).
		if t := e.GetResource().GetTask(); t != nil && source != "" {
			t.Requester = fhir.Ref("Organization", source)
		}
	}
	pl.labelled = labelled
	pl.patient = patientRef(labelled)
	pl.cands, pl.purposes = p.Config.Candidates(source, facts.Services)
	return pl, nil
}

// capacity reports whether a candidate has a capacity, so that placing
// the referral needs the partners' open referrals counted.
func (pl *ingestPlan) capacity() bool {
	for _, c := range pl.cands {
		if c.Service.Capacity > 0 {
			return true
		}
	}
	return false
}

// ownTasks are the ids of the Tasks the referral has or would make: a
// re-ingest must not count them against the capacity they hold.
func (pl *ingestPlan) ownTasks() []string { return ownTaskIDs(pl.labelled, pl.cands) }

// place routes the referral; open holds the open referrals by owner
// reference when capacity() (nil otherwise).
func (pl *ingestPlan) place(rules RoutingRules, open map[string]int) {
	for i := range pl.cands {
		pl.cands[i].Open = open["Organization/"+pl.cands[i].Partner]
	}
	pl.placed = rules.Place(pl.facts, pl.cands)
}

// decide makes each target's copy and decides for it under the patient's
// stored consents and the target's agreement, and makes the rows to
// store. It reads the store (consents, stored Tasks) but writes nothing.
func (p *Pipeline) decide(ctx context.Context, pl *ingestPlan, now time.Time) error {
	placed := pl.placed
	pl.res.Risk, pl.res.Routes, pl.res.Unroutable = placed.Risk, placed.Routes, placed.Unroutable
	pl.now = now
	// The record's own Consent is the source's latest word: it decides
	// with the patient's other stored consents.
	var stored []*conpb.Consent
	var storedIn []audit.Input
	var err error
	if pl.consentsRead {
		stored, storedIn, err = consentsFrom(pl.consentRows, pl.labelled, false)
	} else {
		stored, storedIn, err = p.storedConsents(ctx, pl.patient, pl.labelled, false)
	}
	if err != nil {
		return err
	}
	pl.storedIn = storedIn
	toStore := pl.labelled
	pl.res.Decisions = map[string]policy.Decision{}
	for i, r := range placed.Routes {
		partner := p.Config.Policy.Partner(r.Partner)
		if partner == nil {
			return fmt.Errorf("route to %s: not a partner of the configuration", r.Partner)
		}
		copyFor := retarget(pl.labelled, r.Partner, i == 0, r.Urgent)
		// A Task the partners already work on is not sent again: a re-sent
		// referral must not reset it at the partner (the store keeps it too).
		if copyFor, err = p.withoutStoredTasks(ctx, copyFor); err != nil {
			return err
		}
		purpose := pl.purposes[r.Partner]
		req := policy.Request{Partner: partner, Agreement: &partner.Agreement, Purpose: purpose, At: now, Base: p.Config.Policy.Network.BasePolicy}
		_, dec := p.Engine.Filter(req, copyFor, stored...)
		pl.res.Decisions[r.Partner] = dec
		// Every target's bundle is kept: what is not permitted now is held
		// until a consent permits it (Pipeline.ReleaseHeld).
		s := send{partner: r.Partner, purpose: purpose, decision: dec}
		if s.decided, err = fhir.Marshal(copyFor); err != nil {
			return fmt.Errorf("encoding the bundle for %s: %w", r.Partner, err)
		}
		if p.Audit != nil {
			s.hash = sha256.Sum256(s.decided)
		}
		s.key = messageKey(s.partner, s.purpose, pl.source, s.decided)
		pl.sends = append(pl.sends, s)
		if i == 0 {
			toStore = copyFor
		} else {
			// Extra targets get their own Task: store it too.
			toStore = withTaskOf(toStore, copyFor)
		}
	}
	if pl.rows, err = storeRows(toStore, pl.source); err != nil {
		return err
	}
	pl.routing = store.Routing{ServiceRequest: pl.facts.ServiceRequest, Source: pl.source, Risk: placed.Risk.String(), Unroutable: placed.Unroutable != "", Reason: placed.Unroutable}
	for _, r := range placed.Routes {
		pl.routing.Targets = append(pl.routing.Targets, r.Partner)
	}
	return nil
}

// write writes the referrals' routings, their outbox messages and, with
// an audit log, the log's entries of their decisions in tx, after their
// rows (what guard let through): a group of referrals keeps its decided
// bundles with one locked read and logs its decisions with one append.
// With the log, a message names the kept version of the bundle decided on
// as its payload instead of holding a second copy of the bytes.
func (p *Pipeline) write(ctx context.Context, tx *store.Tx, plans []*ingestPlan) error {
	var decided []DecisionRecord
	for _, pl := range plans {
		if err := tx.PutRouting(ctx, pl.routing); err != nil {
			return fmt.Errorf("ingesting %s: %w", pl.facts.ServiceRequest, err)
		}
		if p.Audit == nil {
			continue
		}
		for _, s := range pl.sends {
			decided = append(decided, DecisionRecord{
				Exchange: exchangeID(s.key), ServiceRequest: pl.facts.ServiceRequest, Patient: pl.patient,
				Partner: s.partner, Purpose: s.purpose, At: pl.now, Decision: s.decision,
				Decided: s.decided, DecidedHash: s.hash, DecidedID: decidedID(pl.facts.ServiceRequest, s.partner, s.purpose), Consents: pl.storedIn,
			})
		}
	}
	var kept []audit.Input // by send, in the order of decided
	if p.Audit != nil && len(decided) > 0 {
		var err error
		if kept, err = keepBundles(ctx, tx, decided); err != nil {
			return err
		}
	}
	// The messages of all the plans in one batch, in order: a key
	// already queued, or earlier in the batch, is left as it is.
	var ms []store.Message
	var of []*ingestPlan // the plan of each message
	k := 0
	// The streams whose last send here is permitted: what they held is
	// superseded (a stream whose last version is held keeps it).
	lastSent := map[string]bool{}
	for _, pl := range plans {
		pl.res.Enqueued, pl.res.Unchanged, pl.res.Held = 0, 0, 0
		for _, s := range pl.sends {
			m := store.Message{
				Key: s.key, Partner: s.partner, Purpose: s.purpose, Kind: KindTransaction, Payload: s.decided,
				Stream: referralStream(pl.facts.ServiceRequest, s.partner),
			}
			if kept != nil {
				m.Payload, m.PayloadRef = nil, kept[k].Ref
				k++
			}
			if !s.decision.Permitted() {
				if pl.patient == "" {
					continue // no consent of anyone can permit it later
				}
				if err := tx.Hold(ctx, store.Held{Message: m, Patient: pl.patient, Reason: trailOf(s.decision)}); err != nil {
					return fmt.Errorf("ingesting %s: %w", pl.facts.ServiceRequest, err)
				}
				pl.res.Held++
				lastSent[m.Stream] = false
				continue
			}
			lastSent[m.Stream] = true
			ms, of = append(ms, m), append(of, pl)
		}
	}
	var sent, held []string
	for stream, ok := range lastSent {
		if ok {
			sent = append(sent, stream)
		} else {
			held = append(held, stream)
		}
	}
	// Emptied before the new versions are queued: a release of what a
	// slot held (ReleaseHeld, in another transaction) then either comes
	// first, and its older version is queued before these, or finds the
	// slot empty; never an older version queued after a newer one.
	slices.Sort(sent) // the same statement for the same group
	if err := tx.Unhold(ctx, sent); err != nil {
		return err
	}
	created, err := tx.EnqueueMany(ctx, ms)
	if err != nil {
		if len(plans) == 1 {
			return fmt.Errorf("ingesting %s: %w", plans[0].facts.ServiceRequest, err)
		}
		return fmt.Errorf("ingesting %d referrals: %w", len(plans), err)
	}
	for i, m := range ms {
		if created[m.Key] {
			delete(created, m.Key) // a key twice: queued by the first
			of[i].res.Enqueued++
		} else {
			of[i].res.Unchanged++
		}
	}
	if err := p.markReleases(ctx, tx, plans, held); err != nil {
		return err
	}
	if p.Audit == nil {
		return nil
	}
	return p.Audit.logDecided(ctx, tx, decided, kept)
}

// markReleases marks the plans that record an active Consent of a
// patient who has messages held by other referrals (or by older versions
// of these): once committed, those are re-decided (releaseAfter). held
// are the streams this write has just held, decided under the same
// consents already.
func (p *Pipeline) markReleases(ctx context.Context, tx *store.Tx, plans []*ingestPlan, held []string) error {
	var patients []string
	for _, pl := range plans {
		pl.release = false
		if pl.patient == "" {
			continue
		}
		for _, r := range pl.rows {
			if r.Type == "Consent" && r.Status == "active" {
				patients = append(patients, pl.patient)
				break
			}
		}
	}
	if len(patients) == 0 {
		return nil
	}
	slices.Sort(patients)
	patients = slices.Compact(patients)
	slices.Sort(held)
	waiting, err := tx.HeldPatients(ctx, patients, held)
	if err != nil {
		return err
	}
	wait := map[string]bool{}
	for _, w := range waiting {
		wait[w] = true
	}
	for _, pl := range plans {
		if wait[pl.patient] {
			pl.release = true
			delete(wait, pl.patient) // once a patient
		}
	}
	return nil
}

// releaseAfter re-decides, after the commit of pl, the messages held for
// its patient when pl recorded a consent of theirs (markReleases). The
// referral is ingested whatever happens here: what fails stays held and
// is re-decided with the next consent recorded.
func (p *Pipeline) releaseAfter(ctx context.Context, pl *ingestPlan) {
	if !pl.release {
		return
	}
	if _, err := p.ReleaseHeld(ctx, pl.patient); err != nil {
		p.logger().LogAttrs(ctx, slog.LevelError, "releasing held referrals", slog.String("ref", pl.facts.ServiceRequest), slog.String("error", err.Error()))
	}
}

// writeOne writes one referral in tx: its guard, its rows and the audit
// entries of its decisions.
func (p *Pipeline) writeOne(ctx context.Context, tx *store.Tx, pl *ingestPlan) error {
	kept, err := p.guard(ctx, tx, pl.rows, pl.source)
	if err != nil {
		return err
	}
	if err := tx.PutBatch(ctx, kept); err != nil {
		return err
	}
	return p.write(ctx, tx, []*ingestPlan{pl})
}

// ingested tells the audit log's checkpointer and the log that a referral
// was committed.
func (p *Pipeline) ingested(ctx context.Context, pl *ingestPlan) {
	p.releaseAfter(ctx, pl)
	if p.Audit != nil && p.Audit.Notify != nil {
		p.Audit.Notify()
	}
	p.logger().LogAttrs(ctx, slog.LevelInfo, "ingested referral", slog.String("ref", pl.facts.ServiceRequest),
		slog.String("risk", pl.placed.Risk.String()), slog.Int("routes", len(pl.placed.Routes)), slog.Int("enqueued", pl.res.Enqueued))
}

// ErrForeignReferral is returned (wrapped) by Ingest when a referral would
// write over resources another source sent: its ids collide with theirs.
// Nothing of it is written.
var ErrForeignReferral = errors.New("the referral's ids are those of resources another source sent")

// guard decides, inside the ingest transaction, which rows a referral
// writes, so that a re-ingest (or another source) never undoes what the
// partners did:
//
//   - a resource another source sent is never written over: the whole
//     referral is refused (ErrForeignReferral);
//   - a stored Task is kept as it is: its status, notes and outputs belong
//     to the partners now, and only the state machine changes them;
//   - a stored Consent that is no longer active (revoked, rejected) is not
//     made active again by a re-ingest of an older record: a new consent
//     needs a new Consent (one only ever proposed or drafted becomes
//     active; one paused on the API, proposed again after being active,
//     stays paused);
//   - a stored active Consent is not set back to proposed by a record that
//     only proposes one (a clinic's referral sent again after the person's
//     consent was recorded on the API).
func (p *Pipeline) guard(ctx context.Context, tx *store.Tx, rows []store.Resource, source string) ([]store.Resource, error) {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Ref()
	}
	heads, err := tx.Heads(ctx, keys)
	if err != nil {
		return nil, err
	}
	paused, err := pausedConsents(ctx, tx, heads, rows)
	if err != nil {
		return nil, err
	}
	return guardHeads(heads, rows, source, paused)
}

// pausedConsents returns the Consents of rows that a record would make
// active while the stored one is proposed or draft after having been
// active (set back on the API to pause sharing): those stand. One only
// proposed or drafted since it was first written may become active.
func pausedConsents(ctx context.Context, tx *store.Tx, heads map[string]store.Head, rows []store.Resource) (map[string]bool, error) {
	var paused map[string]bool
	for _, r := range rows {
		cur, ok := heads[r.Ref()]
		if !ok || r.Type != "Consent" || r.Status != "active" || cur.Version < 2 || cur.Status != "proposed" && cur.Status != "draft" {
			continue
		}
		was, err := tx.EverStatus(ctx, "Consent", r.ID, "active")
		if err != nil {
			return nil, err
		}
		if was {
			if paused == nil {
				paused = map[string]bool{}
			}
			paused[r.Ref()] = true
		}
	}
	return paused, nil
}

// guardHeads is guard with the stored heads of the rows read.
func guardHeads(heads map[string]store.Head, rows []store.Resource, source string, paused map[string]bool) ([]store.Resource, error) {
	kept := make([]store.Resource, 0, len(rows))
	for _, r := range rows {
		cur, ok := heads[r.Ref()]
		switch {
		case !ok:
			kept = append(kept, r)
		case r.Type == "Task":
			// Kept (its Source is whoever changed it last).
		case cur.Source != source:
			return nil, fmt.Errorf("%s: %w", r.Ref(), ErrForeignReferral)
		case r.Type == "Consent" && cur.Status != "active" && cur.Status != "proposed" && cur.Status != "draft":
			// A revocation (or a refusal) stands, whatever the record says.
		case r.Type == "Consent" && r.Status == "active" && paused[r.Ref()]:
			// So does a consent set back to proposed on the API to pause
			// sharing (pausedConsents); one only ever proposed or drafted
			// becomes active when a record says it was given.
		case r.Type == "Consent" && cur.Status == "active" && r.Status == "proposed":
			// A record that only proposes a consent (its person's
			// consent not recorded with it) leaves the one recorded since.
		default:
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// Prepare re-decides an outbox message against the consents as they are
// now, for Deliverer.Prepare: the bundle's Consent entries are replaced by
// their current versions, the patient's other current consents count too,
// and the result is filtered for the partner's agreement.
func (p *Pipeline) Prepare(ctx context.Context, m store.Message) (Prepared, error) {
	r := fhir.Parse(m.Payload)
	if !r.Valid() || r.Resource.GetBundle() == nil {
		return Prepared{}, fmt.Errorf("outbox message %d does not hold a valid Bundle", m.ID)
	}
	b := r.Resource.GetBundle()
	partner := p.Config.Policy.Partner(m.Partner)
	if partner == nil {
		return Prepared{Withhold: "partner " + m.Partner + " is no longer in the configuration"}, nil
	}
	patient := patientRef(b)
	if patient == "" {
		// Fail closed: without the patient, their consents cannot decide.
		return Prepared{Withhold: "the message names no patient: the patient's consents cannot be checked"}, nil
	}
	stored, storedIn, err := p.storedConsents(ctx, patient, b, true)
	if err != nil {
		return Prepared{}, err
	}
	now := p.now()
	req := policy.Request{Partner: partner, Agreement: &partner.Agreement, Purpose: m.Purpose, At: now, Base: p.Config.Policy.Network.BasePolicy}
	referrer := m.Kind == KindReferrerUpdate
	if referrer {
		req.Base = policy.OptOut
	}
	out, dec := p.Engine.Filter(req, b, stored...)
	var prep Prepared
	if p.Audit != nil {
		// What was decided on: the queued bundle with its consents as
		// they are now.
		decided, err := fhir.Marshal(b)
		if err != nil {
			return Prepared{}, err
		}
		sr := serviceRequestRef(b)
		prep.Decision = &DecisionRecord{
			Exchange: exchangeID(m.Key), ServiceRequest: sr, Patient: patient, Partner: m.Partner, Purpose: m.Purpose,
			At: now, Decision: dec, Decided: decided, DecidedID: decidedID(sr, m.Partner, m.Purpose), Consents: storedIn, Referrer: referrer,
		}
	}
	if !dec.Permitted() {
		prep.Withhold = "no longer permitted: " + trailOf(dec)
		return prep, nil
	}
	if prep.Bundle, err = fhir.Marshal(out); err != nil {
		return Prepared{}, err
	}
	if prep.Decision != nil {
		for _, e := range out.GetEntry() {
			if r := e.GetResource(); r != nil {
				prep.Decision.Disclosed = append(prep.Decision.Disclosed, fhir.Key(fhir.Unwrap(r)))
			}
		}
	}
	return prep, nil
}

// withoutStoredTasks returns b without the Task entries whose Task the
// partners have changed since it was made (a stored version after the
// first: ingest never writes over a stored Task, so only the state machine
// makes one). An untouched Task stays, so a re-ingest of the same record
// sends nothing new.
func (p *Pipeline) withoutStoredTasks(ctx context.Context, b *rpb.Bundle) (*rpb.Bundle, error) {
	var keep []*rpb.Bundle_Entry
	dropped := false
	for _, e := range b.GetEntry() {
		if t := e.GetResource().GetTask(); t != nil {
			cur, err := p.Store.Get(ctx, "Task", t.GetId().GetValue())
			if err == nil && cur.Version > 1 {
				dropped = true
				continue
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
		}
		keep = append(keep, e)
	}
	if dropped {
		b.Entry = keep
	}
	return b, nil
}

// referralStream is the outbox stream of what goes to partner about one
// referral: its versions reach the partner in the order they were made.
func referralStream(serviceRequest, partner string) string {
	return serviceRequest + " Organization/" + partner
}

// decidedID is the id under which the bundle decided on for partner and
// purpose is kept (a changed referral gives a new version of it).
func decidedID(serviceRequest, partner, purpose string) string {
	return fhir.NewID("pathway-decided", serviceRequest, partner, purpose)
}

// serviceRequestRef returns "ServiceRequest/id" of the bundle's
// ServiceRequest, or "".
func serviceRequestRef(b *rpb.Bundle) string {
	for _, e := range b.GetEntry() {
		if sr := e.GetResource().GetServiceRequest(); sr != nil {
			return "ServiceRequest/" + sr.GetId().GetValue()
		}
	}
	// A Task update carries no ServiceRequest: its focus names it.
	for _, e := range b.GetEntry() {
		if t := e.GetResource().GetTask(); t != nil {
			return fhir.RefString(t.GetFocus())
		}
	}
	return ""
}

// trailOf names what decided, without personal data.
func trailOf(d policy.Decision) string {
	var parts []string
	for _, s := range d.Trail {
		parts = append(parts, s.String())
	}
	if len(parts) == 0 {
		return string(d.Effect)
	}
	return string(d.Effect) + " (" + strings.Join(parts, "; ") + ")"
}

// storedConsents returns the current stored versions of the patient's
// consents that the bundle does not hold. With replace, a Consent the
// bundle holds is replaced in place by its stored version (a revocation
// recorded since enqueue counts); without, the bundle's version stands.
//
// It also returns the stored consents that decided as audit inputs
// (those replaced into the bundle are inputs through the bundle).
func (p *Pipeline) storedConsents(ctx context.Context, patient string, b *rpb.Bundle, replace bool) ([]*conpb.Consent, []audit.Input, error) {
	if patient == "" {
		return nil, nil, nil
	}
	rs, err := p.Store.Search(ctx, consentsOf(patient))
	if err != nil {
		return nil, nil, err
	}
	return consentsFrom(rs, b, replace)
}

// consentsOf is the search for a patient's stored consents.
func consentsOf(patient string) store.Query {
	return store.Query{Type: "Consent", Patient: patient, Limit: store.MaxSearchLimit}
}

// consentsFrom is storedConsents once the patient's stored consents (rs,
// as Search returns them) are read.
func consentsFrom(rs []store.Resource, b *rpb.Bundle, replace bool) ([]*conpb.Consent, []audit.Input, error) {
	inBundle := map[string]*rpb.Bundle_Entry{}
	for _, e := range b.GetEntry() {
		if c := e.GetResource().GetConsent(); c != nil {
			inBundle[c.GetId().GetValue()] = e
		}
	}
	var extra []*conpb.Consent
	var inputs []audit.Input
	for _, r := range rs {
		if r.Format != FormatJSON {
			continue
		}
		cr, err := ParseStored(r)
		if err != nil {
			return nil, nil, err
		}
		c := cr.GetConsent()
		if c == nil {
			return nil, nil, fmt.Errorf("stored %s does not parse as a Consent", r.Ref())
		}
		if e, ok := inBundle[r.ID]; ok {
			// The record's own Consent is its source's word, except a
			// proposed one: a record that only says the person's consent
			// is not recorded yet (the fhir-referral mapping's, always)
			// does not undo the consent recorded since. guardHeads keeps
			// the stored one too.
			own := fhir.SearchFieldsOf(e.GetResource()).Status
			if !replace && !(own == "proposed" && r.Status == "active") {
				continue
			}
			stored := proto.Clone(c).(*conpb.Consent)
			// The bundle refers to its patient by fullUrl: keep that.
			stored.Patient = e.GetResource().GetConsent().GetPatient()
			e.Resource = &rpb.ContainedResource{OneofResource: &rpb.ContainedResource_Consent{Consent: stored}}
			continue
		}
		extra = append(extra, c)
		inputs = append(inputs, audit.Input{Ref: audit.Ref(r.Type, r.ID, r.Version), Hash: r.Hash})
	}
	return extra, inputs, nil
}

// patientRef returns "Patient/id" of the bundle's Patient, or "".
//
// A bundle without its Patient (a Task update whose Patient the recipient
// may not see) names the patient through the Task's for or the
// ServiceRequest's subject, so that the patient's consents still decide.
func patientRef(b *rpb.Bundle) string {
	for _, e := range b.GetEntry() {
		if pt := e.GetResource().GetPatient(); pt != nil {
			return "Patient/" + pt.GetId().GetValue()
		}
	}
	for _, e := range b.GetEntry() {
		var ref *fhir.Reference
		if t := e.GetResource().GetTask(); t != nil {
			ref = t.GetForValue()
		} else if sr := e.GetResource().GetServiceRequest(); sr != nil {
			ref = sr.GetSubject()
		}
		if ref != nil && fhir.RefType(ref) == "Patient" && fhir.RefID(ref) != "" {
			return "Patient/" + fhir.RefID(ref)
		}
	}
	return ""
}

// ownTaskIDs are the ids the referral's Tasks have, or get, in the store
// for any of the candidates: the bundle's own Task ids and those retarget
// gives them for each partner.
func ownTaskIDs(b *rpb.Bundle, cands []Candidate) []string {
	var ids []string
	for _, e := range b.GetEntry() {
		t := e.GetResource().GetTask()
		if t == nil || t.GetId().GetValue() == "" {
			continue
		}
		ids = append(ids, t.GetId().GetValue())
		for _, c := range cands {
			ids = append(ids, fhir.NewID("pathway-route", t.GetId().GetValue(), c.Partner))
		}
	}
	return ids
}

// retarget returns a copy of b for partner: the first target's Task gets
// the partner as owner when the source named none; a later target gets a
// Task of its own (a new deterministic id) owned by it. urgent raises the
// Task's priority.
func retarget(b *rpb.Bundle, partner string, first, urgent bool) *rpb.Bundle {
	out := shallowBundle(b)
	for i, e := range out.GetEntry() {
		if e.GetResource().GetTask() == nil {
			continue
		}
		// Only the Task changes: it alone is copied.
		e = proto.Clone(e).(*rpb.Bundle_Entry)
		out.Entry[i] = e
		t := e.GetResource().GetTask()
		owner := fhir.Ref("Organization", partner)
		if !first || t.GetOwner().GetOrganizationId().GetValue() != partner {
			if !first {
				id := fhir.NewID("pathway-route", t.GetId().GetValue(), partner)
				t.Id = &dpb.Id{Value: id}
				e.FullUrl = &dpb.Uri{Value: fhir.FullURL(id)}
				if req := e.GetRequest(); req != nil {
					req.Url = &dpb.Uri{Value: "Task/" + id}
				}
			}
			t.Owner = owner
		}
		if urgent && !higherPriority(t.GetPriority().GetValue().String()) {
			t.Priority = &tpb.Task_PriorityCode{Value: cpb.RequestPriorityCode_URGENT}
		}
	}
	return out
}

// shallowBundle returns a new Bundle holding b's elements and entries
// (shared, not copied) in a slice of its own: a copy whose entries can be
// replaced or dropped without touching b. Nothing the pipeline does after
// labelling changes a shared entry (policy.Filter leaves its input as it
// is; TransactionResources and fhir.Marshal copy what they change).
func shallowBundle(b *rpb.Bundle) *rpb.Bundle {
	return &rpb.Bundle{
		Id: b.Id, Meta: b.Meta, ImplicitRules: b.ImplicitRules, Language: b.Language,
		Identifier: b.Identifier, Type: b.Type, Timestamp: b.Timestamp, Total: b.Total,
		Link: b.Link, Entry: slices.Clone(b.Entry), Signature: b.Signature,
	}
}

// higherPriority reports whether an existing priority is already urgent or above.
func higherPriority(enum string) bool {
	switch enum {
	case "URGENT", "ASAP", "STAT":
		return true
	}
	return false
}

// withTaskOf returns b with the Task of other added (an extra target's
// own Task), for storing.
func withTaskOf(b, other *rpb.Bundle) *rpb.Bundle {
	out := shallowBundle(b)
	for _, e := range other.GetEntry() {
		if e.GetResource().GetTask() != nil {
			out.Entry = append(out.Entry, proto.Clone(e).(*rpb.Bundle_Entry))
		}
	}
	return out
}

// storeRows turns a transaction bundle into store rows: references
// rewritten to Type/id, JSON data, search fields.
func storeRows(b *rpb.Bundle, source string) ([]store.Resource, error) {
	entries, err := fhir.EncodeTransaction(b)
	if err != nil {
		return nil, err
	}
	rows := make([]store.Resource, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, store.Resource{
			Type: e.Type, ID: e.ID, Source: source, Format: FormatJSON, Data: e.Data,
			Patient: e.Search.Patient, Status: e.Search.Status, Owner: e.Search.Owner, Requester: e.Search.Requester,
			Hash: sha256.Sum256(e.Data), // here, on a preparing core, not in the writer
		})
	}
	return rows, nil
}
