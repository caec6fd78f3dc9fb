package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pathway-fhir/pathway/mappings"
	"github.com/spf13/cobra"
)

func newMappingCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Check and list mappings",
		Long: `Mappings turn source records (CSV rows, JSON objects, HL7 v2 messages,
FHIR resources) into referrals. The language is described in docs/mappings.md.`,
	}
	cmd.AddCommand(newMappingLintCmd(s), newMappingListCmd(s))
	return cmd
}

func newMappingLintCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "lint FILE...",
		Short: "Check mapping files and report every problem as file:line:col",
		Long: `Check mapping files: YAML syntax, known targets and options, tables,
date formats, conditions, and that every record gets an id. Every problem
is printed as file:line:col: message, the form editors jump to.

Exit status: 0 when every file is clean, 1 when any has problems, 2 for
usage errors.`,
		Example: `  pathway mapping lint my-ngo.yaml
  pathway mapping lint mappings/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, file := range args {
				if _, err := os.Stat(file); err != nil {
					return usageErrorf("no such file: %s", file)
				}
				_, err := mappings.LoadFile(file, os.ReadFile)
				var le *mappings.LoadError
				switch {
				case errors.As(err, &le):
					bad++
					for _, p := range le.Problems {
						fmt.Fprintln(s.out, p)
					}
				case err != nil:
					bad++
					fmt.Fprintf(s.out, "%s:1:1: %v\n", file, err)
				}
			}
			if bad > 0 {
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("%d of %d mapping files have problems", bad, len(args))}
			}
			fmt.Fprintf(s.out, "%d mapping files checked: no problems\n", len(args))
			return nil
		},
	}
}

func newMappingListCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in mappings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, name := range mappings.Builtins() {
				m, err := mappings.Builtin(name)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "%-20s %-7s %s\n", name, m.Input.Format, m.Description)
			}
			return nil
		},
	}
}
