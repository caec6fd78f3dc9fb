// Package exchange moves referrals between partners: routing, the ingest
// pipeline, the outbox dispatcher and the referral Task state machine.
//
// What exists so far is delivery: a Deliverer claims due outbox messages
// (store.Claim, with a lease), asks Prepare to re-decide each against the
// consents as they are now (a consent revoked after enqueue withholds the
// message), POSTs the prepared transaction Bundle to the partner with resty
// (a timeout on every request, no retries of resty's own), and settles the
// message: ack on 2xx; retry with exponential backoff and jitter on
// timeouts, connection failures, 408, 5xx and 401 (after invalidating the
// credentials), honouring Retry-After on 429 and 503; dead-letter on any
// other refusal, keeping the partner's OperationOutcome, or when the
// attempts run out. A lost lease (another worker took the message over)
// changes nothing. Bundles use PUT with deterministic ids or conditional
// creates, so a resend never duplicates at the partner: delivery is
// at-least-once on the wire and exactly-once in effect.
package exchange
