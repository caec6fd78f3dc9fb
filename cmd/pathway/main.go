// Command pathway is the Pathway FHIR interoperability adapter: it validates,
// converts, routes and exchanges referrals between NGOs, clinics and
// community supports, under the patient's consent.
//
// Run `pathway --help` for the commands.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}
