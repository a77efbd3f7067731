// Interoperability suite: the dpopkit demo server (examples/server) against
// two independent JavaScript implementations, oauth4webapi (the client side
// of OAuth 2.0 with DPoP) and jose (JWS/JWT). See README.md beside this file.
//
// It builds the Go server once, starts it five times on free loopback ports
// (opaque tokens; opaque tokens with server nonces required; JWT access
// tokens; an issuer with a path; the FAPI 2.0 profile with private_key_jwt
// clients, which has cases of its own), runs every case against each, prints `ok   <name>` or
// `FAIL <name>: <reason>` per case and `N passed, N failed` at the end, and
// exits non-zero when a case failed. The servers are stopped in every case.

import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import * as jose from 'jose'
import * as oauth from 'oauth4webapi'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '..', '..')

// The demo server's fixed registrations (examples/server).
const REDIRECT_URI = 'http://127.0.0.1:8765/callback'
const CONFIDENTIAL = { id: 'demo', secret: 'demo-secret' }
const PUBLIC = { id: 'demo-public' }
// The /api resource server's client: it may introspect the tokens meant for
// /api, and nothing else.
const RESOURCE_SERVER = { id: 'demo-rs', secret: 'demo-rs-secret' }
const USER = { name: 'alice', password: 'wonderland' }

const CASE_TIMEOUT_MS = 20_000
const REQUEST_TIMEOUT_MS = 10_000
const BUILD_TIMEOUT_MS = 240_000
const START_TIMEOUT_MS = 15_000

const VARIANTS = [
  { name: 'opaque', flags: ['-token-format', 'opaque'] },
  { name: 'nonce', flags: ['-token-format', 'opaque', '-require-nonce'], requireNonce: true },
  { name: 'jwt', flags: ['-token-format', 'jwt'], jwt: true },
  // The issuer has a path: every endpoint and API is under it, the metadata
  // at /.well-known/oauth-authorization-server/tenant1 (RFC 8414 §3.1).
  { name: 'tenant', flags: ['-token-format', 'opaque'], path: '/tenant1' },
]

// Options every oauth4webapi call gets: the servers are plain-HTTP loopback
// addresses, which the library refuses unless told otherwise.
const httpOptions = {
  [oauth.allowInsecureRequests]: true,
  signal: () => AbortSignal.timeout(REQUEST_TIMEOUT_MS),
}

let passed = 0
let failed = 0
const children = new Set()
let tmpDir // the build directory, removed on every way out

// ---------------------------------------------------------------- reporting

class Skip extends Error {}

function oneLine(s) {
  return String(s).replace(/\s+/g, ' ').trim()
}

function describe(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return oneLine(
      `${err.message}: HTTP ${err.status} error=${err.error}` +
        (err.error_description ? ` (${err.error_description})` : ''),
    )
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return oneLine(
      `${err.message}: HTTP ${err.status} WWW-Authenticate: ${err.response.headers.get('www-authenticate')}`,
    )
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    return oneLine(`${err.message}: ${err.cause}`)
  }
  if (err instanceof oauth.OperationProcessingError || err instanceof oauth.UnsupportedOperationError) {
    let cause = ''
    try {
      cause = err.cause === undefined ? '' : ` cause=${JSON.stringify(err.cause)}`.slice(0, 400)
    } catch {}
    return oneLine(`${err.message} [${err.code}]${cause}`)
  }
  if (err instanceof Error) {
    return oneLine(err.message + (err.cause instanceof Error ? ` (cause: ${err.cause.message})` : ''))
  }
  return oneLine(String(err))
}

function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

async function check(name, fn) {
  try {
    await withTimeout(Promise.resolve().then(fn), CASE_TIMEOUT_MS, 'case')
    passed++
    console.log(`ok   ${name}`)
    return true
  } catch (err) {
    failed++
    console.log(`FAIL ${name}: ${err instanceof Skip ? err.message : describe(err)}`)
    return false
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message)
}

function assertEqual(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`)
  }
}

// Runs fn, expecting it to be refused; returns the error.
async function refused(fn, what) {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error(`${what} was accepted`)
}

// A case that needs the state an earlier case left.
function need(value, caseName) {
  if (value === undefined) throw new Skip(`not run: needs "${caseName}", which failed`)
  return value
}

// ------------------------------------------------------------ the Go server

function runToEnd(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), BUILD_TIMEOUT_MS)
    child.on('error', (err) => {
      clearTimeout(timer)
      children.delete(child)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      if (code === 0) resolve(out)
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${signal ?? code}: ${out.trim()}`))
    })
  })
}

// n distinct free loopback ports: all are held open at once, so no two are
// the same, then released for the servers to take.
async function freePorts(n) {
  const held = []
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer()
      held.push(srv)
      await new Promise((resolve, reject) => {
        srv.once('error', reject)
        srv.listen(0, '127.0.0.1', resolve)
      })
    }
    return held.map((srv) => srv.address().port)
  } finally {
    await Promise.all(held.map((srv) => new Promise((r) => srv.close(() => r()))))
  }
}

class DemoServer {
  constructor(variant, binary) {
    this.variant = variant
    this.binary = binary
    this.log = []
    this.exited = null
  }

