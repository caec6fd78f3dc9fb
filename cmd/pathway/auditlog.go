package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/store"
)

// auditLog is the audit wiring of one process: the Auditor that the
// pipeline and the workers write through, and, when a signing key is
// configured, the Checkpointer that signs the log as it grows.
type auditLog struct {
	auditor *exchange.Auditor
	cp      *audit.Checkpointer
}

// configSigner reads the network's signing key: the configuration's
// signing_key (env or file), else $PATHWAY_SIGNING_KEY or
// $PATHWAY_SIGNING_KEY_FILE. It returns nil when none is set.
func (n *network) configSigner() (note.Signer, error) {
	var skey string
	if ref := n.cfg.SigningKey; !ref.IsZero() {
		v, err := exchange.ReadSecret(ref.Env, ref.File)
		if err != nil {
			return nil, usageErrorf("signing_key: %v", err)
		}
		skey = v
	} else {
		v, found, err := signingKey()
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, nil
		}
		skey = v
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		return nil, usageErrorf("signing key: %v", err)
	}
	return signer, nil
}

// startAudit wires the audit log into n for st: every decision and
// disclosure is logged in the transaction that makes it. With signer nil
// the entries are logged but not checkpointed, and warn says so (an
// operator signs later with pathway audit checkpoint).
func (n *network) startAudit(ctx context.Context, st *store.Store, signer note.Signer, warn io.Writer) (*auditLog, error) {
	al := &auditLog{auditor: &exchange.Auditor{Config: n.cfg.Raw}}
	if signer == nil {
		if warn != nil {
			fmt.Fprintln(warn, "note: no signing key (signing_key in the configuration, or $"+envSigningKey+"): audit entries are logged but no checkpoint is signed; sign later with pathway audit checkpoint")
		}
	} else {
		al.cp = audit.NewCheckpointer(audit.New(st), signer, audit.CheckpointerConfig{})
		if err := al.cp.Start(ctx); err != nil {
			return nil, err
		}
		al.auditor.Notify = al.cp.Notify
	}
	n.audit = al.auditor
	return al, nil
}

// stop signs a last checkpoint of what is not yet covered.
func (al *auditLog) stop() error {
	if al == nil || al.cp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := al.cp.Stop(ctx); err != nil {
		return fmt.Errorf("signing the last audit checkpoint: %w", err)
	}
	return nil
}

// openAudited opens the network's store (the flag, else the
// configuration's, else the default) with the audit log wired in, as
// ingest, worker and sync run: close signs a last checkpoint, reporting a
// failure to warn, and closes the store.
func (n *network) openAudited(ctx context.Context, database string, warn io.Writer) (st *store.Store, close func(), err error) {
	st, err = store.Open(ctx, n.storeURL(database))
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	signer, err := n.configSigner()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	al, err := n.startAudit(ctx, st, signer, warn)
	if err != nil {
		st.Close()
		return nil, nil, &exitError{code: exitInvalid, msg: err.Error()}
	}
	return st, func() {
		if err := al.stop(); err != nil {
			fmt.Fprintln(warn, err)
		}
		st.Close()
	}, nil
}
