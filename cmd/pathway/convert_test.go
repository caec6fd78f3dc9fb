package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/fhir"
)

const sampleCSV = "../../testdata/mappings/ngo-referral.csv"

func TestConvertSample(t *testing.T) {
	dir := t.TempDir()
	out, rejects := filepath.Join(dir, "bundles.ndjson"), filepath.Join(dir, "rejects.ndjson")
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--out", out, "--rejects", rejects, sampleCSV)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "6 records read, 4 converted, 2 rejected") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(first), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d bundles", len(lines))
	}
	for i, l := range lines {
		r := fhir.Parse([]byte(l))
		if !r.Valid() || r.ResourceType != "Bundle" {
			t.Errorf("bundle %d invalid: %v", i, r.Issues)
		}
	}
	for _, want := range []string{"تحتاج إلى معالجة نفسية ناطقة بالعربية", "Хоче знайти групу підтримки для матерів", "ናይ ትግርኛ ተርጓሚ የድሊ"} {
		if !strings.Contains(string(first), want) {
			t.Errorf("output lost the text %q", want)
		}
	}

	f, err := os.Open(rejects)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rej []convertReject
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r convertReject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rej = append(rej, r)
	}
	if len(rej) != 2 || rej[0].Position != sampleCSV+":5" || rej[1].Position != sampleCSV+":6" || len(rej[1].Reasons) != 3 ||
		!strings.Contains(rej[0].Record, "R-2026-0105") {
		t.Fatalf("rejects: %+v", rej)
	}
	for _, r := range rej {
		for _, reason := range r.Reasons {
			if strings.Contains(reason, "31/02/1990") || strings.Contains(reason, "counselling") || strings.Contains(reason, "maybe") {
				t.Errorf("a reason shows a value: %q", reason)
			}
		}
	}

	// The same input converts to the same bytes.
	_, _, _ = runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--out", out, "--rejects", rejects, sampleCSV)
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("converting the same input twice gave different bytes")
	}
}

