package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

// outboxFixture makes a store with three messages: one delivered, one
// dead with the partner's answer, one pending.
func outboxFixture(t *testing.T) (url string, ids []int64) {
	t.Helper()
	url = "sqlite://" + filepath.Join(t.TempDir(), "outbox.db")
	st, err := store.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.WithTx(t.Context(), func(tx *store.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			id, _, err := tx.Enqueue(t.Context(), store.Message{Key: k, Partner: "clinic-a", Purpose: "COC", Kind: "transaction", Payload: []byte(`{"resourceType":"Bundle","secret":"Amina"}`)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := st.Claim(t.Context(), "w1", 2, time.Minute)
	if err != nil || len(ms) != 2 {
		t.Fatalf("Claim: %v %v", ms, err)
	}
	if err := st.Ack(t.Context(), ids[0], "w1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeadLetter(t.Context(), ids[1], "w1", "HTTP 422 from the partner: refused", []byte(`{"resourceType":"OperationOutcome"}`)); err != nil {
		t.Fatal(err)
	}
	return url, ids
}

func TestOutboxList(t *testing.T) {
	url, ids := outboxFixture(t)
	code, out, errOut := runCmd(t, "", "outbox", "list", "--database", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"delivered", "dead", "pending", "HTTP 422 from the partner: refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Amina") {
		t.Error("list printed a payload")
	}

	code, out, _ = runCmd(t, "", "outbox", "dead", "--json", "--database", url)
	if code != 0 {
		t.Fatalf("dead: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var m outboxMessage
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil || m.ID != ids[1] || m.State != "dead" || string(m.Response) != `{"resourceType":"OperationOutcome"}` {
		t.Errorf("dead --json = %q", out)
	}

	if code, _, errOut := runCmd(t, "", "outbox", "list", "--state", "lost", "--database", url); code != 2 || !strings.Contains(errOut, "unknown state") {
		t.Errorf("list --state lost: exit %d, %s", code, errOut)
	}
}

func TestOutboxShowAndRetry(t *testing.T) {
	url, ids := outboxFixture(t)
	dead := itoa(ids[1])
	code, out, _ := runCmd(t, "", "outbox", "show", dead, "--database", url)
	if code != 0 || !strings.Contains(out, "OperationOutcome") || strings.Contains(out, "Amina") {
		t.Errorf("show: exit %d\n%s", code, out)
	}
	if _, out, _ = runCmd(t, "", "outbox", "show", dead, "--payload", "--database", url); !strings.Contains(out, "Amina") {
		t.Errorf("show --payload did not print the payload:\n%s", out)
	}
	if code, _, errOut := runCmd(t, "", "outbox", "show", "999", "--database", url); code != 1 || !strings.Contains(errOut, "no outbox message 999") {
		t.Errorf("show 999: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", "outbox", "show", "x", "--database", url); code != 2 || !strings.Contains(errOut, "not a message id") {
		t.Errorf("show x: exit %d %s", code, errOut)
	}
	// Retrying the dead one works; the delivered one cannot be retried.
	code, out, errOut := runCmd(t, "", "outbox", "retry", dead, itoa(ids[0]), "--database", url)
	if code != 1 || !strings.Contains(out, "message "+dead+": pending") || !strings.Contains(errOut, "message "+itoa(ids[0])+": not requeued") {
		t.Errorf("retry: exit %d\n%s\n%s", code, out, errOut)
	}
	st, err := store.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.Message(t.Context(), ids[1])
	if err != nil || m.State != store.StatePending || m.Attempts != 0 {
		t.Errorf("after retry: %+v %v", m, err)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
