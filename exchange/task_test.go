package exchange

import (
	"strings"
	"testing"
)

// TestCheckTransitionTable checks every (from, to, role) against the state
// machine of DESIGN.md, written out here independently of taskMoves.
func TestCheckTransitionTable(t *testing.T) {
	type move struct{ from, to string }
	owner := map[move]bool{}
	requester := map[move]bool{}
	for _, m := range []move{
		{"requested", "received"}, {"requested", "accepted"}, {"requested", "rejected"},
		{"received", "accepted"}, {"received", "rejected"},
		{"accepted", "in-progress"}, {"accepted", "on-hold"}, {"accepted", "completed"}, {"accepted", "failed"},
		{"in-progress", "completed"}, {"in-progress", "failed"}, {"in-progress", "on-hold"},
		{"on-hold", "in-progress"}, {"on-hold", "completed"}, {"on-hold", "failed"},
	} {
		owner[m] = true
	}
	requester[move{"draft", "requested"}] = true
	for _, from := range []string{"draft", "requested", "received", "accepted", "in-progress", "on-hold"} {
		owner[move{from, "cancelled"}] = true
		requester[move{from, "cancelled"}] = true
	}
	for _, from := range TaskStatuses() {
		requester[move{from, "entered-in-error"}] = from != "entered-in-error"
	}
	terminal := map[string]bool{"rejected": true, "cancelled": true, "completed": true, "failed": true, "entered-in-error": true}
	n := 0
	for _, from := range TaskStatuses() {
		for _, to := range TaskStatuses() {
			for _, role := range []TaskRole{RoleOwner, RoleRequester} {
				want := owner[move{from, to}]
				if role == RoleRequester {
					want = requester[move{from, to}]
				}
				if from == to {
					want = !terminal[from]
				}
				err := CheckTransition(from, to, role, "a reason")
				if (err == nil) != want {
					t.Errorf("%s %s -> %s: err %v, want allowed=%v", role, from, to, err, want)
				}
				n++
			}
		}
	}
	if n != 2*11*11 {
		t.Errorf("checked %d cases", n)
	}
}

func TestCheckTransitionNeedsReason(t *testing.T) {
	for _, to := range []string{"rejected", "cancelled", "failed"} {
		err := CheckTransition("requested", to, RoleOwner, " ")
		if to == "failed" {
			continue // not reachable from requested anyway
		}
		if err == nil || !strings.Contains(err.Error(), "statusReason.text") {
			t.Errorf("requested -> %s without a reason: %v", to, err)
		}
	}
	if err := CheckTransition("accepted", "on-hold", RoleOwner, ""); err == nil || !strings.Contains(err.Error(), "statusReason.text") {
		t.Errorf("on-hold without a reason: %v", err)
	}
	if err := CheckTransition("accepted", "on-hold", RoleOwner, "waiting for an interpreter"); err != nil {
		t.Errorf("on-hold with a reason: %v", err)
	}
	if err := CheckTransition("requested", "accepted", RoleRequester, ""); err == nil || !strings.Contains(err.Error(), "only the owner") {
		t.Errorf("the requester accepting: %v", err)
	}
	if err := CheckTransition("completed", "in-progress", RoleOwner, ""); err == nil || !strings.Contains(err.Error(), "no longer change") {
		t.Errorf("reopening a completed Task: %v", err)
	}
	if err := CheckTransition("requested", "ready", RoleOwner, ""); err == nil {
		t.Errorf("ready is not a referral status: no error")
	}
}

func TestBSeRStatusesAreStates(t *testing.T) {
	for code, st := range BSeRStatus {
		if _, ok := taskMoves[st]; !ok {
			t.Errorf("BSeR %s maps to %q, not a state", code, st)
		}
	}
}
