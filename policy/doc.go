// Package policy decides what of a patient's data a partner may receive,
// for which purpose, and prepares exactly that: consent evaluation over R4
// Consent resources, partners' data-sharing agreements, DS4P security
// labelling, and redaction. It is pure: it takes parsed resources,
// configuration bytes and a time, reads no files, no clock and no network.
//
// # Deciding
//
// An Engine is compiled from the policy part of pathway.yaml (ParseConfig):
// the network's base policy, the partners with their agreements, and extra
// labelling rules. Engine.Decide answers one Request (partner, purpose,
// action, time) against the patient's consents, for the request in general
// or for given resources; Engine.Filter does the same for a Bundle and
// returns the Bundle to send. Both return a Decision:
//
//   - Effect: permit, deny, or no-consent (no active consent applies and the
//     base policy is opt-in);
//   - Obligations: resources and elements to remove or mask, labels to attach;
//   - Trail: the steps that decided, each naming the consent and provision
//     ("Consent/c1 provision.provision[1]"), the agreement clause, the base
//     policy or the immigration rule;
//   - Explain: the same in a paragraph a link worker can read (it names
//     the partner and the purpose, never the patient's details).
//
// # Semantics
//
// Only active consents with scope patient-privacy count. A provision applies
// when every criterion it has matches: period, actor (recipient by
// Organization reference or identifier, or by partner kind through the
// consent-partner-kind modifier extension), action, purpose (v3-ActReason,
// with its hierarchy: COC is under TREAT, CAREMGT under HOPERAT), class,
// code, securityLabel, dataPeriod and data (instance, related, dependents,
// authoredby). Nested provisions are exceptions to their parent. The root's
// type is the consent's base; without one, policyRule OPTIN makes it a
// permit and OPTOUT a deny. Across consents a deny overrides a permit; when
// none applies the network's base policy decides. In Filter each consent
// decides only for the resources about its own patient, so a Bundle about
// several patients is decided patient by patient. A nested permit under a
// provision whose match cannot be checked does not apply. A criterion that cannot
// be checked (an actor known only by display, a custodian) keeps a permit
// from applying and lets a deny apply. Immigration and legal-status data
// (label IMMIG) leaves only under a permit provision that carries the IMMIG
// label, names the partner and lists the requested purpose itself, whatever
// the base policy. A purpose outside the partner's agreement is a deny.
//
// docs/policy.md describes the rules, the configuration and worked examples.
//
// # Example
//
//	cfg, err := policy.ParseConfig("pathway.yaml", data)
//	...
//	engine, err := policy.NewEngine(cfg)
//	...
//	p := cfg.Partner("community-c")
//	out, decision := engine.Filter(policy.Request{
//		Partner: p, Agreement: &p.Agreement, Purpose: "COC",
//		At: now, Base: cfg.Network.BasePolicy,
//	}, bundle)
//	if out == nil { // deny or no-consent: nothing leaves
//		log.Info("not sent", "explanation", decision.Explain())
//	}
//
// The Bundle Filter returns shares unchanged parts with its input (copy on
// write): treat both as read-only.
package policy
