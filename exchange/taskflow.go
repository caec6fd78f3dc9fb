package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// FlowBack enqueues a stored Task change for the other party of the Task
// (the requester when changedBy, a partner id, is its owner, and the
// other way round) when that party has a FHIR endpoint: the Task, and its
// Patient, filtered for it under the patient's consents now, as a
// transaction Bundle in the outbox, written in tx. It reports whether a
// message was enqueued: nothing is when the other party works on
// Pathway's API (it reads the change there), or when the consents or its
// agreement do not let the change go to it.
//
// It is the same flow back as the partner API's (package server), for
// changes that reach Pathway by other ways (pathway sync polling a
// partner that hosts its Tasks).
func (p *Pipeline) FlowBack(ctx context.Context, tx *store.Tx, t store.Resource, changedBy string) (bool, error) {
	fb, err := p.planFlowBack(ctx, &storeViews{p: p}, t, changedBy, false)
	if err != nil || fb.Message == nil {
		return false, err
	}
	_, created, err := tx.Enqueue(ctx, *fb.Message)
	return created, err
}

// flowBack is what the flow back of one Task change decided.
type flowBack struct {
	// Other is the other party of the Task; Referrer says it is the
	// requester.
	Other    string
	Referrer bool
	// View is the change as the other party may see it, and Viewed what
	// it was decided on (Viewed.Bundle nil: nothing was decided).
	View   View
	Viewed viewed
	// Message is the outbox message to enqueue, nil when none goes.
	Message *store.Message
}

// planFlowBack decides FlowBack's message without enqueueing it, reading
// the views' inputs from src. With always, it decides for an other party
// without an endpoint too (a decision to log; no message is made).
func (p *Pipeline) planFlowBack(ctx context.Context, src viewSource, t store.Resource, changedBy string, always bool) (flowBack, error) {
	fb := flowBack{Other: strings.TrimPrefix(t.Requester, "Organization/"), Referrer: true}
	if t.Requester == "Organization/"+changedBy {
		fb.Other, fb.Referrer = strings.TrimPrefix(t.Owner, "Organization/"), false
	}
	link := p.Config.Partners[fb.Other]
	if link == nil || link.Endpoint == "" && !always {
		return fb, nil
	}
	v, vd, err := p.viewFrom(ctx, src, fb.Other, t.Patient, []store.Resource{t}, fb.Referrer)
	if err != nil {
		return fb, err
	}
	fb.View, fb.Viewed = v, vd
	task := v.Resources[t.Ref()]
	if task == nil || link.Endpoint == "" {
		return fb, nil
	}
	entries := []fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(task))}
	if pt := v.Resources[t.Patient]; pt != nil {
		entries = append([]fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(pt))}, entries...)
	}
	b, err := fhir.BundleSpec{ID: fhir.NewID("pathway-task-update", t.Ref(), strconv.FormatInt(t.Version, 10), fb.Other), Type: fhir.BundleTypeTransaction, Entry: entries}.Build()
	if err != nil {
		return fb, err
	}
	payload, err := fhir.Marshal(b)
	if err != nil {
		return fb, err
	}
	sum := sha256.Sum256(append([]byte(fb.Other+"\x00"+v.Purpose+"\x00task-update\x00"), payload...))
	kind := KindTransaction
	if fb.Referrer {
		kind = KindReferrerUpdate
	}
	// In the referral's stream to that partner: its changes arrive after
	// the referral, and in the order they were made.
	// (The view's Task names it; a view without focus reads the stored one.)
	referral := fhir.RefString(task.GetTask().GetFocus())
	if !strings.HasPrefix(referral, "ServiceRequest/") {
		referral = t.Ref()
		if stored, err := ParseStored(t); err == nil {
			if focus := fhir.RefString(stored.GetTask().GetFocus()); strings.HasPrefix(focus, "ServiceRequest/") {
				referral = focus
			}
		}
	}
	fb.Message = &store.Message{Key: hex.EncodeToString(sum[:]), Partner: fb.Other, Purpose: v.Purpose, Kind: kind, Payload: payload,
		Stream: referralStream(referral, fb.Other)}
	return fb, nil
}

// TaskStatus is the status code of a Task ("requested"), "" when it has none.
func TaskStatus(t *tpb.Task) string {
	s := t.GetStatus()
	if s == nil {
		return ""
	}
	return fhir.EnumCode(s.GetValue().Descriptor().Values().ByNumber(s.GetValue().Number()))
}

// TaskStatusCode is the proto of a Task status code ("in-progress").
func TaskStatusCode(code string) *tpb.Task_StatusCode {
	name := strings.ToUpper(strings.ReplaceAll(code, "-", "_"))
	return &tpb.Task_StatusCode{Value: cpb.TaskStatusCode_Value(cpb.TaskStatusCode_Value_value[name])}
}

// ImpliedStatus is the status a Task change moves to: its status, or,
// when that did not change, the status its BSeR businessStatus implies (a
// BSeR system reports progress by businessStatus alone).
func ImpliedStatus(from string, in *tpb.Task) string {
	to := TaskStatus(in)
	if to != from {
		return to
	}
	for _, cd := range in.GetBusinessStatus().GetCoding() {
		if cd.GetSystem().GetValue() == SystemBSeRBusinessStatus {
			if st, ok := BSeRStatus[cd.GetCode().GetValue()]; ok && st != from {
				return st
			}
		}
	}
	return to
}

// AddToTask records on next a change's added notes and outputs, made by
// partner at now: each note's author and time are Pathway's to write,
// whatever the partner's copy says, and lastModified is now.
func AddToTask(next *tpb.Task, notes []*dpb.Annotation, outputs []*tpb.Task_Output, partner string, now time.Time) {
	for _, n := range notes {
		n = proto.Clone(n).(*dpb.Annotation)
		n.Author = &dpb.Annotation_AuthorX{Choice: &dpb.Annotation_AuthorX_Reference{Reference: fhir.Ref("Organization", partner)}}
		n.Time = &dpb.DateTime{ValueUs: now.UnixMicro(), Timezone: "Z", Precision: dpb.DateTime_SECOND}
		next.Note = append(next.Note, n)
	}
	next.Output = append(next.Output, outputs...)
	next.LastModified = &dpb.DateTime{ValueUs: now.UnixMicro(), Timezone: "Z", Precision: dpb.DateTime_SECOND}
}
