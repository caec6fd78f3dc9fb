package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
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
	other, referrer := strings.TrimPrefix(t.Requester, "Organization/"), true
	if t.Requester == "Organization/"+changedBy {
		other, referrer = strings.TrimPrefix(t.Owner, "Organization/"), false
	}
	link := p.Config.Partners[other]
	if link == nil || link.Endpoint == "" {
		return false, nil
	}
	v, err := p.ViewFor(ctx, other, t.Patient, []store.Resource{t}, referrer)
	if err != nil {
		return false, err
	}
	task := v.Resources[t.Ref()]
	if task == nil {
		return false, nil
	}
	entries := []fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(task))}
	if pt := v.Resources[t.Patient]; pt != nil {
		entries = append([]fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(pt))}, entries...)
	}
	b, err := fhir.BundleSpec{ID: fhir.NewID("pathway-task-update", t.Ref(), strconv.FormatInt(t.Version, 10), other), Type: fhir.BundleTypeTransaction, Entry: entries}.Build()
	if err != nil {
		return false, err
	}
	payload, err := fhir.Marshal(b)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(append([]byte(other+"\x00"+v.Purpose+"\x00task-update\x00"), payload...))
	kind := KindTransaction
	if referrer {
		kind = KindReferrerUpdate
	}
	_, created, err := tx.Enqueue(ctx, store.Message{Key: hex.EncodeToString(sum[:]), Partner: other, Purpose: v.Purpose, Kind: kind, Payload: payload})
	return created, err
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
