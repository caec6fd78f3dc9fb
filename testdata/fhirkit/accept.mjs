// A partner that works on Pathway's API with a FHIR client library written by
// others (fhir-kit-client, pinned in package.json): it reads the
// CapabilityStatement, searches the Tasks waiting for it and accepts one, then
// prints a JSON summary line. cmd/pathway/fhirkit_test.go runs it against a
// real pathway serve.
//
//   BASE=http://127.0.0.1:8080/fhir TOKEN=pwt_... node accept.mjs
//
// ACCEPT_WITH=update (the default) sends the whole Task back with its status
// set to accepted (PUT, with If-Match); ACCEPT_WITH=patch sends a JSON Patch.
// Any failure exits non-zero with the server's answer on stderr.

import { readFile } from 'node:fs/promises';
import { Client, CapabilityTool } from 'fhir-kit-client';

function fail(message, detail) {
  console.error(`accept.mjs: ${message}`);
  if (detail !== undefined) console.error(typeof detail === 'string' ? detail : JSON.stringify(detail, null, 2));
  process.exit(1);
}

const base = process.env.BASE;
const token = process.env.TOKEN;
const mode = process.env.ACCEPT_WITH || 'update';
if (!base || !token) fail('set BASE (the FHIR base URL) and TOKEN (the partner API token)');
if (mode !== 'update' && mode !== 'patch') fail(`ACCEPT_WITH must be update or patch, not ${mode}`);

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.resolve('fhir-kit-client')), 'utf8'));
const client = new Client({ baseUrl: base, bearerToken: token });

async function step(name, call) {
  try {
    return await call();
  } catch (err) {
    fail(`${name}: ${err.message}`, err.response?.data);
  }
}

// 1. What the server says it supports.
const cs = await step('capabilityStatement', () => client.capabilityStatement());
if (cs.resourceType !== 'CapabilityStatement') fail('metadata is not a CapabilityStatement', cs);
if (cs.fhirVersion !== '4.0.1') fail(`fhirVersion is ${cs.fhirVersion}, not 4.0.1`);
const caps = new CapabilityTool(cs);
for (const interaction of ['read', 'search-type', mode]) {
  if (!caps.resourceCan('Task', interaction)) fail(`the CapabilityStatement does not list Task ${interaction}`, caps.interactionsFor({ resourceType: 'Task' }));
}
if (!caps.resourceSearch('Task', 'status')) fail('the CapabilityStatement does not list the Task status search parameter');

// 2. The referrals waiting for this partner.
const bundle = await step('search', () => client.search({ resourceType: 'Task', searchParams: { status: 'requested' } }));
if (bundle.resourceType !== 'Bundle' || bundle.type !== 'searchset') fail('the search did not answer a searchset Bundle', bundle);
const tasks = (bundle.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === 'Task');
if (tasks.length === 0) fail('no requested Task to accept', bundle);
for (const t of tasks) {
  if (t.status !== 'requested') fail(`the search for status=requested returned Task/${t.id} with status ${t.status}`);
}
const task = tasks[0];
const versionBefore = task.meta?.versionId;
if (!versionBefore) fail(`Task/${task.id} has no meta.versionId`, task);

// 3. Accept it.
let updated;
if (mode === 'update') {
  const body = { ...task, status: 'accepted' };
  updated = await step('update', () =>
    client.update({
      resourceType: 'Task',
      id: task.id,
      body,
      options: { headers: { 'If-Match': `W/"${versionBefore}"`, Prefer: 'return=representation' } },
    }),
  );
} else {
  updated = await step('patch', () =>
    client.patch({
      resourceType: 'Task',
      id: task.id,
      jsonPatch: [
        { op: 'test', path: '/status', value: 'requested' },
        { op: 'replace', path: '/status', value: 'accepted' },
      ],
      options: { headers: { 'If-Match': `W/"${versionBefore}"`, Prefer: 'return=representation' } },
    }),
  );
}
if (updated.resourceType !== 'Task' || updated.id !== task.id || updated.status !== 'accepted') {
  fail(`the ${mode} did not answer Task/${task.id} accepted`, updated);
}

// 4. Read it back.
const read = await step('read', () => client.read({ resourceType: 'Task', id: task.id }));
if (read.status !== 'accepted') fail(`Task/${task.id} reads back as ${read.status}`, read);
const versionAfter = read.meta?.versionId;
if (!versionAfter || versionAfter === versionBefore) fail(`Task/${task.id} version did not change (${versionBefore} -> ${versionAfter})`);

console.log(
  JSON.stringify({
    library: `${pkg.name}@${pkg.version}`,
    fhirVersion: cs.fhirVersion,
    via: mode,
    requested: tasks.length,
    task: task.id,
    before: task.status,
    after: read.status,
    versionBefore,
    versionAfter,
  }),
);
