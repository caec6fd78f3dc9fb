// Package policy will hold consent evaluation, data-sharing agreements,
// security labelling and redaction, as pure functions without I/O.
// Nothing is implemented here yet.
package policy
