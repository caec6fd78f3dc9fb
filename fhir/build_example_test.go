package fhir_test

import (
	"fmt"
	"time"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// A referral from an NGO's case record becomes one transaction Bundle:
// Patient, ServiceRequest, Consent and Task, with ids derived from the
// record, so ingesting the record again creates nothing new. Entries refer
// to each other by their urn:uuid fullUrls, which the receiving server
// rewrites to the ids it assigns; conditional creates match on identifiers.
func Example_referralBundle() {
	const source, record = "ngo-a", "case-17"
	id := func(typ string) string { return fhir.NewID(source, record, typ) }
	urn := func(typ string) *fhir.Reference { return fhir.RefURN(fhir.FullURL(id(typ))) }
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	client := fhir.Identifier("https://ngo-a.example/client", "c-17")
	referral := fhir.Identifier("https://ngo-a.example/referral", "r-9")
	clinic := fhir.Ref("Organization", "clinic-b")

	patient, err := fhir.PatientSpec{
		ID:          id("Patient"),
		Identifiers: []*dpb.Identifier{client},
		Languages:   []fhir.Language{{Tag: "ar", Preferred: true}},
	}.Build()
	if err != nil {
		panic(err)
	}
	sr, err := fhir.ServiceRequestSpec{
		ID:          id("ServiceRequest"),
		Identifiers: []*dpb.Identifier{referral},
		Status:      fhir.ServiceRequestStatusActive,
		Code:        fhir.Concept("Psychological therapy", fhir.Coding(fhir.SystemSNOMED, "75516001", "Psychotherapy")),
		Subject:     urn("Patient"),
		AuthoredOn:  at,
	}.Build()
	if err != nil {
		panic(err)
	}
	consent, err := fhir.ConsentSpec{
		ID:         id("Consent"),
		Status:     fhir.ConsentStatusActive,
		Patient:    urn("Patient"),
		DateTime:   at,
		PolicyRule: fhir.Concept("", fhir.Coding(fhir.SystemActCode, "OPTIN", "opt-in")),
		Provision: &fhir.Provision{
			Type: fhir.ProvisionTypePermit,
			Actor: []fhir.ProvisionActor{{
				Role:      fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "information recipient")),
				Reference: clinic,
			}},
			Purpose: []*dpb.Coding{fhir.PurposeOfUse("COC")},
			Provision: []fhir.Provision{{
				Type:          fhir.ProvisionTypeDeny,
				SecurityLabel: []*dpb.Coding{fhir.ImmigrationLabel()},
			}},
		},
	}.Build()
	if err != nil {
		panic(err)
	}
	task, err := fhir.TaskSpec{
		ID:         id("Task"),
		Status:     fhir.TaskStatusRequested,
		Focus:      urn("ServiceRequest"),
		For:        urn("Patient"),
		Requester:  fhir.Ref("Organization", "ngo-a"),
		Owner:      clinic,
		AuthoredOn: at,
	}.Build()
	if err != nil {
		panic(err)
	}

	bundle, err := fhir.BundleSpec{
		Type:      fhir.BundleTypeTransaction,
		Timestamp: at,
		Entry: []fhir.BundleEntry{
			fhir.CreateEntry(patient, fhir.IdentifierQuery(client)),
			fhir.CreateEntry(sr, fhir.IdentifierQuery(referral)),
			fhir.UpdateEntry(consent),
			fhir.UpdateEntry(task),
		},
	}.Build()
	if err != nil {
		panic(err)
	}
	printEntries(bundle)

	data, err := fhir.Marshal(bundle)
	if err != nil {
		panic(err)
	}
	fmt.Println("valid:", fhir.Parse(data).Valid())

	taskJSON, err := fhir.MarshalIndent(task)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(taskJSON))
	// Output:
	// POST Patient [identifier=https://ngo-a.example/client|c-17]
	//   urn:uuid:3be436ce-8ab2-5ea7-88af-f997898a282c
	// POST ServiceRequest [identifier=https://ngo-a.example/referral|r-9]
	//   urn:uuid:c03681ca-2d08-57d3-9664-df19bf21a023
	// PUT Consent/def471f4-d2b2-52c6-b74d-cf6cf362372d
	//   urn:uuid:def471f4-d2b2-52c6-b74d-cf6cf362372d
	// PUT Task/2498f8f9-b7ce-5e0c-bd6d-1f2423355f1c
	//   urn:uuid:2498f8f9-b7ce-5e0c-bd6d-1f2423355f1c
	// valid: true
	// {
	//   "resourceType": "Task",
	//   "authoredOn": "2026-03-02T09:30:00Z",
	//   "code": {
	//     "coding": [
	//       {
	//         "code": "fulfill",
	//         "display": "Fulfill the focal request",
	//         "system": "http://hl7.org/fhir/CodeSystem/task-code"
	//       }
	//     ]
	//   },
	//   "focus": {
	//     "reference": "urn:uuid:c03681ca-2d08-57d3-9664-df19bf21a023"
	//   },
	//   "for": {
	//     "reference": "urn:uuid:3be436ce-8ab2-5ea7-88af-f997898a282c"
	//   },
	//   "id": "2498f8f9-b7ce-5e0c-bd6d-1f2423355f1c",
	//   "intent": "order",
	//   "owner": {
	//     "reference": "Organization/clinic-b"
	//   },
	//   "requester": {
	//     "reference": "Organization/ngo-a"
	//   },
	//   "status": "requested"
	// }
}

func printEntries(b *rpb.Bundle) {
	for _, e := range b.GetEntry() {
		r := e.GetRequest()
		fmt.Printf("%s %s", r.GetMethod().GetValue(), r.GetUrl().GetValue())
		if q := r.GetIfNoneExist().GetValue(); q != "" {
			fmt.Printf(" [%s]", q)
		}
		fmt.Printf("\n  %s\n", e.GetFullUrl().GetValue())
	}
}
