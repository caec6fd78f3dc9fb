package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// streams are the command's standard input and outputs, injected so tests
// can run commands in process.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Exit codes shared by every command.
const (
	exitOK      = 0 // everything asked for succeeded
	exitInvalid = 1 // the command ran, and found something invalid or failing
	exitUsage   = 2 // the command line was wrong: nothing was done
)

// exitError carries an exit code through cobra. A nil-message exitError
// means the command already reported what went wrong.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func run(args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(s.err, "pathway:", ee.msg)
		}
		return ee.code
	}
	// Anything cobra itself rejects (unknown flag or command, bad args) is usage.
	fmt.Fprintln(s.err, "pathway:", err)
	fmt.Fprintln(s.err, "Run 'pathway --help' for usage.")
	return exitUsage
}

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "pathway",
		Short: "FHIR R4 referral exchange for NGOs, clinics and community supports",
		Long: `Pathway converts NGO case records and clinic referrals into FHIR R4
ServiceRequest, Consent and Task resources, routes them between partners
under the patient's consent and each partner's data-sharing agreement, and
records every decision in a verifiable audit log.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.AddCommand(
		newValidateCmd(s),
		newDemoCmd(s),
		newMappingCmd(s),
		newConvertCmd(s),
		newConsentCmd(s),
		newFilterCmd(s),
		newOutboxCmd(s),
		newInitCmd(s),
		newConfigCmd(s),
		newIngestCmd(s),
		newWorkerCmd(s),
		newReferralsCmd(s),
		newKeysCmd(s),
		newAuditCmd(s),
		newPartnersCmd(s),
		newServeCmd(s),
		newSyncCmd(s),
	)
	return root
}

// databaseURL is the store URL from the flag, else PATHWAY_DATABASE_URL,
// else the embedded default. Only package main reads the environment.
func databaseURL(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv("PATHWAY_DATABASE_URL"); v != "" {
		return v
	}
	return "sqlite://pathway.db"
}
