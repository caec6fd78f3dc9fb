// Package connectors reads the records Pathway ingests: NGO case exports
// (CSV, a JSON array, NDJSON), FHIR JSON documents and clinic HL7 v2
// messages. It is the first step of a referral's flow: every record comes
// out with a stable Position ("referrals.csv:12", "ref.hl7:message 3")
// that rejects files, logs and audit entries quote, and is then handed to
// a mapping (package mappings).
//
// # Sources
//
// A Source yields Records one at a time:
//
//	OpenCSV(r, name, CSVOptions{...})  one record per data row; Record.Fields maps header -> cell
//	OpenJSONArray(r, name)             one record per element of a top-level array; Record.JSON
//	OpenNDJSON(r, name)                one record per line; Record.JSON
//	OpenJSONObject(r, name)            the whole document (a FHIR resource or Bundle) as one record
//	OpenHL7v2(r, name)                 one record per message, in or out of batch and file envelopes; Record.HL7
//
// Every source streams: memory stays flat whatever the size of the input
// (one record and a 64 KiB buffer; records are capped at
// DefaultMaxRecordBytes). Each record keeps its bytes as read in
// Record.Raw, for the rejects file.
//
// # Bad input
//
// A problem with one record (a wrong column count, an unbalanced quote,
// invalid UTF-8, a line that is not JSON, an HL7 v2 message with broken
// delimiters or no MSH, a record too large) comes back as that record's
// Err, a *RecordError, and reading goes on with the next record. Its Kind
// (ErrColumnCount, ErrInvalidUTF8, ...) works with errors.Is. Only input
// that cannot be read on makes Next fail: a failing reader, an unusable CSV
// header, a syntax error inside a JSON array. Errors name the file, the
// row, line or message, and the column, key, segment or field, never a
// value: they are safe to log. Record.LogValue logs only the position.
//
// # HL7 v2
//
// HL7Message holds the segments of a message with their fields as written;
// Get and All read values by path, splitting repetitions, components and
// subcomponents with the message's own delimiters (MSH-1, MSH-2) and
// decoding escape sequences:
//
//	m.Get("PID-5.1")       family name
//	m.Get("PID-3[2].1")    id of the second identifier (repetitions count from 1)
//	m.Get("PRD[2]-2.1")    family name in the second PRD segment
//	m.All("PID-3.1")       the ids of every identifier
//
// See HL7Path for the syntax. MessageCode, TriggerEvent and ControlID give
// MSH-9.1, MSH-9.2 and MSH-10.
//
// # Example
//
// Reading a CSV export and setting rejected rows aside:
//
//	f, err := os.Open("referrals.csv")
//	if err != nil {
//		return err
//	}
//	defer f.Close()
//	src, err := connectors.OpenCSV(f, "referrals.csv", connectors.CSVOptions{Delimiter: ';', Encoding: "windows-1252"})
//	if err != nil {
//		return err // no header, duplicate column names, unknown encoding...
//	}
//	defer src.Close()
//	for {
//		rec, err := src.Next()
//		if err == io.EOF {
//			break
//		}
//		if err != nil {
//			return err // the input cannot be read on
//		}
//		if rec.Err != nil {
//			rejects.Write(rec.Pos, rec.Err, rec.Raw) // "referrals.csv:7: expected 45 columns, found 44"
//			continue
//		}
//		convert(rec.Pos, rec.Fields)
//	}
package connectors
