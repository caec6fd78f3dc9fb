package store

import (
	"testing"
	"time"
)

// TestSQLiteTime: timestamps read quickly read as timeValue reads them,
// in the usual layout and in any other.
func TestSQLiteTime(t *testing.T) {
	for _, s := range []string{
		"2025-05-01T09:30:00.123456Z", "0001-01-01T00:00:00.000000Z", "0000-01-01T00:00:00.000000Z",
		"9999-12-31T23:59:59.999999Z", "2024-02-29T12:00:00.000001Z", "2025-02-29T12:00:00.000000Z",
		"2025-04-31T12:00:00.000000Z", "2025-13-01T12:00:00.000000Z", "2025-00-01T12:00:00.000000Z",
		"2025-05-00T12:00:00.000000Z", "2025-05-01T24:00:00.000000Z", "2025-05-01T23:60:00.000000Z",
		"2025-05-01T23:59:60.000000Z", "2025-05-01T09:30:00.12345Z", "2025-05-01T09:30:00.1234567Z",
		"2025-05-01T09:30:00.123456+00:00", "2025-05-01T11:30:00.123456+02:00", "2025-05-01 09:30:00.123456Z",
		"2025-05-01T09:30:00,123456Z", "2025-05-01T09:30:00.12345aZ", "+025-05-01T09:30:00.123456Z",
		"2025-5-01T09:30:00.1234567Z", "2025-05-01T09:30:00Z", "", "2025-05-01T09:30:00.123456z",
	} {
		var want timeValue
		wantErr := want.Scan(s)
		got, err := sqliteTime([]byte(s))
		if (err == nil) != (wantErr == nil) || !got.Equal(want.t) || got.Location() != want.t.Location() {
			t.Errorf("sqliteTime(%q) = %v, %v; timeValue reads %v, %v", s, got, err, want.t, wantErr)
		}
		if q, ok := parseSQLiteTime([]byte(s)); ok {
			if p, err := time.Parse(sqliteTimeLayout, s); err != nil || !p.Equal(q) {
				t.Errorf("parseSQLiteTime(%q) = %v; time.Parse reads %v, %v", s, q, p, err)
			}
		}
	}
}