  async start(port) {
    this.port = port
    this.addr = `127.0.0.1:${this.port}`
    this.origin = `http://${this.addr}`
    this.path = this.variant.path ?? ''
    this.issuer = this.origin + this.path
    const args = ['-addr', this.addr, '-store', 'memory', ...this.variant.flags]
    if (this.path) args.push('-issuer', this.issuer)
    const child = spawn(this.binary, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    children.add(child)
    const keep = (d) => {
      for (const line of String(d).split('\n')) if (line) this.log.push(line)
      if (this.log.length > 400) this.log.splice(0, this.log.length - 400)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('exit', (code, signal) => {
      this.exited = signal ?? code
      children.delete(child)
    })
    child.on('error', (err) => {
      this.exited = err.message
      children.delete(child)
    })

    const deadline = Date.now() + START_TIMEOUT_MS
    const url = `${this.origin}/.well-known/oauth-authorization-server${this.path}`
    for (;;) {
      if (this.exited !== null) {
        throw new Error(`server ${args.join(' ')} exited (${this.exited}): ${this.log.slice(-10).join(' | ')}`)
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
        await res.arrayBuffer()
        if (res.status === 200) return
      } catch {}
      if (Date.now() > deadline) {
        throw new Error(`server ${args.join(' ')} not ready after ${START_TIMEOUT_MS} ms: ${this.log.slice(-10).join(' | ')}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async stop() {
    const child = this.child
    if (!child || this.exited !== null) return
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(timer)
  }
}

function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
  if (tmpDir) {
    try {
      rmSync(tmpDir, { recursive: true, force: true })
    } catch {}
  }
}

// ------------------------------------------------------------------ helpers

async function newKeyPair(alg) {
  // jose generates through the Web Crypto API; the public key is always
  // extractable, which oauth4webapi's DPoP handle requires.
  return jose.generateKeyPair(alg)
}

async function thumbprint(publicKey) {
  return jose.calculateJwkThumbprint(await jose.exportJWK(publicKey))
}

function basic(user, password) {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
}

// The way oauth4webapi documents nonce handling: the DPoP handle remembers
// the DPoP-Nonce of every response, and an error for which isDPoPNonceError
// is true means "send the same request again", once. `attempt` makes and
// processes one request; stats.nonceRetries counts the retries.
async function retryOnNonce(attempt, stats) {
  try {
    return await attempt()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    if (stats) stats.nonceRetries = (stats.nonceRetries ?? 0) + 1
    return attempt()
  }
}

function clientsFor() {
  return {
    confidential: {
      client: { client_id: CONFIDENTIAL.id, token_endpoint_auth_method: 'client_secret_basic' },
      auth: oauth.ClientSecretBasic(CONFIDENTIAL.secret),
    },
    public: {
      client: { client_id: PUBLIC.id, token_endpoint_auth_method: 'none' },
      auth: oauth.None(),
    },
    rs: {
      client: { client_id: RESOURCE_SERVER.id, token_endpoint_auth_method: 'client_secret_basic' },
      auth: oauth.ClientSecretBasic(RESOURCE_SERVER.secret),
    },
  }
}

// The demo's two APIs under the issuer (its path included): each answers to
// the resource identifier issuer + prefix (RFC 8707), at prefix + /hello.
const API = '/api'
const BILLING = '/billing'

function resource(ctx, prefix) {
  return `${ctx.server.issuer}${prefix}`
}

// GET <prefix>/hello (default /api/hello) with the access token and a proof
// carrying ath.
async function callAPI(ctx, accessToken, dpop, stats, prefix = API) {
  const what = `GET ${prefix}/hello`
  const url = new URL(`${resource(ctx, prefix)}/hello`)
  const res = await retryOnNonce(
    () => oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers(), null, { ...httpOptions, DPoP: dpop }),
    stats,
  )
  const text = await res.text()
  assertEqual(res.status, 200, `${what} status (body ${oneLine(text).slice(0, 200)})`)
  let body
  try {
    body = JSON.parse(text)
  } catch {
    throw new Error(`${what}: body is not JSON: ${oneLine(text).slice(0, 200)}`)
  }
  return body
}

// The API under prefix must refuse the token: 401 with a DPoP challenge
// naming invalid_token (RFC 6750 §3.1, RFC 9449 §7.1), which oauth4webapi
// reports as a WWWAuthenticateChallengeError. Returns a problem, or null.
async function apiRefusal(ctx, accessToken, dpop, prefix) {
  const url = new URL(`${resource(ctx, prefix)}/hello`)
  let res
  try {
    res = await retryOnNonce(() =>
      oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers(), null, { ...httpOptions, DPoP: dpop }),
    )
  } catch (err) {
    if (!(err instanceof oauth.WWWAuthenticateChallengeError)) return `GET ${prefix}/hello: unexpected refusal: ${describe(err)}`
    const challenge = err.cause.find((c) => c.scheme === 'dpop')
    if (err.status !== 401 || challenge?.parameters.error !== 'invalid_token') {
      return `GET ${prefix}/hello: want 401 DPoP error="invalid_token", got ${err.status} ${err.response.headers.get('www-authenticate')}`
    }
    return null
  }
  return `GET ${prefix}/hello answered ${res.status} ${oneLine(await res.text()).slice(0, 160)}`
}

async function assertAPIRefuses(ctx, accessToken, dpop, prefix) {
  const problem = await apiRefusal(ctx, accessToken, dpop, prefix)
  if (problem) throw new Error(problem)
}

// Client credentials for the confidential client with the DPoP handle;
// parameters go to the token request as they are (a resource may repeat).
async function clientCredentials(ctx, dpop, parameters, stats) {
  const { client, auth } = ctx.clients.confidential
  return retryOnNonce(async () => {
    const res = await oauth.clientCredentialsGrantRequest(ctx.as, client, auth, parameters, { ...httpOptions, DPoP: dpop })
    return oauth.processClientCredentialsResponse(ctx.as, client, res)
  }, stats)
}

// The authorization request, done as a browser would with the user's
// credentials: GET with Basic alice/wonderland, not following the redirect.
async function authorize(ctx, client, { jkt, scope, codeChallenge, state, resources = [] }) {
  const url = new URL(ctx.as.authorization_endpoint)
  url.searchParams.set('response_type', 'code')
  url.searchParams.set('client_id', client.client_id)
  url.searchParams.set('redirect_uri', REDIRECT_URI)
  url.searchParams.set('scope', scope)
  url.searchParams.set('state', state)
  url.searchParams.set('code_challenge', codeChallenge)
  url.searchParams.set('code_challenge_method', 'S256')
  if (jkt) url.searchParams.set('dpop_jkt', jkt)
  for (const r of resources) url.searchParams.append('resource', r)
  const res = await fetch(url, {
    headers: { authorization: basic(USER.name, USER.password) },
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await res.text()
  assert(
    res.status === 302 || res.status === 303,
    `authorization endpoint answered ${res.status}, want a redirect (body ${oneLine(text).slice(0, 200)})`,
  )
  const location = res.headers.get('location')
  assert(location, 'authorization redirect without Location')
  const callback = new URL(location, url)
  assertEqual(`${callback.origin}${callback.pathname}`, REDIRECT_URI, 'redirect target')
  // Checks iss (RFC 9207, the metadata says it is sent) and state, and turns
  // an error response into AuthorizationResponseError.
  return oauth.validateAuthResponse(ctx.as, client, callback, state)
}

// Authorization code flow with PKCE S256 and dpop_jkt up to the token
// response. Returns the token response. resources go to the authorization
// request, tokenResources to the token request (RFC 8707 §2.1, §2.2).
async function codeFlow(ctx, which, keyPair, dpop, stats, scope = 'read write', { resources = [], tokenResources = [] } = {}) {
  const { client, auth } = ctx.clients[which]
  const jkt = await thumbprint(keyPair.publicKey)
  const verifier = oauth.generateRandomCodeVerifier()
  const params = await authorize(ctx, client, {
    jkt,
    scope,
    codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
    state: oauth.generateRandomState(),
    resources,
  })
  return retryOnNonce(async () => {
    const res = await oauth.authorizationCodeGrantRequest(ctx.as, client, auth, params, REDIRECT_URI, verifier, {
      ...httpOptions,
      DPoP: dpop,
      additionalParameters: tokenResources.map((r) => ['resource', r]),
    })
    return oauth.processAuthorizationCodeResponse(ctx.as, client, res)
  }, stats)
}

async function refresh(ctx, which, refreshToken, dpop, stats, resources = []) {
  const { client, auth } = ctx.clients[which]
  return retryOnNonce(async () => {
    const res = await oauth.refreshTokenGrantRequest(ctx.as, client, auth, refreshToken, {
      ...httpOptions,
      DPoP: dpop,
      additionalParameters: resources.map((r) => ['resource', r]),
    })
    return oauth.processRefreshTokenResponse(ctx.as, client, res)
  }, stats)
}

// Introspection, by default as demo-rs, the only client allowed to.
async function introspect(ctx, token, which = 'rs') {
  const { client, auth } = ctx.clients[which]
  const res = await oauth.introspectionRequest(ctx.as, client, auth, token, httpOptions)
  return oauth.processIntrospectionResponse(ctx.as, client, res)
}

async function revoke(ctx, which, token, hint) {
  const { client, auth } = ctx.clients[which]
  const res = await oauth.revocationRequest(ctx.as, client, auth, token, {
    ...httpOptions,
    additionalParameters: hint ? { token_type_hint: hint } : undefined,
  })
  return oauth.processRevocationResponse(res)
}

function assertDPoPToken(tokens, what) {
  assert(typeof tokens.access_token === 'string' && tokens.access_token, `${what}: no access_token`)
  // oauth4webapi lower-cases token_type.
  assertEqual(tokens.token_type, 'dpop', `${what}: token_type`)
}

function b64urlSHA256(s) {
  return createHash('sha256').update(s).digest('base64url')
}

// ------------------------------------------------------------------ the cases

async function runVariant(variant, server) {
  const tag = `[${variant.name}]`
  const ctx = { server, clients: clientsFor() }
  const name = (s) => `${tag} ${s}`
  // The host claim the demo adds to every token and shows at its APIs.
  const tenant = server.path ? server.path.slice(1) : 'default'

  const discovered = await check(name('discovery (RFC 8414 metadata)'), async () => {
    const issuer = new URL(server.issuer)
    const res = await oauth.discoveryRequest(issuer, { ...httpOptions, algorithm: 'oauth2' })
    const as = await oauth.processDiscoveryResponse(issuer, res)
    ctx.as = as
    assertEqual(as.issuer, server.issuer, 'issuer')
    for (const ep of ['authorization_endpoint', 'token_endpoint', 'revocation_endpoint', 'introspection_endpoint']) {
      assert(typeof as[ep] === 'string', `metadata has no ${ep}`)
    }
    const algs = as.dpop_signing_alg_values_supported
    assert(Array.isArray(algs), 'metadata has no dpop_signing_alg_values_supported')
    for (const alg of ['ES256', 'EdDSA', 'PS256', 'RS256']) {
      assert(algs.includes(alg), `dpop_signing_alg_values_supported ${JSON.stringify(algs)} lacks ${alg}`)
    }
    assert((as.code_challenge_methods_supported ?? []).includes('S256'), 'S256 not in code_challenge_methods_supported')
    assertEqual(as.authorization_response_iss_parameter_supported, true, 'authorization_response_iss_parameter_supported')
    if (variant.jwt) assert(typeof as.jwks_uri === 'string', 'metadata has no jwks_uri with JWT access tokens')
  })
  if (!discovered) {
    // Nothing else can run without the metadata; count the rest as failed
    // rather than pretend they passed.
    failed++
    console.log(`FAIL ${name('remaining cases')}: not run: discovery failed`)
    return
  }

  // Client credentials with each family of proof key, then the API.
  const ccAlgs = [
    { label: 'ES256', gen: 'ES256' },
    { label: 'EdDSA (Ed25519)', gen: 'Ed25519' },
    { label: 'PS256', gen: 'PS256' },
    { label: 'RS256', gen: 'RS256' },
  ]
  for (const { label, gen } of ccAlgs) {
    await check(name(`client_credentials with a ${label} DPoP key, then GET /api/hello with ath`), async () => {
      const { client, auth } = ctx.clients.confidential
      const keyPair = await newKeyPair(gen)
      const dpop = oauth.DPoP(client, keyPair)
      const stats = {}
      const tokens = await retryOnNonce(async () => {
        const res = await oauth.clientCredentialsGrantRequest(ctx.as, client, auth, { scope: 'read' }, {
          ...httpOptions,
          DPoP: dpop,
        })
        return oauth.processClientCredentialsResponse(ctx.as, client, res)
      }, stats)
      assertDPoPToken(tokens, 'token response')
      if (variant.requireNonce) {
        assert(stats.nonceRetries === 1, 'the server issued a token without asking for a nonce first')
      }
      const jkt = await thumbprint(keyPair.publicKey)
      assertEqual(await dpop.calculateThumbprint(), jkt, 'oauth4webapi and jose thumbprints')
      const hello = await callAPI(ctx, tokens.access_token, dpop)
      assertEqual(hello.client_id, CONFIDENTIAL.id, '/api/hello client_id')
      assertEqual(hello.jkt, jkt, '/api/hello jkt')
      assert(String(hello.scope ?? '').split(' ').includes('read'), `/api/hello scope ${JSON.stringify(hello.scope)}`)
      if (gen === 'ES256') ctx.cc = { tokens, keyPair, jkt }
    })
  }

  // Authorization code + PKCE + dpop_jkt, for the public client and for the
  // confidential one authenticating with client_secret_basic; later cases
  // pick up each flow's tokens and key from ctx[slot].
  const codeClients = [
    { which: 'public', label: 'public client (none)', id: PUBLIC.id, slot: 'pub' },
    { which: 'confidential', label: 'confidential client (client_secret_basic)', id: CONFIDENTIAL.id, slot: 'conf' },
  ]
  for (const { which, label, id, slot } of codeClients) {
    await check(name(`authorization code + PKCE S256 + dpop_jkt, ${label}, then the API`), async () => {
      const keyPair = await newKeyPair('ES256')
      const dpop = oauth.DPoP(ctx.clients[which].client, keyPair)
      const tokens = await codeFlow(ctx, which, keyPair, dpop)
      assertDPoPToken(tokens, 'token response')
      assert(typeof tokens.refresh_token === 'string', `no refresh_token for the ${which} client`)
      const jkt = await thumbprint(keyPair.publicKey)
      const hello = await callAPI(ctx, tokens.access_token, dpop)
      assertEqual(hello.sub, USER.name, '/api/hello sub')
      assertEqual(hello.client_id, id, '/api/hello client_id')
      assertEqual(hello.jkt, jkt, '/api/hello jkt')
      assertEqual(hello.scope, 'read write', '/api/hello scope')
      ctx[slot] = { tokens, keyPair, dpop, jkt }
    })
  }

  // dpop_jkt binds the code: redeeming it with another key must fail
  // (RFC 9449 §10).
  await check(name('authorization code bound by dpop_jkt is refused with another key'), async () => {
    const { client, auth } = ctx.clients.public
    const bound = await newKeyPair('ES256')
    const other = oauth.DPoP(client, await newKeyPair('ES256'))
    const verifier = oauth.generateRandomCodeVerifier()
    const params = await authorize(ctx, client, {
      jkt: await thumbprint(bound.publicKey),
      scope: 'read',
      codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
      state: oauth.generateRandomState(),
    })
    const err = await refused(
      () =>
        retryOnNonce(async () => {
          const res = await oauth.authorizationCodeGrantRequest(ctx.as, client, auth, params, REDIRECT_URI, verifier, {
            ...httpOptions,
            DPoP: other,
          })
          return oauth.processAuthorizationCodeResponse(ctx.as, client, res)
        }),
      'the code redeemed with a key other than dpop_jkt',
    )
    assert(err instanceof oauth.ResponseBodyError && err.status === 400, `unexpected refusal: ${describe(err)}`)
  })

  // Refresh, public client: the refresh token is bound to the DPoP key and
  // rotated (RFC 9449 §5, RFC 9700 §4.14.2).
  await check(name('refresh, public client: key-bound and rotated'), async () => {
    const pub = need(ctx.pub, 'authorization code ... public client')
    const stats = {}
    const fresh = await refresh(ctx, 'public', pub.tokens.refresh_token, pub.dpop, stats)
    assertDPoPToken(fresh, 'refresh response')
    assert(typeof fresh.refresh_token === 'string', 'no new refresh_token: not rotated')
    assert(fresh.refresh_token !== pub.tokens.refresh_token, 'the refresh token was not rotated')
    assert(fresh.access_token !== pub.tokens.access_token, 'the access token was not renewed')
    const hello = await callAPI(ctx, fresh.access_token, pub.dpop)
    assertEqual(hello.jkt, pub.jkt, '/api/hello jkt after refresh')
    assertEqual(hello.sub, USER.name, '/api/hello sub after refresh')

    // Another key may not use the public client's refresh token.
    const intruder = oauth.DPoP(ctx.clients.public.client, await newKeyPair('ES256'))
    const wrongKey = await refused(
      () => refresh(ctx, 'public', fresh.refresh_token, intruder),
      'the refresh token presented with another DPoP key',
    )
    assert(wrongKey instanceof oauth.ResponseBodyError, `unexpected refusal: ${describe(wrongKey)}`)

    // The old refresh token is spent.
    const replay = await refused(
      () => refresh(ctx, 'public', pub.tokens.refresh_token, pub.dpop),
      'the rotated-out refresh token',
    )
    assert(replay instanceof oauth.ResponseBodyError, `unexpected refusal: ${describe(replay)}`)
    assertEqual(replay.error, 'invalid_grant', 'error for the rotated-out refresh token')
  })

  // Refresh, confidential client.
  await check(name('refresh, confidential client (client_secret_basic)'), async () => {
    const conf = need(ctx.conf, 'authorization code ... confidential client')
    const fresh = await refresh(ctx, 'confidential', conf.tokens.refresh_token, conf.dpop)
    assertDPoPToken(fresh, 'refresh response')
    assert(fresh.access_token !== conf.tokens.access_token, 'the access token was not renewed')
    const hello = await callAPI(ctx, fresh.access_token, conf.dpop)
    assertEqual(hello.jkt, conf.jkt, '/api/hello jkt after refresh')
    assertEqual(hello.client_id, CONFIDENTIAL.id, '/api/hello client_id after refresh')
    ctx.confRefreshed = { ...conf, tokens: { ...fresh, refresh_token: fresh.refresh_token ?? conf.tokens.refresh_token } }
  })

  // ---- Resource indicators (RFC 8707): two APIs, /api and /billing, each
  // accepting only the tokens whose audience names it.

  await check(name('protected resource metadata (RFC 9728) of /api and /billing, via resourceDiscoveryRequest'), async () => {
    for (const prefix of [API, BILLING]) {
      const id = new URL(resource(ctx, prefix))
      // processResourceDiscoveryResponse checks that resource is id.
      const md = await oauth.processResourceDiscoveryResponse(id, await oauth.resourceDiscoveryRequest(id, httpOptions))
      assert((md.authorization_servers ?? []).includes(ctx.as.issuer), `${prefix}: authorization_servers ${JSON.stringify(md.authorization_servers)}`)
      assertEqual(md.dpop_bound_access_tokens_required, true, `${prefix}: dpop_bound_access_tokens_required`)
    }
  })

  await check(name('client_credentials with resource=/api: GET /api/hello 200, GET /billing/hello 401 invalid_token'), async () => {
    const dpop = oauth.DPoP(ctx.clients.confidential.client, await newKeyPair('ES256'))
    const tokens = await clientCredentials(ctx, dpop, new URLSearchParams({ scope: 'read', resource: resource(ctx, API) }))
    assertDPoPToken(tokens, 'token response')
    const hello = await callAPI(ctx, tokens.access_token, dpop)
    assertEqual(hello.client_id, CONFIDENTIAL.id, '/api/hello client_id')
    assertEqual(hello.tenant, tenant, '/api/hello tenant (the host claim)')
    await assertAPIRefuses(ctx, tokens.access_token, dpop, BILLING)
    if (variant.jwt) {
      // jose checks the audience: the token is for /api and for nothing else.
      const jwks = jose.createRemoteJWKSet(new URL(ctx.as.jwks_uri), { timeoutDuration: REQUEST_TIMEOUT_MS })
      const { payload } = await jose.jwtVerify(tokens.access_token, jwks, {
        issuer: ctx.as.issuer,
        audience: resource(ctx, API),
        typ: 'at+jwt',
      })
      const aud = [payload.aud].flat()
      assertEqual(JSON.stringify(aud), JSON.stringify([resource(ctx, API)]), 'aud')
      assertEqual(payload.tenant, tenant, 'tenant claim')
    }
    ctx.apiOnly = { tokens, dpop }
  })

  await check(name('client_credentials with an unregistered resource: invalid_target'), async () => {
    const dpop = oauth.DPoP(ctx.clients.confidential.client, await newKeyPair('ES256'))
    const err = await refused(
      () => clientCredentials(ctx, dpop, new URLSearchParams({ resource: resource(ctx, '/other') })),
      'a token for a resource the client did not register',
    )
    assert(err instanceof oauth.ResponseBodyError && err.status === 400, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'invalid_target', 'error')
  })

  await check(name('client_credentials with two resource parameters: both APIs accept the token'), async () => {
    const dpop = oauth.DPoP(ctx.clients.confidential.client, await newKeyPair('ES256'))
    const params = new URLSearchParams([
      ['scope', 'read'],
      ['resource', resource(ctx, API)],
      ['resource', resource(ctx, BILLING)],
    ])
    const tokens = await clientCredentials(ctx, dpop, params)
    for (const prefix of [API, BILLING]) {
      const hello = await callAPI(ctx, tokens.access_token, dpop, undefined, prefix)
      assertEqual(hello.client_id, CONFIDENTIAL.id, `${prefix}/hello client_id`)
    }
  })

  await check(name('the public client asking for /billing: invalid_target in the authorization response'), async () => {
    const { client } = ctx.clients.public
    const verifier = oauth.generateRandomCodeVerifier()
    const err = await refused(
      async () =>
        authorize(ctx, client, {
          scope: 'read',
          codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
          state: oauth.generateRandomState(),
          resources: [resource(ctx, BILLING)],
        }),
      'an authorization request of demo-public for /billing',
    )
    assert(err instanceof oauth.AuthorizationResponseError, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'invalid_target', 'error')
  })

  await check(name('authorization code with resource=/api, public client: /api accepts the token, /billing refuses it'), async () => {
    const keyPair = await newKeyPair('ES256')
    const dpop = oauth.DPoP(ctx.clients.public.client, keyPair)
    const api = resource(ctx, API)
    const tokens = await codeFlow(ctx, 'public', keyPair, dpop, undefined, 'read', { resources: [api], tokenResources: [api] })
    const hello = await callAPI(ctx, tokens.access_token, dpop)
    assertEqual(hello.sub, USER.name, '/api/hello sub')
    assertEqual(hello.tenant, tenant, '/api/hello tenant')
    await assertAPIRefuses(ctx, tokens.access_token, dpop, BILLING)
  })

  // The grant is for both APIs; the code exchange and each refresh may
  // narrow the access token to either (RFC 8707 §2.2), never beyond.
  await check(name('authorization code for both APIs, confidential client: narrowed at the exchange and at each refresh'), async () => {
    const keyPair = await newKeyPair('ES256')
    const dpop = oauth.DPoP(ctx.clients.confidential.client, keyPair)
    const [api, billing] = [resource(ctx, API), resource(ctx, BILLING)]
    const tokens = await codeFlow(ctx, 'confidential', keyPair, dpop, undefined, 'read', {
      resources: [api, billing],
      tokenResources: [billing],
    })
    await callAPI(ctx, tokens.access_token, dpop, undefined, BILLING)
    await assertAPIRefuses(ctx, tokens.access_token, dpop, API)

    let refreshToken = tokens.refresh_token
    assert(typeof refreshToken === 'string', 'no refresh_token')
    const toAPI = await refresh(ctx, 'confidential', refreshToken, dpop, undefined, [api])
    refreshToken = toAPI.refresh_token ?? refreshToken
    await callAPI(ctx, toAPI.access_token, dpop)
    await assertAPIRefuses(ctx, toAPI.access_token, dpop, BILLING)

    const err = await refused(
      () => refresh(ctx, 'confidential', refreshToken, dpop, undefined, [resource(ctx, '/other')]),
      'a refresh for a resource outside the grant',
    )
    assert(err instanceof oauth.ResponseBodyError && err.status === 400, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'invalid_target', 'error')
  })

  await check(name('introspection by demo-rs (/api): a token for /billing is {"active":false}; demo may not introspect (403)'), async () => {
    const apiOnly = need(ctx.apiOnly, 'client_credentials with resource=/api ...')
    const dpop = oauth.DPoP(ctx.clients.confidential.client, await newKeyPair('ES256'))
    const billingOnly = await clientCredentials(ctx, dpop, new URLSearchParams({ resource: resource(ctx, BILLING) }))
    const other = await introspect(ctx, billingOnly.access_token)
    assertEqual(JSON.stringify(other), '{"active":false}', 'introspection of a token for /billing')
    const mine = await introspect(ctx, apiOnly.tokens.access_token)
    assertEqual(mine.active, true, 'introspection of a token for /api')
    assertEqual(JSON.stringify(mine.aud), JSON.stringify([resource(ctx, API)]), 'introspection aud')
    const err = await refused(() => introspect(ctx, apiOnly.tokens.access_token, 'confidential'), 'introspection by demo')
    assert(err instanceof oauth.ResponseBodyError && err.status === 403, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'unauthorized_client', 'error')
  })

  // Introspection as demo-rs, revocation by the confidential client, and
  // the API's refusal of the revoked token.
  await check(name('introspection (RFC 7662) and revocation (RFC 7009); the API refuses the revoked token'), async () => {
    const conf = need(ctx.confRefreshed, 'refresh, confidential client')
    const token = conf.tokens.access_token
    // demo-rs, the /api resource server, sees the token (meant for both
    // APIs) with the part of its audience it answers to (RFC 7662 §4).
    const active = await introspect(ctx, token)
    assertEqual(active.active, true, 'introspection active')
    assertEqual(active.client_id, CONFIDENTIAL.id, 'introspection client_id')
    assertEqual(active.sub, USER.name, 'introspection sub')
    assertEqual(active.cnf?.jkt, conf.jkt, 'introspection cnf.jkt')
    assertEqual(JSON.stringify(active.aud), JSON.stringify([resource(ctx, API)]), 'introspection aud')
    assertEqual(active.tenant, tenant, 'introspection tenant (the host claim)')
    if (active.token_type !== undefined) assertEqual(String(active.token_type).toLowerCase(), 'dpop', 'introspection token_type')

    try {
      await revoke(ctx, 'confidential', token, 'access_token')
    } catch (err) {
      // RFC 7009 §2.2.1: a server that cannot revoke access tokens (say,
      // self-contained JWTs) answers unsupported_token_type, and the token
      // rightly stays usable. Only that refusal is acceptable.
      if (err instanceof oauth.ResponseBodyError && err.error === 'unsupported_token_type') return
      throw err
    }

    // The revocation was answered 200: the token must now be dead
    // everywhere. Gather every observation before failing.
    const problems = []
    const inactive = await introspect(ctx, token)
    if (inactive.active !== false) problems.push(`introspection still says active=${JSON.stringify(inactive.active)}`)

    const apiProblem = await apiRefusal(ctx, token, conf.dpop, API)
    if (apiProblem) problems.push(apiProblem)
    if (problems.length > 0) {
      throw new Error(`revocation answered 200, but the token lives on: ${problems.join('; ')}`)
    }
  })

  // Revoking the public client's refresh token (client authentication
  // "none", RFC 7009 §2.1) ends the grant.
  await check(name('revocation of the refresh token by the public client'), async () => {
    const pub = need(ctx.pub, 'authorization code ... public client')
    // A fresh grant: the previous case family may have spent pub's tokens.
    const tokens = await codeFlow(ctx, 'public', pub.keyPair, pub.dpop, undefined, 'read')
    await revoke(ctx, 'public', tokens.refresh_token, 'refresh_token')
    const err = await refused(
      () => refresh(ctx, 'public', tokens.refresh_token, pub.dpop),
      'the revoked refresh token',
    )
    assert(err instanceof oauth.ResponseBodyError, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'invalid_grant', 'error for the revoked refresh token')
  })

  if (variant.jwt) {
    await check(name('JWT access token (RFC 9068) verified by jose against jwks_uri; cnf.jkt'), async () => {
      const cc = need(ctx.cc, 'client_credentials with a ES256 DPoP key')
      const jwks = jose.createRemoteJWKSet(new URL(ctx.as.jwks_uri), { timeoutDuration: REQUEST_TIMEOUT_MS })
      const { payload, protectedHeader } = await jose.jwtVerify(cc.tokens.access_token, jwks, {
        issuer: ctx.as.issuer,
        typ: 'at+jwt',
      })
      assert(/^(application\/)?at\+jwt$/i.test(protectedHeader.typ), `typ ${protectedHeader.typ}`)
      assertEqual(payload.cnf?.jkt, cc.jkt, 'cnf.jkt')
      assertEqual(payload.client_id, CONFIDENTIAL.id, 'client_id')
      // RFC 9068 §2.2: required claims.
      for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
        assert(payload[claim] !== undefined, `claim ${claim} missing (RFC 9068 §2.2)`)
      }
      // Asked for no resource: the token is for every API the client
      // registered (RFC 8707, the demo's default).
      const aud = [payload.aud].flat().sort()
      assertEqual(JSON.stringify(aud), JSON.stringify([resource(ctx, API), resource(ctx, BILLING)].sort()), 'aud')

      const pub = need(ctx.pub, 'authorization code ... public client')
      const user = await jose.jwtVerify(pub.tokens.access_token, jwks, { issuer: ctx.as.issuer, typ: 'at+jwt' })
      assertEqual(user.payload.sub, USER.name, 'sub of the user token')
      assertEqual(user.payload.cnf?.jkt, pub.jkt, 'cnf.jkt of the user token')
    })
  }

  // jose alone, no oauth4webapi: proofs built by hand, requests with fetch.
  for (const alg of ['ES256', 'EdDSA']) {
    await check(name(`hand-made ${alg} proof (jose SignJWT) with fetch: token, then the API`), async () => {
      const { publicKey, privateKey } = await jose.generateKeyPair(alg === 'EdDSA' ? 'Ed25519' : alg)
      const jwk = await jose.exportJWK(publicKey)
      const jkt = await jose.calculateJwkThumbprint(jwk)
      const proof = (htm, htu, extra) =>
        new jose.SignJWT({ jti: randomUUID(), htm, htu, ...extra })
          .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk })
          .setIssuedAt()
          .sign(privateKey)

      // At most one nonce round per request (RFC 9449 §8, §9).
      const send = async (make) => {
        let res = await make(undefined)
        const nonce = res.headers.get('dpop-nonce')
        if ((res.status === 400 || res.status === 401) && nonce) {
          const body = await res.clone().text()
          const www = res.headers.get('www-authenticate') ?? ''
          if (body.includes('use_dpop_nonce') || www.includes('use_dpop_nonce')) {
            await res.arrayBuffer()
            res = await make(nonce)
          }
        }
        return res
      }

      const tokenURL = ctx.as.token_endpoint
      const tokenRes = await send(async (nonce) =>
        fetch(tokenURL, {
          method: 'POST',
          headers: {
            authorization: basic(CONFIDENTIAL.id, CONFIDENTIAL.secret),
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            dpop: await proof('POST', tokenURL, nonce ? { nonce } : {}),
          },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        }),
      )
      const tokenText = await tokenRes.text()
      assertEqual(tokenRes.status, 200, `token endpoint status (body ${oneLine(tokenText).slice(0, 200)})`)
      const tokens = JSON.parse(tokenText)
      assertEqual(String(tokens.token_type).toLowerCase(), 'dpop', 'token_type')

      const apiURL = `${ctx.server.issuer}/api/hello`
      const apiRes = await send(async (nonce) =>
        fetch(apiURL, {
          headers: {
            authorization: `DPoP ${tokens.access_token}`,
            dpop: await proof('GET', apiURL, { ath: b64urlSHA256(tokens.access_token), ...(nonce ? { nonce } : {}) }),
          },
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        }),
      )
      const apiText = await apiRes.text()
      assertEqual(apiRes.status, 200, `GET /api/hello status (WWW-Authenticate ${apiRes.headers.get('www-authenticate')}, body ${oneLine(apiText).slice(0, 200)})`)
      assertEqual(JSON.parse(apiText).jkt, jkt, '/api/hello jkt')
    })
  }
}

// ------------------------------------------------------- the FAPI 2.0 server

// The FAPI 2.0 server runs with -profile fapi2 and two private_key_jwt
// clients (-jwt-client), whose public JWK Sets main writes before it starts:
// FAPI_CLIENT with an ES256 key (kid es1) and an RSA key (kid rsa1, no alg,
// so that PS256 and RS256 assertions both find it and the profile alone
// decides), FAPI_OTHER with an ES256 key of its own.
const FAPI_CLIENT = 'fapi-client'
const FAPI_OTHER = 'fapi-other'
// The algorithms the profile allows (FAPI 2.0 §5.4.1; Ed25519 is EdDSA's
// fully specified name, RFC 9864).
const FAPI_ALGS = ['PS256', 'ES256', 'EdDSA', 'Ed25519']

// fapiKeys makes the clients' keys and writes their public JWK Sets into
// dir; it returns the keys and the -jwt-client flags.
async function fapiKeys(dir) {
  const es = await jose.generateKeyPair('ES256')
  const rsa = await jose.generateKeyPair('PS256', { extractable: true })
  const other = await jose.generateKeyPair('ES256')
  const pub = async (key, kid) => ({ ...(await jose.exportJWK(key)), kid })
  // The same RSA key, for RS256 (RSASSA-PKCS1-v1_5).
  const rs256 = await jose.importJWK(await jose.exportJWK(rsa.privateKey), 'RS256')
  const files = {
    [FAPI_CLIENT]: { keys: [await pub(es.publicKey, 'es1'), await pub(rsa.publicKey, 'rsa1')] },
    [FAPI_OTHER]: { keys: [await pub(other.publicKey, 'other1')] },
  }
  const flags = []
  for (const [id, set] of Object.entries(files)) {
    const file = path.join(dir, `${id}.jwks.json`)
    await writeFile(file, JSON.stringify(set))
    flags.push('-jwt-client', `${id}=${file}`)
  }
  return {
    flags,
    es: { key: es.privateKey, kid: 'es1' },
    ps: { key: rsa.privateKey, kid: 'rsa1' },
    rs: { key: rs256, kid: 'rsa1' },
    other: { key: other.privateKey, kid: 'other1' },
  }
}

// A client assertion made by hand with jose (RFC 7523 §3); claims override
// the usual ones.
async function handAssertion(ctx, keys, claims = {}, alg = 'ES256') {
  const key = alg === 'ES256' ? keys.es : keys.ps
  return new jose.SignJWT({ jti: randomUUID(), aud: ctx.as.issuer, ...claims })
    .setProtectedHeader({ alg, kid: key.kid, typ: 'client-authentication+jwt' })
    .setIssuer(FAPI_CLIENT)
    .setSubject(FAPI_CLIENT)
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(key.key)
}

// Client authentication with an assertion from make, called for every
// request (a retry after use_dpop_nonce needs a new one: the server has
// spent the first one's jti), for oauth4webapi's calls.
function givenAssertion(make) {
  return async (_as, client, body) => {
    body.set('client_id', client.client_id)
    body.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
    body.set('client_assertion', await make())
  }
}

// The refusal of a client assertion: 400 or 401 with invalid_client or
// invalid_request (the checklist accepts either).
function assertClientRefusal(err, what) {
  assert(err instanceof oauth.ResponseBodyError, `${what}: unexpected refusal: ${describe(err)}`)
  assert(err.status === 400 || err.status === 401, `${what}: status ${err.status}`)
  assert(['invalid_client', 'invalid_request'].includes(err.error), `${what}: error ${err.error} (${err.error_description})`)
}

// Client credentials for a FAPI client; auth is oauth4webapi's client
// authentication.
async function fapiClientCredentials(ctx, auth, dpop, id = FAPI_CLIENT) {
  const client = { client_id: id, token_endpoint_auth_method: 'private_key_jwt' }
  return retryOnNonce(async () => {
    const res = await oauth.clientCredentialsGrantRequest(ctx.as, client, auth, { scope: 'read' }, { ...httpOptions, DPoP: dpop })
    return oauth.processClientCredentialsResponse(ctx.as, client, res)
  })
}

// PAR (RFC 9126) with the DPoP handle's proof; returns the request_uri.
async function push(ctx, client, auth, dpop, parameters) {
  return retryOnNonce(async () => {
    const res = await oauth.pushedAuthorizationRequest(ctx.as, client, auth, parameters, { ...httpOptions, DPoP: dpop })
    return oauth.processPushedAuthorizationResponse(ctx.as, client, res)
  })
}

// The authorization request by reference, as the browser sends it with the
// user's credentials; returns the answer, redirect not followed.
async function authorizeByReference(ctx, clientID, requestURI, extra = {}) {
  const url = new URL(ctx.as.authorization_endpoint)
  url.searchParams.set('client_id', clientID)
  if (requestURI) url.searchParams.set('request_uri', requestURI)
  for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v)
  const res = await fetch(url, {
    headers: { authorization: basic(USER.name, USER.password) },
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await res.text()
  const location = res.headers.get('location')
  return { status: res.status, text, callback: location ? new URL(location, url) : null }
}

// An authorization answer that must be a refusal: an error page (4xx), or a
// redirect carrying an error and no code. Returns the error code, if any.
function assertAuthorizationRefused(answer, what) {
  if (answer.status >= 400 && answer.status < 500) return null
  assert(answer.status === 302 || answer.status === 303, `${what}: status ${answer.status} (${oneLine(answer.text).slice(0, 160)})`)
  const q = answer.callback.searchParams
  assert(!q.get('code'), `${what}: the redirect carries a code`)
  assert(q.get('error'), `${what}: the redirect carries no error`)
  return q.get('error')
}

async function runFapiVariant(variant, server, keys) {
  const tag = `[${variant.name}]`
  const name = (s) => `${tag} ${s}`
  const ctx = { server }
  const client = { client_id: FAPI_CLIENT, token_endpoint_auth_method: 'private_key_jwt' }
  const other = { client_id: FAPI_OTHER, token_endpoint_auth_method: 'private_key_jwt' }
  const auth = oauth.PrivateKeyJwt(keys.es)
  const otherAuth = oauth.PrivateKeyJwt(keys.other)
  const pkceParams = async (verifier, state) => ({
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'read write',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  })

  const discovered = await check(name('discovery: PAR required, private_key_jwt only, FAPI algorithms'), async () => {
    const issuer = new URL(server.issuer)
    const res = await oauth.discoveryRequest(issuer, { ...httpOptions, algorithm: 'oauth2' })
    const as = await oauth.processDiscoveryResponse(issuer, res)
    ctx.as = as
    assertEqual(as.require_pushed_authorization_requests, true, 'require_pushed_authorization_requests')
    assertEqual(as.pushed_authorization_request_endpoint, `${server.issuer}/oauth2/par`, 'pushed_authorization_request_endpoint')
    assertEqual(JSON.stringify(as.token_endpoint_auth_methods_supported), '["private_key_jwt"]', 'token_endpoint_auth_methods_supported')
    assertEqual(as.authorization_response_iss_parameter_supported, true, 'authorization_response_iss_parameter_supported')
    assertEqual(JSON.stringify(as.code_challenge_methods_supported), '["S256"]', 'code_challenge_methods_supported')
    for (const member of ['token_endpoint_auth_signing_alg_values_supported', 'dpop_signing_alg_values_supported']) {
      const algs = as[member]
      assert(Array.isArray(algs) && algs.length > 0, `metadata has no ${member}`)
      for (const alg of algs) assert(FAPI_ALGS.includes(alg), `${member} lists ${alg}`)
    }
  })
  if (!discovered) {
    failed++
    console.log(`FAIL ${name('remaining cases')}: not run: discovery failed`)
    return
  }

  await check(name('PAR with DPoP and private_key_jwt (ES256), authorization by reference (303), code, API, refresh, API'), async () => {
    const keyPair = await newKeyPair('ES256')
    const dpop = oauth.DPoP(client, keyPair)
    const jkt = await thumbprint(keyPair.publicKey)
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const par = await push(ctx, client, auth, dpop, await pkceParams(verifier, state))
    assert(par.request_uri.startsWith('urn:ietf:params:oauth:request_uri:'), `request_uri ${par.request_uri}`)
    assert(par.expires_in > 0 && par.expires_in < 600, `expires_in ${par.expires_in}`)

    const answer = await authorizeByReference(ctx, FAPI_CLIENT, par.request_uri)
    assertEqual(answer.status, 303, `authorization answer (${oneLine(answer.text).slice(0, 160)})`)
    assertEqual(`${answer.callback.origin}${answer.callback.pathname}`, REDIRECT_URI, 'redirect target')
    const params = oauth.validateAuthResponse(ctx.as, client, answer.callback, state)

    const tokens = await retryOnNonce(async () => {
      const res = await oauth.authorizationCodeGrantRequest(ctx.as, client, auth, params, REDIRECT_URI, verifier, { ...httpOptions, DPoP: dpop })
      return oauth.processAuthorizationCodeResponse(ctx.as, client, res)
    })
    assertDPoPToken(tokens, 'token response')
    assert(typeof tokens.refresh_token === 'string', 'no refresh_token')
    const hello = await callAPI(ctx, tokens.access_token, dpop)
    assertEqual(hello.sub, USER.name, '/api/hello sub')
    assertEqual(hello.client_id, FAPI_CLIENT, '/api/hello client_id')
    assertEqual(hello.jkt, jkt, '/api/hello jkt')

    const refreshed = await retryOnNonce(async () => {
      const res = await oauth.refreshTokenGrantRequest(ctx.as, client, auth, tokens.refresh_token, { ...httpOptions, DPoP: dpop })
      return oauth.processRefreshTokenResponse(ctx.as, client, res)
    })
    assertDPoPToken(refreshed, 'refresh response')
    assert(refreshed.access_token !== tokens.access_token, 'the refresh returned the same access token')
    const again = await callAPI(ctx, refreshed.access_token, dpop)
    assertEqual(again.sub, USER.name, '/api/hello sub after the refresh')
    ctx.flow = { dpop, requestURI: par.request_uri }
  })

  await check(name('the request_uri is single use: a second authorization with it is refused'), async () => {
    const flow = need(ctx.flow, 'PAR ... full flow')
    const answer = await authorizeByReference(ctx, FAPI_CLIENT, flow.requestURI)
    assertAuthorizationRefused(answer, 'a spent request_uri')
  })

  await check(name('PS256 assertion (RSA key) accepted: client_credentials, then the API'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const tokens = await fapiClientCredentials(ctx, oauth.PrivateKeyJwt(keys.ps), dpop)
    assertDPoPToken(tokens, 'token response')
    assertEqual((await callAPI(ctx, tokens.access_token, dpop)).client_id, FAPI_CLIENT, '/api/hello client_id')
  })

  await check(name('hand-made assertion (jose SignJWT, aud the issuer as a string) accepted'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const tokens = await fapiClientCredentials(ctx, givenAssertion(() => handAssertion(ctx, keys)), dpop)
    assertDPoPToken(tokens, 'token response')
  })

  await check(name('refused: an assertion with the token endpoint URL as aud'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const bad = oauth.PrivateKeyJwt(keys.es, { [oauth.modifyAssertion]: (_h, p) => { p.aud = ctx.as.token_endpoint } })
    assertClientRefusal(await refused(() => fapiClientCredentials(ctx, bad, dpop), 'aud = the token URL'), 'aud = the token URL')
  })

  await check(name('refused: an assertion with the PAR endpoint URL as aud, at PAR'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const bad = oauth.PrivateKeyJwt(keys.es, { [oauth.modifyAssertion]: (_h, p) => { p.aud = ctx.as.pushed_authorization_request_endpoint } })
    const verifier = oauth.generateRandomCodeVerifier()
    const err = await refused(async () => push(ctx, client, bad, dpop, await pkceParams(verifier, 's')), 'aud = the PAR URL')
    assertClientRefusal(err, 'aud = the PAR URL')
  })

  await check(name('refused: an assertion whose aud is an array holding the issuer (jose)'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const err = await refused(
      () => fapiClientCredentials(ctx, givenAssertion(() => handAssertion(ctx, keys, { aud: [ctx.as.issuer] })), dpop),
      'aud = [issuer]',
    )
    assertClientRefusal(err, 'aud = [issuer]')
  })

  await check(name('refused: an RS256 assertion (the registered RSA key that PS256 uses)'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const err = await refused(() => fapiClientCredentials(ctx, oauth.PrivateKeyJwt(keys.rs), dpop), 'an RS256 assertion')
    assertClientRefusal(err, 'an RS256 assertion')
  })

  await check(name('refused: a replayed assertion (the same jti twice)'), async () => {
    // A handle that already holds the server's nonce, so that the first
    // request is not refused for want of one after spending the jti.
    const dpop = need(ctx.flow, 'PAR ... full flow').dpop
    const jti = randomUUID()
    const fixed = oauth.PrivateKeyJwt(keys.es, { [oauth.modifyAssertion]: (_h, p) => { p.jti = jti } })
    await fapiClientCredentials(ctx, fixed, dpop)
    const err = await refused(() => fapiClientCredentials(ctx, fixed, dpop), 'the assertion replayed')
    assertClientRefusal(err, 'a replayed assertion')
  })

  await check(name('refused: the demo secret client (client_secret_basic): 401 invalid_client'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const demo = { client_id: CONFIDENTIAL.id, token_endpoint_auth_method: 'client_secret_basic' }
    const err = await refused(
      () =>
        retryOnNonce(async () => {
          const res = await oauth.clientCredentialsGrantRequest(ctx.as, demo, oauth.ClientSecretBasic(CONFIDENTIAL.secret), {}, { ...httpOptions, DPoP: dpop })
          return oauth.processClientCredentialsResponse(ctx.as, demo, res)
        }),
      'a secret',
    )
    // 401 with a Basic challenge (RFC 6749 §5.2), which oauth4webapi
    // reports as a WWWAuthenticateChallengeError; the body names the error.
    assert(err instanceof oauth.WWWAuthenticateChallengeError, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.status, 401, 'status')
    assert(err.cause.some((c) => c.scheme === 'basic'), `challenge ${err.response.headers.get('www-authenticate')}`)
    let body = {}
    try {
      body = await err.response.json()
    } catch {}
    assertEqual(body.error, 'invalid_client', 'error')
  })

  await check(name('refused: PAR without PKCE'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const err = await refused(
      () => push(ctx, client, auth, dpop, { response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'read', state: 's' }),
      'PAR without code_challenge',
    )
    assert(err instanceof oauth.ResponseBodyError && err.status === 400, `unexpected refusal: ${describe(err)}`)
    assertEqual(err.error, 'invalid_request', 'error')
  })

  await check(name('refused: PAR with a dpop_jkt that is not the DPoP header key'), async () => {
    const dpop = oauth.DPoP(client, await newKeyPair('ES256'))
    const otherJkt = await thumbprint((await newKeyPair('ES256')).publicKey)
    const verifier = oauth.generateRandomCodeVerifier()
    const err = await refused(
      async () => push(ctx, client, auth, dpop, { ...(await pkceParams(verifier, 's')), dpop_jkt: otherJkt }),
      'PAR with a mismatching dpop_jkt',
    )
    assert(err instanceof oauth.ResponseBodyError && err.status === 400, `unexpected refusal: ${describe(err)}`)
    assert(['invalid_request', 'invalid_dpop_proof'].includes(err.error), `error ${err.error}`)
  })

  await check(name("refused: another client's request_uri at the authorization endpoint"), async () => {
    const dpop = oauth.DPoP(other, await newKeyPair('ES256'))
    const verifier = oauth.generateRandomCodeVerifier()
    const par = await push(ctx, other, otherAuth, dpop, await pkceParams(verifier, 's'))
    const answer = await authorizeByReference(ctx, FAPI_CLIENT, par.request_uri)
    const error = assertAuthorizationRefused(answer, `${FAPI_CLIENT} with ${FAPI_OTHER}'s request_uri`)
    if (error) assert(['invalid_request_uri', 'invalid_request'].includes(error), `error ${error}`)
    // Its own client may still use it: the refusal did not spend it.
    const own = await authorizeByReference(ctx, FAPI_OTHER, par.request_uri)
    assertEqual(own.status, 303, `${FAPI_OTHER} with its own request_uri (${oneLine(own.text).slice(0, 160)})`)
    assert(own.callback.searchParams.get('code'), `${FAPI_OTHER}'s redirect carries no code: ${own.callback}`)
  })

  await check(name('refused: an authorization request that did not go through PAR'), async () => {
    const verifier = oauth.generateRandomCodeVerifier()
    const answer = await authorizeByReference(ctx, FAPI_CLIENT, null, await pkceParams(verifier, 's'))
    const error = assertAuthorizationRefused(answer, 'an authorization request without PAR')
    if (error) assertEqual(error, 'invalid_request', 'error')
  })
}

// --------------------------------------------------------------------- main

async function main() {
  const started = Date.now()
  const tmp = (tmpDir = await mkdtemp(path.join(os.tmpdir(), 'dpopkit-interop-')))
  const servers = []
  try {
    const binary = path.join(tmp, process.platform === 'win32' ? 'server.exe' : 'server')
    const built = await check('build ./examples/server', () =>
      runToEnd('go', ['build', '-o', binary, './examples/server'], { cwd: repoRoot }),
    )
    if (!built) return

    // The FAPI 2.0 server, with nonces and JWT access tokens too: its
    // clients' JWK Sets are written first.
    const keys = await fapiKeys(tmp)
    const fapi = {
      name: 'fapi2',
      flags: ['-profile', 'fapi2', '-require-nonce', '-token-format', 'jwt', ...keys.flags],
      fapi: true,
      requireNonce: true,
      jwt: true,
    }
    for (const variant of [...VARIANTS, fapi]) servers.push(new DemoServer(variant, binary))
    const ports = await freePorts(servers.length)
    const ready = await Promise.allSettled(servers.map((s, i) => s.start(ports[i])))
    for (let i = 0; i < servers.length; i++) {
      const label = `[${servers[i].variant.name}] start server (${servers[i].variant.flags.join(' ')})`
      if (ready[i].status === 'fulfilled') {
        await check(label, () => {})
      } else {
        await check(label, () => {
          throw ready[i].reason
        })
      }
    }
    for (let i = 0; i < servers.length; i++) {
      if (ready[i].status !== 'fulfilled') continue
      const before = failed
      if (servers[i].variant.fapi) await runFapiVariant(servers[i].variant, servers[i], keys)
      else await runVariant(servers[i].variant, servers[i])
      if (failed > before && process.env.INTEROP_QUIET !== '1') {
        console.error(`--- last lines of the [${servers[i].variant.name}] server's log ---`)
        for (const line of servers[i].log.slice(-30)) console.error(line)
        console.error('---')
      }
    }
  } catch (err) {
    failed++
    console.log(`FAIL suite: ${describe(err)}`)
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()))
    killAll()
    await rm(tmp, { recursive: true, force: true }).catch(() => {})
    console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`)
    console.log(`${passed} passed, ${failed} failed`)
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}
process.on('exit', killAll)

await main()
process.exitCode = failed > 0 ? 1 : 0
