package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/spf13/cobra"
)

// partnersImportOptions are the parsed flags of `pathway partners import`.
type partnersImportOptions struct {
	From   exchange.DirectoryFormat
	Kind   policy.PartnerKind
	JSON   bool
	Files  []string
	Invoke string // the command line, quoted in the fragment's header
}

func parsePartnersImport(from, kind string, asJSON bool, files []string) (partnersImportOptions, error) {
	o := partnersImportOptions{From: exchange.DirectoryFormat(from), Kind: policy.PartnerKind(kind), JSON: asJSON, Files: files}
	switch o.From {
	case exchange.DirectoryHSDS, exchange.DirectoryFHIR:
	case "":
		return o, usageErrorf("partners import: --from is required: hsds or fhir")
	default:
		return o, usageErrorf("partners import: --from %q: must be hsds or fhir", from)
	}
	switch o.Kind {
	case "", policy.KindClinic, policy.KindNGO, policy.KindCommunity:
	default:
		return o, usageErrorf("partners import: --kind %q: must be clinic, ngo or community", kind)
	}
	if len(files) == 0 {
		return o, usageErrorf("partners import: name at least one directory file")
	}
	o.Invoke = "pathway partners import --from " + from
	if kind != "" {
		o.Invoke += " --kind " + kind
	}
	return o, nil
}

func newPartnersCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partners",
		Short: "Import partners from service directories",
	}
	var from, kind string
	var asJSON bool
	imp := &cobra.Command{
		Use:   "import --from hsds|fhir FILE...",
		Short: "Write pathway.yaml partner entries read from an HSDS or FHIR directory",
		Long: `Read partner organisations from service-directory files and write a
pathway.yaml 'partners:' fragment to standard output, for review and
pasting into pathway.yaml. Warnings about what could not be mapped go to
standard error, each naming its file and element.

--from hsds reads Open Referral HSDS 3 JSON: one organization with its
services, a list of organizations, or a tabular export (organizations,
services, locations, service_at_location, languages...).
--from fhir reads FHIR R4 JSON (a Bundle, one resource, or NDJSON) of
Organization, HealthcareService, Endpoint and Location resources, as an
mCSD directory publishes them.

Each partner gets an id derived from its directory id, its name and
identifiers, the FHIR base URL of an active hl7-fhir-rest Endpoint, the
service categories that map clearly to Pathway's codes, BCP-47 languages
and catchment. Its kind is inferred where the directory makes it clear
(Organization.type, HealthcareService type), else taken from --kind.
No agreement is written: each partner gets a commented placeholder and,
until the operator copies in the agreement signed with it, it receives
nothing.

Exit status: 0 when the fragment was written (warnings or not), 1 when
the input has errors (nothing is written), 2 on a usage error.`,
		Example: `  pathway partners import --from hsds --kind community directory.json > partners.yaml
  pathway partners import --from fhir --kind ngo mcsd-bundle.json endpoints.ndjson
  pathway partners import --from fhir --json directory.ndjson | jq '.warnings[].message'`,
		RunE: func(_ *cobra.Command, args []string) error {
			o, err := parsePartnersImport(from, kind, asJSON, args)
			if err != nil {
				return err
			}
			return runPartnersImport(o, s)
		},
	}
	imp.Flags().StringVar(&from, "from", "", "the directory format: hsds or fhir")
	imp.Flags().StringVar(&kind, "kind", "", "kind of partners the directory does not make clear: clinic, ngo or community")
	imp.Flags().BoolVar(&asJSON, "json", false, "print {format, partners, warnings} as JSON instead of YAML")
	cmd.AddCommand(imp)
	return cmd
}

func runPartnersImport(o partnersImportOptions, s streams) error {
	files := make([]exchange.DirectoryFile, 0, len(o.Files))
	for _, name := range o.Files {
		data, err := os.ReadFile(name)
		if err != nil {
			return usageErrorf("%v", err)
		}
		files = append(files, exchange.DirectoryFile{Name: name, Data: data})
	}
	d, err := exchange.ImportDirectory(o.From, files, exchange.DirectoryOptions{Kind: o.Kind})
	var de *exchange.DirectoryError
	if errors.As(err, &de) {
		lines := make([]string, len(de.Problems))
		for i, p := range de.Problems {
			lines[i] = p.String()
		}
		return &exitError{code: exitInvalid, msg: "partners import: nothing written:\n" + strings.Join(lines, "\n")}
	}
	if err != nil {
		return usageErrorf("partners import: %v", err)
	}
	if o.JSON {
		enc := json.NewEncoder(s.out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	if _, err := s.out.Write(d.YAML(o.Invoke)); err != nil {
		return err
	}
	for _, w := range d.Warnings {
		fmt.Fprintln(s.err, "warning:", w.String())
	}
	return nil
}
