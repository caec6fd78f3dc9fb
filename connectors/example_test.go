package connectors_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/pathway-fhir/pathway/connectors"
)

func ExampleOpenCSV() {
	const export = "referral_id,given_name,language,notes\n" +
		"R-1,Layla,ar,\"تحتاج إلى معالجة نفسية\nناطقة بالعربية\"\n" +
		"R-2,Olena,uk\n" +
		"R-3,Amir,prs,\"Prefers a male link worker\"\n"
	src, err := connectors.OpenCSV(strings.NewReader(export), "referrals.csv", connectors.CSVOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	for {
		rec, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if rec.Err != nil {
			fmt.Println("rejected:", rec.Err)
			continue
		}
		fmt.Printf("%s (line %d): %s %q\n", rec.Pos, rec.Pos.Line, rec.Fields["referral_id"], rec.Fields["notes"])
	}
	// Output:
	// referrals.csv:1 (line 2): R-1 "تحتاج إلى معالجة نفسية\nناطقة بالعربية"
	// rejected: referrals.csv:2: expected 4 columns, found 3
	// referrals.csv:3 (line 5): R-3 "Prefers a male link worker"
}

func ExampleOpenHL7v2() {
	const batch = "BHS|^~\\&|EHR|CLINIC\r" +
		"MSH|^~\\&|EHR|CLINIC|PATHWAY|NET|20260120||REF^I12^REF_I12|MSG001|P|2.5\r" +
		"PRD|RP^Referring Provider|Powell^Robert\r" +
		"PRD|RT^Referred to Provider|Haddad^Mona\r" +
		"PID|1||PAT1^^^CLINIC~123456789^^^^SS||Doe^Jane\r" +
		"MSH|^~\\&|EHR|CLINIC|PATHWAY|NET|20260120||REF^I12^REF_I12|MSG002\r" +
		"PID|1||PAT2^^^CLINIC||Roe^Ana\r" +
		"BTS|2\r"
	src, _ := connectors.OpenHL7v2(strings.NewReader(batch), "referrals.hl7")
	defer src.Close()
	for {
		rec, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		m := rec.HL7
		fmt.Println(rec.Pos, m.MessageType(), m.ControlID(), m.All("PID-3.1"), m.Get("PRD[2]-2.1"))
	}
	// Output:
	// referrals.hl7:message 1 REF^I12 MSG001 [PAT1 123456789] Haddad
	// referrals.hl7:message 2 REF^I12 MSG002 [PAT2]
}

func ExampleHL7Message_Get() {
	m, err := connectors.ParseHL7Message([]byte(
		"MSH|^~\\&|EHR||PATHWAY||20260120||REF^I12|MSG001|P|2.5\n" +
			"PID|1||PAT1^^^CLINIC&1.2.3&ISO~987^^^NHS||Kovalenko^Olena\n" +
			"NTE|1||Needs an interpreter \\T\\ childcare.\\.br\\Prefers afternoons.\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Get("PID-5.2"))
	fmt.Println(m.Get("PID-3[1].4.2"))
	fmt.Println(m.Get("PID-3[2].1"))
	fmt.Println(m.Get("NTE-3"))
	// Output:
	// Olena
	// 1.2.3
	// 987
	// Needs an interpreter & childcare.
	// Prefers afternoons.
}
