package fhir

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
)

// IDNamespace is Pathway's UUID namespace for name-based (version 5) ids. It
// was derived once, and is pinned by a test, as
//
//	UUIDv5(NameSpaceURL 6ba7b811-9dad-11d1-80b4-00c04fd430c8, "https://pathway-fhir.org")
//
// It must never change: every id Pathway has ever issued depends on it.
const IDNamespace = "2870e10f-91cc-5557-b493-2182cf5a49af"

// nameSpaceURL is the RFC 9562 namespace for names that are URLs.
var nameSpaceURL = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// pathwayNamespace is IDNamespace as bytes.
var pathwayNamespace = mustParseUUID(IDNamespace)

// NewID returns the deterministic logical id of a resource Pathway derives
// from a source record: an RFC 9562 version-5 UUID (SHA-1, name-based) under
// IDNamespace, in lowercase canonical form (36 characters, a valid FHIR id and,
// behind "urn:uuid:", a valid Bundle fullUrl).
//
// The same inputs always give the same id, so re-ingesting a record never
// duplicates it. The name hashed is the length-prefixed concatenation of
// sourceSystem, sourceID and parts ("5:ngo-a,4:c-17,4:Task,"), so no two
// different lists of strings share a name: ("a|b", "c") and ("a", "b|c")
// give different ids. By convention parts name what is derived from the
// record, the resource type first: NewID("ngo-a", "c-17", "Task").
func NewID(sourceSystem, sourceID string, parts ...string) string {
	n := 2 + len(parts)
	size := len(sourceSystem) + len(sourceID)
	for _, p := range parts {
		size += len(p)
	}
	name := make([]byte, 0, size+n*6)
	name = appendPart(name, sourceSystem)
	name = appendPart(name, sourceID)
	for _, p := range parts {
		name = appendPart(name, p)
	}
	return formatUUID(uuidV5(pathwayNamespace, name))
}

// appendPart appends one length-prefixed part: decimal byte length, ':', the bytes, ','.
func appendPart(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// FullURL returns the Bundle fullUrl of a resource with a UUID id: "urn:uuid:" + id.
func FullURL(id string) string { return "urn:uuid:" + id }

// IsUUID reports whether s is a UUID in lowercase canonical form
// (8-4-4-4-12 lowercase hexadecimal digits), the form NewID returns and
// the only form Pathway accepts after "urn:uuid:".
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// uuidV5 computes the RFC 9562 version-5 UUID of name in namespace.
func uuidV5(namespace [16]byte, name []byte) [16]byte {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write(name)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	return u
}

// formatUUID writes u in lowercase canonical form.
func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// mustParseUUID parses a canonical UUID constant; it panics on a malformed
// constant, which the package's tests would catch at once.
func mustParseUUID(s string) [16]byte {
	var u [16]byte
	if !IsUUID(s) {
		panic("fhir: malformed UUID constant " + s)
	}
	hexs := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(hexs)); err != nil {
		panic("fhir: malformed UUID constant " + s)
	}
	return u
}
