package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pathway-fhir/pathway/store"
	"github.com/spf13/cobra"
)

func newOutboxCmd(s streams) *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Inspect and steer the delivery outbox",
		Long: `The outbox holds every bundle waiting to be delivered to a partner, and what
became of each: pending, inflight (claimed by a worker), delivered, dead
(gave up, with the partner's answer) or withheld (the consent no longer
allowed the send). These commands are for operators; they never print a
bundle's content unless asked with 'show --payload'.`,
		Example: `  pathway outbox list --state dead
  pathway outbox list --partner clinic-a --json | jq .
  pathway outbox show 42
  pathway outbox retry 42
  pathway outbox dead`,
	}
	cmd.PersistentFlags().StringVar(&database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")

	var list listOutboxOptions
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List outbox messages (newest last)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), database, func(st *store.Store) error { return runOutboxList(cmd.Context(), st, list, s) })
		},
	}
	listCmd.Flags().StringVar(&list.state, "state", "", "only messages in this state: pending, inflight, delivered, dead, withheld")
	listCmd.Flags().StringVar(&list.partner, "partner", "", "only messages for this partner")
	listCmd.Flags().IntVar(&list.limit, "limit", 100, "at most this many messages")
	listCmd.Flags().Int64Var(&list.after, "after", 0, "only messages with a larger id (for paging)")
	listCmd.Flags().BoolVar(&list.json, "json", false, "print one JSON object per message")

	deadCmd := &cobra.Command{
		Use:   "dead",
		Short: "List dead-lettered messages (list --state dead)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := list
			o.state = string(store.StateDead)
			return withStore(cmd.Context(), database, func(st *store.Store) error { return runOutboxList(cmd.Context(), st, o, s) })
		},
	}
	deadCmd.Flags().BoolVar(&list.json, "json", false, "print one JSON object per message")
	deadCmd.Flags().IntVar(&list.limit, "limit", 100, "at most this many messages")

	var showJSON, showPayload bool
	showCmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one message, with the partner's last answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMessageID(args[0])
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), database, func(st *store.Store) error {
				m, err := st.Message(cmd.Context(), id)
				if errors.Is(err, store.ErrNotFound) {
					return &exitError{code: exitInvalid, msg: fmt.Sprintf("no outbox message %d", id)}
				}
				if err != nil {
					return err
				}
				v := messageView(m)
				if showPayload {
					v.Payload = json.RawMessage(m.Payload)
				}
				if showJSON {
					return writeJSON(s, v)
				}
				tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "id\t%d\nkey\t%s\npartner\t%s\npurpose\t%s\nkind\t%s\nstate\t%s\nattempts\t%d\n", v.ID, v.Key, v.Partner, v.Purpose, v.Kind, v.State, v.Attempts)
				fmt.Fprintf(tw, "next attempt\t%s\ncreated\t%s\nupdated\t%s\n", v.NextAttemptAt, v.CreatedAt, v.UpdatedAt)
				if v.LeaseOwner != "" {
					fmt.Fprintf(tw, "lease\t%s until %s\n", v.LeaseOwner, v.LeaseUntil)
				}
				if v.LastError != "" {
					fmt.Fprintf(tw, "last error\t%s\n", v.LastError)
				}
				if len(v.Response) > 0 {
					fmt.Fprintf(tw, "partner's answer\t%s\n", v.Response)
				}
				if v.PayloadOf != "" {
					fmt.Fprintf(tw, "payload of\t%s\n", v.PayloadOf)
				}
				if showPayload {
					fmt.Fprintf(tw, "payload\t%s\n", m.Payload)
				}
				return tw.Flush()
			})
		},
	}
	showCmd.Flags().BoolVar(&showJSON, "json", false, "print the message as JSON")
	showCmd.Flags().BoolVar(&showPayload, "payload", false, "also print the bundle (it holds personal data)")

	retryCmd := &cobra.Command{
		Use:   "retry ID...",
		Short: "Make dead or withheld messages pending again, due now, attempts reset",
		Long: `Make dead or withheld messages pending again. A withheld message is
decided again when a worker claims it: if the consent still does not allow
the send, it is withheld again.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int64
			for _, a := range args {
				id, err := parseMessageID(a)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return withStore(cmd.Context(), database, func(st *store.Store) error {
				failed := 0
				for _, id := range ids {
					if err := st.Requeue(cmd.Context(), id); err != nil {
						failed++
						switch {
						case errors.Is(err, store.ErrSuperseded):
							// The store's message names the newer one.
							fmt.Fprintf(s.err, "message %d: not requeued: %v: retry the newer one if it failed\n", id, err)
						case errors.Is(err, store.ErrNotFound):
							fmt.Fprintf(s.err, "message %d: not requeued: no dead or withheld message with this id\n", id)
						default:
							return err
						}
						continue
					}
					fmt.Fprintf(s.out, "message %d: pending\n", id)
				}
				if failed > 0 {
					return &exitError{code: exitInvalid}
				}
				return nil
			})
		},
	}
	cmd.AddCommand(listCmd, showCmd, retryCmd, deadCmd)
	return cmd
}

type listOutboxOptions struct {
	state, partner string
	limit          int
	after          int64
	json           bool
}

// outboxMessage is how the CLI shows a message: never the payload unless asked.
type outboxMessage struct {
	ID            int64           `json:"id"`
	Key           string          `json:"key"`
	Partner       string          `json:"partner"`
	Purpose       string          `json:"purpose"`
	Kind          string          `json:"kind"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt string          `json:"next_attempt_at"`
	LeaseOwner    string          `json:"lease_owner,omitempty"`
	LeaseUntil    string          `json:"lease_until,omitempty"`
	LastError     string          `json:"last_error,omitempty"`
	Response      json.RawMessage `json:"response,omitempty"`
	CreatedAt     string          `json:"created_at"`
	UpdatedAt     string          `json:"updated_at"`
	// PayloadOf names the kept Bundle version the payload is (with the
	// audit log), when the message holds no copy of its own.
	PayloadOf string          `json:"payload_of,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

func messageView(m store.Message) outboxMessage {
	v := outboxMessage{
		ID: m.ID, Key: m.Key, Partner: m.Partner, Purpose: m.Purpose, Kind: m.Kind, State: string(m.State),
		Attempts: m.Attempts, NextAttemptAt: m.NextAttemptAt.Format(time.RFC3339), LeaseOwner: m.LeaseOwner,
		LastError: m.LastError, CreatedAt: m.CreatedAt.Format(time.RFC3339), UpdatedAt: m.UpdatedAt.Format(time.RFC3339),
		PayloadOf: m.PayloadRef,
	}
	if !m.LeaseUntil.IsZero() {
		v.LeaseUntil = m.LeaseUntil.Format(time.RFC3339)
	}
	if len(m.Response) > 0 && json.Valid(m.Response) {
		v.Response = json.RawMessage(m.Response)
	}
	return v
}

func runOutboxList(ctx context.Context, st *store.Store, o listOutboxOptions, s streams) error {
	ms, err := st.Messages(ctx, store.MessageQuery{State: store.MessageState(o.state), Partner: o.partner, AfterID: o.after, Limit: o.limit})
	if err != nil {
		return usageErrorf("%v", err)
	}
	if o.json {
		for _, m := range ms {
			if err := writeJSON(s, messageView(m)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ms) == 0 {
		fmt.Fprintln(s.err, "no messages")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPARTNER\tPURPOSE\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, m := range ms {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Partner, m.Purpose, m.State, m.Attempts, m.NextAttemptAt.Format(time.RFC3339), m.LastError)
	}
	return tw.Flush()
}

func parseMessageID(a string) (int64, error) {
	id, err := strconv.ParseInt(a, 10, 64)
	if err != nil || id < 1 {
		return 0, usageErrorf("%q is not a message id: ids are positive numbers (see 'pathway outbox list')", a)
	}
	return id, nil
}

func writeJSON(s streams, v any) error {
	enc := json.NewEncoder(s.out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// withStore opens the store named by the flag or the environment, runs fn
// and closes it.
func withStore(ctx context.Context, flag string, fn func(*store.Store) error) error {
	st, err := store.Open(ctx, databaseURL(flag))
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer st.Close()
	return fn(st)
}
