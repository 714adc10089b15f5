// tests/interop/token_interop.mjs - an independent check of gov-edge's tokens with maintained
// JOSE and OAuth 2.0 client libraries (nothing of libgov is used here).
//
//   node token_interop.mjs --edge URL --client-id ID --client-secret SECRET --audience AUD
//                          [--tenant T] [--scope "X Y"]
//
// Libraries (npm registry, pinned in tests/interop/package.json, installed by
// tests/interop/install.sh into a cache outside the repository):
//   jose           JWS/JWT/JWKS: createRemoteJWKSet + jwtVerify(issuer, audience, ['EdDSA'])
//   openid-client  the OAuth 2.0 client: client-credentials grant (RFC 6749 §4.4, client_secret_basic
//                  and client_secret_post), token introspection (RFC 7662), revocation (RFC 7009)
//
// The endpoints are the contract's (docs/api.md): POST /v1/tokens/issue, /v1/tokens/introspect,
// /v1/tokens/revoke, GET /.well-known/jwks.json, /.well-known/openid-configuration (whose
// "issuer" is the issuer the token must carry).
//
// Checks, in order; the first that fails ends the run with exit 1 and says which:
//   1. discovery answers with an issuer;
//   2. a token issued with HTTP Basic, and one with the form body, are Bearer JWTs with
//      expires_in, and both verify with jose against the served JWKS (issuer, audience,
//      algorithms ['EdDSA'] only), sub = the client, the requested scope and tenant;
//   3. negatives that must fail in jose: the same claims signed by a fresh Ed25519 key under
//      the token's kid (bad signature), under a kid not in the JWKS (no matching key), the
//      payload tampered under the original signature, the right token with a wrong audience,
//      and with algorithms ['RS256'] (alg not allowed);
//   4. RFC 7662: openid-client's introspect() of the token answers active:true with the token's
//      sub, scope and exp; of the forged token active:false;
//   5. RFC 7009: revoke() succeeds, and introspection then answers active:false.
// Exit 0 when every check passed (last line "token_interop: N checks passed"), 1 when one
// failed, 2 on a usage error or a missing library.

import { parseArgs } from 'node:util';

const PROG = 'token_interop.mjs';
let passed = 0;

function fail(msg, code = 1) {
  console.error(`${PROG}: FAIL: ${msg}`);
  process.exit(code);
}
function ok(msg) {
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      edge: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      audience: { type: 'string' },
      tenant: { type: 'string' },
      scope: { type: 'string' },
    },
  }));
} catch (e) {
  fail(`usage: ${e.message}`, 2);
}
for (const k of ['edge', 'client-id', 'client-secret', 'audience']) {
  if (!args[k]) fail(`usage: --${k} is required (--edge URL --client-id ID --client-secret S --audience AUD [--tenant T] [--scope S])`, 2);
}

let jose, Issuer;
try {
  jose = await import('jose');
  ({ Issuer } = await import('openid-client'));
} catch (e) {
  fail(`the npm packages are missing (run: bash tests/interop/install.sh): ${e.message}`, 2);
}

const edge = args.edge.replace(/\/+$/, '');
const clientId = args['client-id'];
const audience = args.audience;
const scope = args.scope;
const tenant = args.tenant;

