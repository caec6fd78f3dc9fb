package store

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Lists of values and keys are passed to the database as one argument (an
// array on PostgreSQL, a JSON array on SQLite) so that a statement's text
// is the same whatever the list's length: each is parsed and planned once
// and then served from the statement caches, where an IN list of n
// placeholders (or an OR chain of n key pairs) was a new text for every
// n, parsed and planned again every time. Planning a 200-pair OR chain was
// most of PostgreSQL's time during ingest.

// inList returns the condition that col is one of vals, with ? for its one
// argument, and that argument.
func inList(d Dialect, col string, vals []string) (string, any) {
	if d == DialectPostgres {
		return col + " = ANY(?::text[])", vals
	}
	return col + " IN (SELECT value FROM json_each(?))", jsonStrings(vals)
}

// inInts is inList for integers.
func inInts(d Dialect, col string, vals []int64) (string, any) {
	if d == DialectPostgres {
		return col + " = ANY(?::bigint[])", vals
	}
	b := make([]byte, 0, len(vals)*8+2)
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return col + " IN (SELECT value FROM json_each(?))", string(append(b, ']'))
}

// keysFrom returns a FROM clause that joins the resources table, as r, to
// the (resource_type, id) pairs of types and ids (of equal length), with ?
// for its arguments, and those arguments: a row of r for each pair stored,
// found through the primary key.
func (s *Store) keysFrom(types, ids []string) (string, []any) {
	if s.dialect == DialectPostgres {
		// A LATERAL subquery the planner cannot fold into a join (OFFSET
		// 0), as idLookup's: a join may be planned as a scan of the table
		// while its statistics are older than its rows.
		return "unnest(?::text[], ?::text[]) AS k(t, i), LATERAL (SELECT * FROM resources WHERE resource_type = k.t AND id = k.i OFFSET 0) AS r",
			[]any{types, ids}
	}
	// CROSS JOIN keeps the list as the outer loop: one primary-key lookup
	// a pair, never a scan of the table.
	return "json_each(?) AS k CROSS JOIN resources r ON r.resource_type = k.value ->> 0 AND r.id = k.value ->> 1",
		[]any{jsonKeys(types, ids, nil)}
}

// jsonKeys is the JSON array of the keys [types[i], ids[i]] (and, when
// versions is not nil, [types[i], ids[i], versions[i]]): SQLite's one
// argument for a list of keys, read with json_each.
func jsonKeys(types, ids []string, versions []int64) string {
	var b strings.Builder
	b.Grow(len(types) * 48)
	b.WriteByte('[')
	for i := range types {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		writeJSONString(&b, types[i])
		b.WriteByte(',')
		writeJSONString(&b, ids[i])
		if versions != nil {
			b.WriteByte(',')
			b.WriteString(strconv.FormatInt(versions[i], 10))
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

// jsonStrings is vals as a JSON array of strings.
func jsonStrings(vals []string) string {
	var b strings.Builder
	b.Grow(len(vals) * 24)
	b.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, v)
	}
	b.WriteByte(']')
	return b.String()
}

// writeJSONString writes v as a JSON string. The values here are FHIR ids,
// type names and the like, which need no escaping; anything else goes
// through encoding/json.
func writeJSONString(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(v)
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(v)
	b.WriteByte('"')
}
