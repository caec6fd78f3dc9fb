package fhir

import (
	"bytes"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

func demoBundle(t *testing.T) *rpb.Bundle {
	t.Helper()
	data, err := os.ReadFile("../testdata/demo/ngo-referral-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return cr.GetBundle()
}

func TestTransactionResources(t *testing.T) {
	b := demoBundle(t)
	before := proto.Clone(b)
	res, err := TransactionResources(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, b) {
		t.Fatal("TransactionResources changed the bundle")
	}
	var keys []string
	for _, r := range res {
		keys = append(keys, Key(r))
	}
	const p = "8b1e6a52-6a0e-5d3c-9f4b-2f3c1d7e9a0"
	want := []string{"Patient/" + p + "1", "ServiceRequest/" + p + "2", "Consent/" + p + "3", "Task/" + p + "4"}
	if len(keys) != 4 || keys[0] != want[0] || keys[3] != want[3] {
		t.Fatalf("resources %v, want %v", keys, want)
	}
	task := res[3].GetTask()
	if got := RefString(task.GetForValue()); got != want[0] {
		t.Errorf("Task.for = %q, want %q", got, want[0])
	}
	if got := RefString(task.GetFocus()); got != want[1] {
		t.Errorf("Task.focus = %q, want %q", got, want[1])
	}
	if got := RefString(task.GetOwner()); got != "Organization/community-garden" {
		t.Errorf("Task.owner changed: %q", got)
	}
	for _, r := range res {
		if is := Validate(r); is.HasErrors() {
			t.Errorf("%s invalid after rewriting: %v", Key(r), is)
		}
	}

	b.Entry[0].Resource.GetPatient().Id = nil
	if _, err := TransactionResources(b); err == nil {
		t.Error("an entry without an id must be an error")
	}
}

func TestSearchFieldsOf(t *testing.T) {
	res, err := TransactionResources(demoBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	const p = "Patient/8b1e6a52-6a0e-5d3c-9f4b-2f3c1d7e9a01"
	tests := []SearchFields{
		{Patient: p},
		{Patient: p, Status: "active", Requester: "Organization/ngo-harbour"},
		{Patient: p, Status: "active"},
		{Patient: p, Status: "requested", Owner: "Organization/community-garden", Requester: "Organization/ngo-harbour"},
	}
	for i, want := range tests {
		if got := SearchFieldsOf(res[i]); got != want {
			t.Errorf("%s: %+v, want %+v", Key(res[i]), got, want)
		}
	}
	inProgress, err := Decode([]byte(`{"resourceType":"Task","status":"entered-in-error","intent":"order"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := SearchFieldsOf(inProgress).Status; got != "entered-in-error" {
		t.Errorf("status %q", got)
	}
}

func TestMarshalBinaryDeterministic(t *testing.T) {
	res, err := TransactionResources(demoBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		a, err := MarshalBinary(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := UnmarshalBinary(a)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := MarshalBinary(again)
		if !bytes.Equal(a, b) || !proto.Equal(r, again) {
			t.Errorf("%s: binary round trip differs", Key(r))
		}
	}
	if _, err := UnmarshalBinary([]byte("not proto")); err == nil {
		t.Error("garbage must not decode")
	}
}
