package exchange

import (
	"fmt"
	"slices"
	"strings"
)

// TaskRole is the part a partner plays in a referral Task.
type TaskRole string

const (
	// RoleRequester is the partner that referred (Task.requester).
	RoleRequester TaskRole = "requester"
	// RoleOwner is the partner asked to act (Task.owner).
	RoleOwner TaskRole = "owner"
)

// taskMoves is the referral Task state machine of DESIGN.md (Gravity SDOH
// Clinical Care), with BSeR's received between requested and accepted:
// from a status, the statuses it may move to and who may make the move.
// entered-in-error is reachable from every status, by the requester.
var taskMoves = map[string]map[string][]TaskRole{
	"draft":     {"requested": {RoleRequester}, "cancelled": {RoleRequester, RoleOwner}},
	"requested": {"received": {RoleOwner}, "accepted": {RoleOwner}, "rejected": {RoleOwner}, "cancelled": {RoleRequester, RoleOwner}},
	"received":  {"accepted": {RoleOwner}, "rejected": {RoleOwner}, "cancelled": {RoleRequester, RoleOwner}},
	"accepted": {"in-progress": {RoleOwner}, "on-hold": {RoleOwner}, "completed": {RoleOwner}, "failed": {RoleOwner},
		"cancelled": {RoleRequester, RoleOwner}},
	"in-progress": {"completed": {RoleOwner}, "failed": {RoleOwner}, "on-hold": {RoleOwner}, "cancelled": {RoleRequester, RoleOwner}},
	"on-hold":     {"in-progress": {RoleOwner}, "completed": {RoleOwner}, "failed": {RoleOwner}, "cancelled": {RoleRequester, RoleOwner}},
	// Terminal: rejected, cancelled, completed, failed, entered-in-error.
	"rejected": {}, "cancelled": {}, "completed": {}, "failed": {}, "entered-in-error": {},
}

// needsReason lists the statuses that need statusReason.text.
var needsReason = []string{"rejected", "cancelled", "on-hold", "failed"}

// TaskStatuses lists the statuses of the state machine.
func TaskStatuses() []string {
	out := make([]string, 0, len(taskMoves))
	for s := range taskMoves {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TransitionError says why a Task change is refused, in words fit for an
// OperationOutcome (statuses and roles only, never the Task's content).
type TransitionError struct {
	From, To string
	Role     TaskRole
	Reason   string
}

func (e *TransitionError) Error() string { return e.Reason }

// CheckTransition checks that role may move a referral Task from status
// from to status to, with reason as its statusReason.text. Staying in the
// same status is allowed to either party (a note, an output or a
// businessStatus change), except that a terminal Task cannot change.
func CheckTransition(from, to string, role TaskRole, reason string) error {
	fail := func(why string) error { return &TransitionError{From: from, To: to, Role: role, Reason: why} }
	moves, ok := taskMoves[from]
	if !ok {
		return fail(fmt.Sprintf("the stored Task has status %q, which the referral state machine does not know", from))
	}
	if _, ok := taskMoves[to]; !ok {
		return fail(fmt.Sprintf("status %q is not a referral Task status (one of %s)", to, strings.Join(TaskStatuses(), ", ")))
	}
	if role != RoleOwner && role != RoleRequester {
		return fail("only the Task's requester or owner may change it")
	}
	if slices.Contains(needsReason, to) && strings.TrimSpace(reason) == "" && from != to {
		return fail(fmt.Sprintf("status %s needs statusReason.text: say why, in words the other partner can read", to))
	}
	if from == to {
		if len(moves) == 0 {
			return fail(fmt.Sprintf("the Task is %s: it can no longer change", from))
		}
		return nil
	}
	if to == "entered-in-error" {
		if role != RoleRequester {
			return fail("only the requester may mark a Task entered-in-error")
		}
		return nil
	}
	who, ok := moves[to]
	if !ok {
		if len(moves) == 0 {
			return fail(fmt.Sprintf("the Task is %s: it can no longer change", from))
		}
		return fail(fmt.Sprintf("a Task cannot move from %s to %s (from %s it can move to %s)", from, to, from, strings.Join(sortedKeys(moves), ", ")))
	}
	if !slices.Contains(who, role) {
		return fail(fmt.Sprintf("the %s cannot move a Task from %s to %s: only the %s can", role, from, to, joinRoles(who)))
	}
	return nil
}

func sortedKeys(m map[string][]TaskRole) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func joinRoles(rs []TaskRole) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// SystemBSeRBusinessStatus is BSeR's Task businessStatus code system.
const SystemBSeRBusinessStatus = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"

// BSeRStatus maps the BSeR Task businessStatus codes clinic systems send
// (CodeSystem TaskBusinessStatusCS) to the referral Task status they
// imply. Codes that do not move the Task (5.2, a cancellation requested;
// the 5.1.x events of a service in progress other than the first) imply
// nothing beyond in-progress. The code itself is kept in businessStatus.
var BSeRStatus = map[string]string{
	"2.0":   "requested",   // Service Request Created
	"3.0":   "accepted",    // Service Request Accepted
	"4.0":   "rejected",    // Service Request Declined
	"5.1.1": "in-progress", // Service Request Event Scheduled
	"5.1.2": "in-progress", // Scheduled Service Request Event Unattended
	"5.1.3": "in-progress", // Scheduled Service Request Event Cancelled
	"5.1.4": "in-progress", // Service Request Event Completed
	"6.0":   "cancelled",   // Service Request Fulfillment Cancelled
	"7.0":   "completed",   // Service Request Fulfillment Completed
}