func TestConvertToStdoutWithoutRejectsFile(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--json", sampleCSV)
	if code != 1 || strings.Count(stdout, "\n") != 4 {
		t.Fatalf("exit %d, %d lines on stdout", code, strings.Count(stdout, "\n"))
	}
	if !strings.Contains(stderr, sampleCSV+":5: rejected:") || !strings.Contains(stderr, `"converted":4`) {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestConvertDuplicateIDs(t *testing.T) {
	data, err := os.ReadFile(sampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\r\n")
	dup := strings.Join([]string{lines[0], lines[1], lines[2], lines[1]}, "\r\n") + "\r\n"
	p := writeFile(t, t.TempDir(), "dup.csv", dup)
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", p)
	if code != 1 || strings.Count(stdout, "\n") != 2 || !strings.Contains(stderr, "dup.csv:3: rejected:") ||
		!strings.Contains(stderr, "the same record id as "+p+":1") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func TestConvertUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badMapping := writeFile(t, dir, "bad.yaml", "mapping: x\ninput: {format: csv}\nfields: {patient.gendr: g}\n")
	tests := [][]string{
		{"convert", sampleCSV},
		{"convert", "--mapping", "no-such-mapping", sampleCSV},
		{"convert", "--mapping", badMapping, sampleCSV},
		{"convert", "--mapping", "ngo-referral-csv", filepath.Join(dir, "none.csv")},
	}
	for _, args := range tests {
		if code, _, stderr := runCmd(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); !os.IsNotExist(err) {
		t.Error("no output file may appear on a usage error")
	}
}

// updateGolden rewrites the converted-sample goldens: go test ./cmd/pathway -run TestConvertBuiltinGolden -update
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/mappings/golden")

const goldenDir = "../../testdata/mappings/golden"

// builtinSamples are the sample inputs of every built-in mapping, each
// converted through the real path (connector, mapping, Build, Validate,
// Marshal) into a golden NDJSON file of bundles and one of rejects.
var builtinSamples = []struct {
	golden, mapping string
	inputs          []string
	converted       int
	rejected        int
}{
	{"ngo-referral-csv", "ngo-referral-csv", []string{"../../testdata/mappings/ngo-referral.csv"}, 4, 2},
	{"kobo-json", "kobo-json", []string{"../../testdata/mappings/kobo-referrals.json"}, 4, 2},
	{"fhir-referral", "fhir-referral", []string{"../../testdata/mappings/fhir-referral-bundle.json", "../../testdata/mappings/fhir-referral-servicerequest.json"}, 3, 2},
	{"hl7v2-ref-i12", "hl7v2-ref-i12", []string{"../../testdata/mappings/ref-i12-referrals.hl7"}, 3, 3},
	// The referral messages of the shared corpus (microsoft/FHIR-Converter).
	{"hl7v2-ref-i12-corpus-01", "hl7v2-ref-i12", []string{"../../testdata/connectors/hl7v2/REF-I12-01.hl7"}, 1, 0},
	{"hl7v2-ref-i12-corpus-02", "hl7v2-ref-i12", []string{"../../testdata/connectors/hl7v2/REF-I12-02.hl7"}, 1, 0},
	{"hl7v2-ref-i14-corpus", "hl7v2-ref-i12", []string{"../../testdata/mappings/hl7v2-corpus/REF-I14-01.hl7", "../../testdata/mappings/hl7v2-corpus/REF-I14-02.hl7"}, 0, 2},
}

// TestConvertBuiltinGolden converts each built-in mapping's sample with
// pathway convert, twice, and compares the bundles and the rejects with
// the checked-in goldens. Every bundle is valid FHIR and the free text in
// Arabic, Ukrainian, Dari and Tigrinya comes out byte for byte.
func TestConvertBuiltinGolden(t *testing.T) {
	for _, tc := range builtinSamples {
		t.Run(tc.golden, func(t *testing.T) {
			dir := t.TempDir()
			run := func() (string, string) {
				rejects := filepath.Join(dir, "rejects.ndjson")
				args := append([]string{"convert", "--mapping", tc.mapping, "--rejects", rejects, "--json"}, tc.inputs...)
				code, stdout, stderr := runCmd(t, "", args...)
				wantCode := 0
				if tc.rejected > 0 {
					wantCode = 1
				}
				var sum convertSummary
				// The summary is stderr's last line; warnings come before it.
				lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || code != wantCode || sum.Converted != tc.converted || sum.Rejected != tc.rejected {
					t.Fatalf("exit %d (want %d), summary %s", code, wantCode, stderr)
				}
				rej, err := os.ReadFile(rejects)
				if err != nil {
					t.Fatal(err)
				}
				return stdout, string(rej)
			}
			bundles, rejects := run()
			again, rejectsAgain := run()
			if bundles != again || rejects != rejectsAgain {
				t.Fatal("converting the same input twice gave different bytes")
			}
			for i, line := range strings.Split(strings.TrimSuffix(bundles, "\n"), "\n") {
				if line == "" {
					continue
				}
				if r := fhir.Parse([]byte(line)); !r.Valid() || r.ResourceType != "Bundle" {
					t.Errorf("bundle %d invalid: %v", i, r.Issues)
				}
			}
			for _, rj := range strings.Split(strings.TrimSuffix(rejects, "\n"), "\n") {
				var r convertReject
				if rj != "" && (json.Unmarshal([]byte(rj), &r) != nil || len(r.Reasons) == 0 || r.Position == "") {
					t.Errorf("reject without position or reason: %s", rj)
				}
			}
			checkGolden(t, filepath.Join(goldenDir, tc.golden+".ndjson"), bundles)
			checkGolden(t, filepath.Join(goldenDir, tc.golden+".rejects.ndjson"), rejects)
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/pathway -run TestConvertBuiltinGolden -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the conversion (review, then go test ./cmd/pathway -run TestConvertBuiltinGolden -update)", path)
	}
}

// TestConvertMultilingualText checks that free text in the scripts NGO
// records hold survives every built-in mapping byte for byte.
func TestConvertMultilingualText(t *testing.T) {
	texts := map[string][]string{
		"kobo-json": {
			"تحتاج إلى معالجة نفسية ناطقة بالعربية، وتفضّل أن تكون المعالِجة امرأة.",
			"Хоче знайти групу підтримки для матерів і курси грецької мови.",
			"شب\u200cها خواب بد می\u200cبیند و نمی\u200cخواهد تنها بماند.",
			"ናይ ትግርኛ ተርጓሚ የድሊ። ቆጸራ ንግሆ ይሓይሽ።",
			"Коваленко",
		},
		"fhir-referral": {
			"تفضّل مجموعة دعم للنساء باللغة العربية، ويفضَّل في الصباح.",
			"Шукає роботу за фахом (інженер-електрик); потрібна допомога з визнанням диплома.",
			"از مترجم زن استفاده شود. لطفاً قبل از تماس پیامک بفرستید.",
			"حداد",
		},
		"hl7v2-ref-i12": {
			"تفضّل جلسات صباحية، وتحتاج إلى مترجمة.",
			"Шукає роботу за фахом; потрібна допомога з визнанням диплома.",
			"از مترجم زن استفاده شود. لطفاً قبل از تماس پیامک بفرستید.",
			"ናይ ትግርኛ ተርጓሚ ድማ የድሊ (ንሰበይቱ).",
		},
	}
	for _, tc := range builtinSamples {
		want, ok := texts[tc.golden]
		if !ok {
			continue
		}
		_, stdout, _ := runCmd(t, "", append([]string{"convert", "--mapping", tc.mapping}, tc.inputs...)...)
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s lost the text %q", tc.mapping, w)
			}
		}
	}
}

// TestConvertHL7LineEnds converts the same REF^I12 message with CR (the
// standard), LF and CRLF segment ends, with and without a byte order mark:
// every variant gives the same bundle.
func TestConvertHL7LineEnds(t *testing.T) {
	data, err := os.ReadFile("../../testdata/connectors/hl7v2/REF-I12-01.hl7")
	if err != nil {
		t.Fatal(err)
	}
	segs := strings.FieldsFunc(strings.TrimPrefix(string(data), "\ufeff"), func(r rune) bool { return r == '\r' || r == '\n' })
	dir := t.TempDir()
	var first string
	for _, v := range []struct{ name, bom, end string }{
		{"cr", "", "\r"}, {"lf", "", "\n"}, {"crlf", "", "\r\n"},
		{"bom-cr", "\ufeff", "\r"}, {"bom-lf", "\ufeff", "\n"}, {"bom-crlf", "\ufeff", "\r\n"},
	} {
		p := writeFile(t, dir, v.name+".hl7", v.bom+strings.Join(segs, v.end)+v.end)
		code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "hl7v2-ref-i12", p)
		if code != 0 || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("%s: exit %d\n%s", v.name, code, stderr)
		}
		if first == "" {
			first = stdout
		} else if stdout != first {
			t.Errorf("%s: the bundle differs from the one with CR segment ends", v.name)
		}
	}
}

// corpusDir returns the shared corpus folder: PATHWAY_CORPUS, else
// ../shared/corpus beside the repository; "" when neither exists.
func corpusDir() string {
	for _, d := range []string{os.Getenv("PATHWAY_CORPUS"), "../../../shared/corpus"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "hl7v2")); err == nil {
			return d
		}
	}
	return ""
}

