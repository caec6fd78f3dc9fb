package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/spf13/cobra"
)

func newInitCmd(s streams) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter pathway.yaml",
		Long: `Write a commented starter configuration (default ./pathway.yaml): the
network, two example partners (a clinic with its own FHIR server, a
community group working on Pathway's API) with their data-sharing
agreements, routes and the retry policy. Edit it, then check it with
'pathway config lint'. An existing file is never overwritten unless
--force is given.`,
		Example: `  pathway init
  pathway init /etc/pathway/pathway.yaml && pathway config lint /etc/pathway/pathway.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file := "pathway.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(file, flags, 0o640)
			if errors.Is(err, os.ErrExist) {
				return usageErrorf("%s exists: edit it, or give --force to replace it", file)
			}
			if err != nil {
				return usageErrorf("%v", err)
			}
			if _, err := f.Write(exchange.StarterConfig()); err != nil {
				f.Close()
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			if err := f.Close(); err != nil {
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			fmt.Fprintf(s.out, "wrote %s: edit it, then run 'pathway config lint %s'\n", file, file)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}

func newConfigCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the network configuration",
	}
	var asJSON bool
	lint := &cobra.Command{
		Use:   "lint FILE",
		Short: "Report every problem of a pathway.yaml as file:line:col",
		Long: `Check a pathway.yaml and report every problem as file:line:col: path:
message: YAML errors, unknown keys, secrets written in the file (name an
environment variable or a file instead), partners a route names but the
file does not define, route purposes no agreement of the target allows,
plain http endpoints outside this machine, and every agreement, label and
value-set problem.

Exit status: 0 when the file is good, 1 when it has problems, 2 when it
cannot be read.`,
		Example: `  pathway config lint pathway.yaml
  pathway config lint --json pathway.yaml | jq -r '.problems[].message'`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErrorf("%v", err)
			}
			_, err = exchange.ParseConfig(args[0], data)
			var ce *exchange.ConfigError
			if err != nil && !errors.As(err, &ce) {
				return usageErrorf("%v", err)
			}
			if asJSON {
				type problem struct {
					File    string `json:"file"`
					Line    int    `json:"line"`
					Col     int    `json:"col"`
					Path    string `json:"path,omitempty"`
					Message string `json:"message"`
				}
				out := struct {
					File     string    `json:"file"`
					Valid    bool      `json:"valid"`
					Problems []problem `json:"problems"`
				}{File: args[0], Valid: ce == nil, Problems: []problem{}}
				if ce != nil {
					for _, p := range ce.Problems {
						out.Problems = append(out.Problems, problem{p.File, p.Line, p.Col, p.Path, p.Message})
					}
				}
				enc := json.NewEncoder(s.out)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else if ce != nil {
				for _, p := range ce.Problems {
					fmt.Fprintln(s.out, p.String())
				}
			} else {
				fmt.Fprintf(s.out, "%s: ok\n", args[0])
			}
			if ce != nil {
				return &exitError{code: exitInvalid}
			}
			return nil
		},
	}
	lint.Flags().BoolVar(&asJSON, "json", false, "print {file, valid, problems: [{file, line, col, path, message}]}")
	cmd.AddCommand(lint)
	return cmd
}
