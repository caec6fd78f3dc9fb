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
	if len(ids) == 0 {
		return logged, nil
	}
	cond, arg := inList(tx.s.dialect, "entry_id", ids)
	rs, err := tx.q.query(ctx, rebind(tx.s.dialect, `SELECT entry_id FROM audit_entries WHERE `+cond), arg)
	if err != nil {
		return nil, fmt.Errorf("looking up audit entry ids: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, fmt.Errorf("looking up audit entry ids: %w", err)
		}
		logged[id] = true
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("looking up audit entry ids: %w", err)
	}
	return logged, nil
}