// fhirEntries indexes the resources of a Bundle by "Type/id", and keeps
// the first of each type.
func fhirEntries(t *testing.T, data []byte) (byRef map[string]map[string]any, first map[string]map[string]any) {
	t.Helper()
	var b struct {
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	byRef, first = map[string]map[string]any{}, map[string]map[string]any{}
	for _, e := range b.Entry {
		rt, _ := e.Resource["resourceType"].(string)
		id, _ := e.Resource["id"].(string)
		byRef[rt+"/"+id] = e.Resource
		byRef[e.FullURL] = e.Resource
		if first[rt] == nil {
			first[rt] = e.Resource
		}
	}
	return byRef, first
}

// jsonPath reads a value from decoded JSON: keys and list indexes.
func jsonPath(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// identifierSet returns value -> system of a list of FHIR identifiers.
func identifierSet(v any) map[string]string {
	out := map[string]string{}
	l, _ := v.([]any)
	for _, e := range l {
		m, _ := e.(map[string]any)
		val, _ := m["value"].(string)
		sys, _ := m["system"].(string)
		out[val] = sys
	}
	return out
}

// lastSegment returns what follows the last "/" of a URI.
func lastSegment(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

// TestHL7ReferralAgreesWithCorpus converts the REF^I12 messages of the
// shared corpus and checks that the key fields agree with the FHIR bundles
// microsoft/FHIR-Converter expects from them, where both mappings mean the
// same thing: the patient's name, birth date, gender and the identifiers
// of PID-3 (each in the namespace of its assigning authority); the
// referral's identifiers (RF1-6, RF1-11), authoredOn, occurrence period,
// priority, type (RF1-3), reason (RF1-10) and comment (RF1-24); the
// referring practitioner's name and identifier (PRD with role RP) and
// their organisation. The expected bundles are read from the corpus when
// it is present, else from the excerpts under testdata.
func TestHL7ReferralAgreesWithCorpus(t *testing.T) {
	corpus := corpusDir()
	if corpus == "" {
		t.Log("shared corpus not found: comparing with the excerpts under testdata/mappings/hl7v2-expected")
	}
	for _, n := range []string{"01", "02"} {
		t.Run("REF-I12-"+n, func(t *testing.T) {
			msg := "../../testdata/connectors/hl7v2/REF-I12-" + n + ".hl7"
			expectedPath := "../../testdata/mappings/hl7v2-expected/REF-I12-" + n + "-expected-excerpt.json"
			if corpus != "" {
				msg = filepath.Join(corpus, "hl7v2", "ms_fhir_converter", "messages", "REF-I12-"+n+".hl7")
				expectedPath = filepath.Join(corpus, "hl7v2", "ms_fhir_converter", "expected_fhir", "REF-I12-"+n+"-expected.json")
			}
			expected, err := os.ReadFile(expectedPath)
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "hl7v2-ref-i12", msg)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			ours, ourFirst := fhirEntries(t, []byte(stdout))
			theirs, theirFirst := fhirEntries(t, expected)

			// The Patient.
			p, ep := ourFirst["Patient"], theirFirst["Patient"]
			for _, path := range [][]any{{"name", 0, "family"}, {"name", 0, "given", 0}, {"birthDate"}, {"gender"}} {
				if got, want := jsonPath(p, path...), jsonPath(ep, path...); got != want || got == nil {
					t.Errorf("Patient %v: got %v, want %v", path, got, want)
				}
			}
			// Every PID-3 identifier we send is one they send, in the same
			// assigning authority's namespace when they name one.
			ourIDs, theirIDs := identifierSet(p["identifier"]), identifierSet(ep["identifier"])
			data, _ := os.ReadFile(msg)
			src, _ := connectors.OpenHL7v2(strings.NewReader(string(data)), msg)
			rec, _ := src.Next()
			pid3 := rec.HL7.All("PID-3.1")
			if len(ourIDs) != len(pid3) {
				t.Errorf("Patient identifiers: %d, want one per PID-3 repetition (%d)", len(ourIDs), len(pid3))
			}
			for v, sys := range ourIDs {
				theirSys, ok := theirIDs[v]
				if !ok {
					t.Errorf("Patient identifier %s is not in the expected bundle", v)
				} else if theirSys != "" && lastSegment(theirSys) != lastSegment(sys) {
					t.Errorf("Patient identifier %s: namespace %s, expected bundle %s", v, sys, theirSys)
				}
			}

			// The ServiceRequest: theirs is the one with the converter's
			// patient-referral-request category (the other comes from OBR).
			sr := ourFirst["ServiceRequest"]
			var esr map[string]any
			for k, r := range theirs {
				if strings.HasPrefix(k, "ServiceRequest/") && strings.Contains(fmt.Sprint(r["category"]), "patient-referral-request") {
					esr = r
				}
			}
			if esr == nil {
				t.Fatal("the expected bundle has no referral ServiceRequest")
			}
			srIDs, esrIDs := identifierSet(sr["identifier"]), identifierSet(esr["identifier"])
			if len(srIDs) != len(esrIDs) || len(srIDs) == 0 {
				t.Errorf("ServiceRequest identifiers: %v, expected %v", srIDs, esrIDs)
			}
			for v, sys := range esrIDs {
				if got, ok := srIDs[v]; !ok || lastSegment(got) != lastSegment(sys) {
					t.Errorf("ServiceRequest identifier %s (%s): got %q", v, sys, got)
				}
			}
			for _, path := range [][]any{{"authoredOn"}, {"priority"}, {"occurrencePeriod", "start"}, {"occurrencePeriod", "end"}} {
				if got, want := jsonPath(sr, path...), jsonPath(esr, path...); got != want || got == nil {
					t.Errorf("ServiceRequest %v: got %v, want %v", path, got, want)
				}
			}
			codes := func(v any, field string) map[string]bool {
				out := map[string]bool{}
				l, _ := v.([]any)
				for _, c := range l {
					for _, cd := range jsonPath(c, "coding").([]any) {
						out[jsonPath(cd, "code").(string)] = true
					}
				}
				return out
			}
			for _, field := range []string{"category", "reasonCode"} {
				ourCodes := codes(sr[field], field)
				for code := range codes(esr[field], field) {
					if code != "patient-referral-request" && !ourCodes[code] { // theirs adds a converter-specific category
						t.Errorf("ServiceRequest.%s: expected code %s, got %v", field, code, ourCodes)
					}
				}
			}
			if got, want := jsonPath(sr, "note", 0, "text"), jsonPath(esr, "note", 0, "text"); got != want {
				t.Errorf("ServiceRequest.note: got %v, want %v", got, want)
			}

			// The referring practitioner: ours is the ServiceRequest's
			// requester; theirs is the requester PractitionerRole's.
			ref := func(v any, path ...any) string { s, _ := jsonPath(v, path...).(string); return s }
			pr := ours[ref(sr, "requester", "reference")]
			role := theirs[ref(esr, "requester", "reference")]
			epr := theirs[ref(role, "practitioner", "reference")]
			if pr == nil || epr == nil {
				t.Fatalf("practitioner: ours %v, theirs %v", pr, epr)
			}
			for _, path := range [][]any{{"name", 0, "family"}, {"name", 0, "given", 0}, {"identifier", 0, "value"}} {
				if got, want := jsonPath(pr, path...), jsonPath(epr, path...); got != want || got == nil {
					t.Errorf("Practitioner %v: got %v, want %v", path, got, want)
				}
			}
			org := theirs[ref(role, "organization", "reference")]
			if got, want := jsonPath(ourFirst["Task"], "requester", "display"), jsonPath(org, "name"); got != want || got == nil {
				t.Errorf("referring organisation: Task.requester.display %v, want %v", got, want)
			}
		})
	}
}

// TestHL7CancellationsRejected converts the REF^I14 messages of the
// corpus: a cancellation is never turned into a new referral.
func TestHL7CancellationsRejected(t *testing.T) {
	inputs := []string{"../../testdata/mappings/hl7v2-corpus/REF-I14-01.hl7", "../../testdata/mappings/hl7v2-corpus/REF-I14-02.hl7"}
	code, stdout, stderr := runCmd(t, "", append([]string{"convert", "--mapping", "hl7v2-ref-i12"}, inputs...)...)
	if code != 1 || stdout != "" || strings.Count(stderr, "REF^I14 cancels a referral") != 2 {
		t.Fatalf("exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
	}
}

func TestProgressBar(t *testing.T) {
	for _, c := range []struct {
		done float64
		want string
	}{{0, "[....................]   0%"}, {0.5, "[##########..........]  50%"}, {1, "[####################] 100%"}, {1.7, "[####################] 100%"}} {
		if got := progressBar(c.done); got != c.want {
			t.Errorf("progressBar(%v) = %q, want %q", c.done, got, c.want)
		}
	}
}
