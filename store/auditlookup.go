package store

import (
	"context"
	"fmt"
)

// LoggedAuditIDs returns which of ids are logged already, inside the
// transaction: a caller appending many entries at once leaves those out
// instead of failing the whole append with ErrAuditDuplicate.
func (tx *Tx) LoggedAuditIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	logged := map[string]bool{}
	for start := 0; start < len(ids); start += auditBatchRows {
		chunk := ids[start:min(start+auditBatchRows, len(ids))]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i]
		}
		query := `SELECT entry_id FROM audit_entries WHERE entry_id IN (` + placeholders(len(chunk)) + `)`
		rs, err := tx.q.query(ctx, rebind(tx.s.dialect, query), args...)
		if err != nil {
			return nil, fmt.Errorf("looking up audit entry ids: %w", err)
		}
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				rs.Close()
				return nil, fmt.Errorf("looking up audit entry ids: %w", err)
			}
			logged[id] = true
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("looking up audit entry ids: %w", err)
		}
	}
	return logged, nil
}