async function getJson(url) {
  const r = await fetch(url, { headers: { accept: 'application/json' } });
  const text = await r.text();
  if (r.status !== 200) fail(`GET ${url}: status ${r.status}: ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`GET ${url}: not JSON: ${text.slice(0, 300)}`);
  }
}

async function expectJoseError(what, codes, fn) {
  try {
    await fn();
  } catch (e) {
    if (codes.includes(e.code)) {
      ok(`${what} is rejected by jose (${e.code})`);
      return;
    }
    fail(`${what}: jose failed with ${e.code || e.name}: ${e.message}, expected ${codes.join(' or ')}`);
  }
  fail(`${what}: jose accepted it`);
}

async function main() {
  // 1. discovery
  const meta = await getJson(`${edge}/.well-known/openid-configuration`);
  if (typeof meta.issuer !== 'string' || meta.issuer.length === 0) fail('openid-configuration has no issuer');
  ok(`discovery: issuer ${meta.issuer}`);

  const issuer = new Issuer({
    issuer: meta.issuer,
    token_endpoint: `${edge}/v1/tokens/issue`,
    introspection_endpoint: `${edge}/v1/tokens/introspect`,
    revocation_endpoint: `${edge}/v1/tokens/revoke`,
    jwks_uri: `${edge}/.well-known/jwks.json`,
  });
  const mkClient = (method) => new issuer.Client({
    client_id: clientId,
    client_secret: args['client-secret'],
    token_endpoint_auth_method: method,
    introspection_endpoint_auth_method: method,
    revocation_endpoint_auth_method: method,
  });
  const basic = mkClient('client_secret_basic');
  const post = mkClient('client_secret_post');
  const JWKS = jose.createRemoteJWKSet(new URL(`${edge}/.well-known/jwks.json`));
  const verifyOpts = { issuer: meta.issuer, audience, algorithms: ['EdDSA'] };

  // 2. issue (both client authentications) and verify
  const grant = { grant_type: 'client_credentials' };
  if (scope !== undefined) grant.scope = scope;
  if (tenant !== undefined) grant.tenant = tenant;
  const tokens = [];
  for (const [name, client] of [['HTTP Basic', basic], ['form body', post]]) {
    let ts;
    try {
      ts = await client.grant(grant);
    } catch (e) {
      fail(`client-credentials grant (${name}): ${e.message}${e.response ? ` (status ${e.response.statusCode}: ${JSON.stringify(e.response.body ?? null).slice(0, 300)})` : ''}`);
    }
    if (typeof ts.access_token !== 'string') fail(`grant (${name}): no access_token`);
    if (String(ts.token_type).toLowerCase() !== 'bearer') fail(`grant (${name}): token_type ${ts.token_type}, expected Bearer`);
    if (!Number.isInteger(ts.expires_in) || ts.expires_in <= 0) fail(`grant (${name}): expires_in ${ts.expires_in}`);
    let v;
    try {
      v = await jose.jwtVerify(ts.access_token, JWKS, verifyOpts);
    } catch (e) {
      fail(`jose.jwtVerify of the token issued with ${name}: ${e.code || e.name}: ${e.message}`);
    }
    if (v.protectedHeader.alg !== 'EdDSA' || typeof v.protectedHeader.kid !== 'string') fail(`header ${JSON.stringify(v.protectedHeader)}`);
    if (v.payload.sub !== clientId) fail(`sub ${v.payload.sub}, expected the client ${clientId}`);
    if (typeof v.payload.jti !== 'string' || v.payload.jti.length === 0) fail('no jti');
    if (scope !== undefined) {
      const got = String(v.payload.scope).split(' ');
      for (const s of scope.split(' ')) if (!got.includes(s)) fail(`scope "${v.payload.scope}" lacks "${s}"`);
    }
    if (tenant !== undefined && v.payload.tenant !== tenant) fail(`tenant ${v.payload.tenant}, expected ${tenant}`);
    ok(`token issued with ${name} verifies with jose (kid ${v.protectedHeader.kid}, jti ${v.payload.jti})`);
    tokens.push({ raw: ts.access_token, v });
  }
  const [{ raw: token, v: good }, { raw: token2 }] = tokens;
  if (good.payload.jti === tokens[1].v.payload.jti) fail('two tokens share a jti');

  // 3. negatives
  const { privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const forged = await new jose.SignJWT(good.payload)
    .setProtectedHeader({ alg: 'EdDSA', kid: good.protectedHeader.kid, typ: good.protectedHeader.typ })
    .sign(privateKey);
  await expectJoseError('a token signed by a key not in the JWKS, under the served kid', ['ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
    () => jose.jwtVerify(forged, JWKS, verifyOpts));
  const foreign = await new jose.SignJWT(good.payload)
    .setProtectedHeader({ alg: 'EdDSA', kid: 'not-a-served-kid' })
    .sign(privateKey);
  await expectJoseError('a token signed by a key not in the JWKS, under its own kid', ['ERR_JWKS_NO_MATCHING_KEY'],
    () => jose.jwtVerify(foreign, JWKS, verifyOpts));
  const [h, , s] = token.split('.');
  const tamperedPayload = Buffer.from(JSON.stringify({ ...good.payload, scope: `${good.payload.scope} admin` })).toString('base64url');
  await expectJoseError('a tampered payload under the original signature', ['ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
    () => jose.jwtVerify(`${h}.${tamperedPayload}.${s}`, JWKS, verifyOpts));
  await expectJoseError('the token checked for another audience', ['ERR_JWT_CLAIM_VALIDATION_FAILED'],
    () => jose.jwtVerify(token, JWKS, { ...verifyOpts, audience: `${audience}-other` }));
  await expectJoseError('the token when only RS256 is allowed', ['ERR_JOSE_ALG_NOT_ALLOWED'],
    () => jose.jwtVerify(token, JWKS, { ...verifyOpts, algorithms: ['RS256'] }));

  // 4. RFC 7662 introspection through openid-client
  const intro = async (tok, what) => {
    try {
      return await basic.introspect(tok, 'access_token');
    } catch (e) {
      fail(`introspect (${what}): ${e.message}${e.response ? ` (status ${e.response.statusCode})` : ''}`);
    }
  };
  const a = await intro(token, 'issued token');
  if (a.active !== true) fail(`introspection of a fresh token: ${JSON.stringify(a)}`);
  if (a.sub !== undefined && a.sub !== clientId) fail(`introspection sub ${a.sub}`);
  if (a.client_id !== undefined && a.client_id !== clientId) fail(`introspection client_id ${a.client_id}`);
  if (a.exp !== good.payload.exp) fail(`introspection exp ${a.exp}, the token's ${good.payload.exp}`);
  if (a.scope !== good.payload.scope) fail(`introspection scope "${a.scope}", the token's "${good.payload.scope}"`);
  if (a.sub === undefined && a.client_id === undefined) fail('introspection names neither sub nor client_id');
  ok(`introspection (RFC 7662, openid-client) of the token: active, scope "${a.scope}", exp ${a.exp}`);
  const f = await intro(forged, 'forged token');
  if (f.active !== false) fail(`introspection of a forged token: ${JSON.stringify(f)}`);
  ok('introspection of the forged token: active false');

  // 5. RFC 7009 revocation, then introspection says inactive
  try {
    await basic.revoke(token2, 'access_token');
  } catch (e) {
    fail(`revoke: ${e.message}${e.response ? ` (status ${e.response.statusCode})` : ''}`);
  }
  const r = await intro(token2, 'revoked token');
  if (r.active !== false) fail(`introspection after revocation: ${JSON.stringify(r)}`);
  ok('revocation (RFC 7009, openid-client), then introspection: active false');

  console.log(`${PROG.replace('.mjs', '')}: ${passed} checks passed`);
}

main().catch((e) => fail(`unexpected: ${e.stack || e}`));
