// The service's OAuth 2.0 endpoints, driven by openid-client v6 (npm) as a client application would.
//
// Run by .ci/oauth-interop against the running service: node .ci/oauth_interop_openid_client.mjs
// Configured only through the environment (the same variables as .ci/oauth_interop_authlib.py):
//   OAUTH_ISSUER, OAUTH_PUBLIC_CLIENT_ID, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET,
//   OAUTH_OTHER_CLIENT_ID, OAUTH_OTHER_CLIENT_SECRET, OAUTH_USERNAME, OAUTH_PASSWORD,
//   OAUTH_ACCESS_TTL; OAUTH_NODE_DIR is the folder whose node_modules holds openid-client.
//
// Every client configuration comes from discovery() with the issuer URL alone (both algorithms,
// "oidc" and "oauth2"); http:// needs allowInsecureRequests, and the issuer is loopback only.
// Token endpoint errors must surface as the library's ResponseBodyError (or, for a 401 with a
// WWW-Authenticate challenge, WWWAuthenticateChallengeError) with the RFC 6749 error code.
// One line per step; on failure, the step, the last request and the raw answer, then exit 1.

import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (name) => {
  const value = process.env[name];
  if (value === undefined || value === '') {
    console.error(`openid-client: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const ISSUER = env('OAUTH_ISSUER');
const PUBLIC_CLIENT_ID = env('OAUTH_PUBLIC_CLIENT_ID');
const CLIENT_ID = env('OAUTH_CLIENT_ID');
const CLIENT_SECRET = env('OAUTH_CLIENT_SECRET');
const OTHER_CLIENT_ID = env('OAUTH_OTHER_CLIENT_ID');
const OTHER_CLIENT_SECRET = env('OAUTH_OTHER_CLIENT_SECRET');
const USERNAME = env('OAUTH_USERNAME');
const PASSWORD = env('OAUTH_PASSWORD');
const ACCESS_TTL = Number(env('OAUTH_ACCESS_TTL'));
const TIMEOUT = 10; // seconds, every request

if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(ISSUER).hostname)) {
  console.error(`openid-client: refusing a non-loopback issuer ${ISSUER}`);
  process.exit(2);
}

// openid-client is installed outside the repository (OAUTH_NODE_DIR/node_modules): resolve it there.
const requireThere = createRequire(path.join(path.resolve(env('OAUTH_NODE_DIR')), 'package.json'));
const client = await import(pathToFileURL(requireThere.resolve('openid-client')).href);
const { version } = requireThere('openid-client/package.json');

class StepFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new StepFailed(message);
}

// The last request and answer, for the checks and failure messages: the library's customFetch hook.
let last = null;
async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  const body = options.body === undefined ? '' : String(options.body);
  last = {
    method: options.method,
    url: String(url),
    headers: new Headers(options.headers),
    body,
    form: new URLSearchParams(body),
    status: response.status,
    responseHeaders: response.headers,
    text: await response.clone().text(),
  };
  return response;
}

function describe() {
  if (last === null) return 'no answer was received';
  const shown = {};
  for (const name of ['authorization', 'content-type', 'accept']) {
    if (last.headers.has(name)) shown[name] = last.headers.get(name);
  }
  const text = last.text.length > 2000 ? `${last.text.slice(0, 2000)}…` : last.text;
  return (
    `request: ${last.method} ${last.url} headers=${JSON.stringify(shown)} body=${JSON.stringify(last.body)}\n` +
    `answer: ${last.status} ${JSON.stringify(Object.fromEntries(last.responseHeaders))}\n${text}`
  );
}

const issuerUrl = new URL(ISSUER);

function discover(clientId, clientSecret, authentication, algorithm = 'oauth2') {
  return client.discovery(issuerUrl, clientId, clientSecret, authentication, {
    algorithm,
    execute: [client.allowInsecureRequests],
    [client.customFetch]: recordingFetch,
    timeout: TIMEOUT,
  });
}

async function expectBodyError(call, code, status) {
  let result;
  try {
    result = await call();
  } catch (error) {
    check(
      error instanceof client.ResponseBodyError,
      `expected ResponseBodyError ${code}, got ${error?.name}: ${error?.message} (code ${error?.code})`,
    );
    check(error.error === code, `ResponseBodyError error ${JSON.stringify(error.error)}, expected ${code}`);
    check(error.status === status, `HTTP ${error.status}, expected ${status}`);
    return error;
  }
  throw new StepFailed(`expected ResponseBodyError ${code}, got ${JSON.stringify(result)}`);
}

function checkUserTokens(tokens, where) {
  check(typeof tokens.access_token === 'string' && tokens.access_token, `${where}: no access_token`);
  check(typeof tokens.refresh_token === 'string' && tokens.refresh_token, `${where}: no refresh_token`);
  check(tokens.token_type === 'bearer', `${where}: token_type ${tokens.token_type}`);
  check(tokens.expires_in === ACCESS_TTL, `${where}: expires_in ${tokens.expires_in}, expected ${ACCESS_TTL}`);
  const left = tokens.expiresIn();
  check(left > ACCESS_TTL - 10 && left <= ACCESS_TTL, `${where}: expiresIn() ${left}`);
  check(tokens.scope === '', `${where}: scope ${JSON.stringify(tokens.scope)}, expected "" (built-in client)`);
}

const state = {};
const steps = [];
const step = (name, fn) => steps.push([name, fn]);

step('discovery() algorithm oidc (/.well-known/openid-configuration)', async () => {
  const config = await discover(PUBLIC_CLIENT_ID, undefined, client.None(), 'oidc');
  check(new URL(last.url).pathname === '/.well-known/openid-configuration', `requested ${last.url}`);
  const metadata = config.serverMetadata();
  check(metadata.issuer === ISSUER, `issuer ${metadata.issuer}`);
  check(metadata.token_endpoint === `${ISSUER}/oauth/token`, `token_endpoint ${metadata.token_endpoint}`);
  state.oidcDocument = JSON.parse(last.text);
  return `issuer ${metadata.issuer}, token_endpoint ${metadata.token_endpoint}`;
});

step('discovery() algorithm oauth2 (/.well-known/oauth-authorization-server)', async () => {
  const config = await discover(PUBLIC_CLIENT_ID, undefined, client.None(), 'oauth2');
  check(new URL(last.url).pathname === '/.well-known/oauth-authorization-server', `requested ${last.url}`);
  const metadata = config.serverMetadata();
  check(metadata.issuer === ISSUER, `issuer ${metadata.issuer}`);
  for (const grant of ['password', 'refresh_token', 'client_credentials']) {
    check(metadata.grant_types_supported?.includes(grant), `grant_types_supported lacks ${grant}`);
  }
  for (const method of ['client_secret_basic', 'client_secret_post', 'none']) {
    check(metadata.token_endpoint_auth_methods_supported?.includes(method), `token auth methods lack ${method}`);
  }
  for (const endpoint of ['introspection_endpoint', 'revocation_endpoint', 'jwks_uri']) {
    check(typeof metadata[endpoint] === 'string', `no ${endpoint}`);
  }
  check(
    JSON.stringify(JSON.parse(last.text)) === JSON.stringify(state.oidcDocument),
    'differs from /.well-known/openid-configuration',
  );
  state.public = config;
  state.basic = await discover(CLIENT_ID, undefined, client.ClientSecretBasic(CLIENT_SECRET));
  state.post = await discover(CLIENT_ID, undefined, client.ClientSecretPost(CLIENT_SECRET));
  state.other = await discover(OTHER_CLIENT_ID, undefined, client.ClientSecretBasic(OTHER_CLIENT_SECRET));
  return 'same document as openid-configuration; configurations for the public and confidential clients';
});

step('genericGrantRequest password (public client, None())', async () => {
  const tokens = await client.genericGrantRequest(state.public, 'password', { username: USERNAME, password: PASSWORD });
  check(!last.headers.has('authorization'), 'an Authorization header for None()');
  check(last.form.get('client_id') === PUBLIC_CLIENT_ID, `client_id in the form: ${last.form.get('client_id')}`);
  checkUserTokens(tokens, 'password grant');
  check(/no-store/.test(last.responseHeaders.get('cache-control') ?? ''), 'no Cache-Control: no-store');
  state.user = tokens;
  return `token_type ${tokens.token_type}, expires_in ${tokens.expires_in}, scope ${JSON.stringify(tokens.scope)}`;
});

step('refreshTokenGrant (rotation)', async () => {
  const tokens = await client.refreshTokenGrant(state.public, state.user.refresh_token);
  checkUserTokens(tokens, 'refresh');
  check(tokens.refresh_token !== state.user.refresh_token, 'the refresh token was not rotated');
  state.spent = state.user.refresh_token;
  state.user = tokens;
  return 'new access token and a new refresh token';
});

step('refreshTokenGrant with the spent refresh token → ResponseBodyError invalid_grant', async () => {
  const error = await expectBodyError(() => client.refreshTokenGrant(state.public, state.spent), 'invalid_grant', 400);
  return `ResponseBodyError ${error.error}: ${error.error_description}`;
});

step('genericGrantRequest password after reuse detection (a new login)', async () => {
  const tokens = await client.genericGrantRequest(state.public, 'password', { username: USERNAME, password: PASSWORD });
  checkUserTokens(tokens, 'password grant');
  state.user = tokens;
  return 'fresh token pair';
});

step('clientCredentialsGrant, ClientSecretBasic', async () => {
  const tokens = await client.clientCredentialsGrant(state.basic);
  check(/^Basic /.test(last.headers.get('authorization') ?? ''), 'no HTTP Basic header');
  check(!last.form.has('client_secret'), 'the secret went in the form too');
  check(tokens.token_type === 'bearer', `token_type ${tokens.token_type}`);
  check(tokens.refresh_token === undefined, 'a refresh token for client_credentials');
  check(tokens.scope === 'introspect', `scope ${JSON.stringify(tokens.scope)}`);
  check(tokens.expires_in === ACCESS_TTL, `expires_in ${tokens.expires_in}`);
  state.serviceBasic = tokens;
  return `scope ${JSON.stringify(tokens.scope)}, expires_in ${tokens.expires_in}, no refresh token`;
});

step('clientCredentialsGrant, ClientSecretPost', async () => {
  const tokens = await client.clientCredentialsGrant(state.post, { scope: 'introspect' });
  check(!last.headers.has('authorization'), 'an Authorization header with ClientSecretPost');
  check(last.form.get('client_id') === CLIENT_ID && last.form.get('client_secret'), 'no client_id/secret in the form');
  check(tokens.scope === 'introspect', `scope ${JSON.stringify(tokens.scope)}`);
  state.servicePost = tokens;
  return `scope ${JSON.stringify(tokens.scope)}`;
});

step('clientCredentialsGrant with a scope the client lacks → ResponseBodyError invalid_scope', async () => {
  const error = await expectBodyError(() => client.clientCredentialsGrant(state.basic, { scope: 'ssf' }), 'invalid_scope', 400);
  return `ResponseBodyError ${error.error}`;
});

step('clientCredentialsGrant with a wrong secret → WWWAuthenticateChallengeError 401 invalid_client', async () => {
  const wrong = await discover(CLIENT_ID, undefined, client.ClientSecretBasic(`${CLIENT_SECRET}x`));
  try {
    await client.clientCredentialsGrant(wrong);
  } catch (error) {
    check(error instanceof client.WWWAuthenticateChallengeError, `got ${error?.name}: ${error?.message}`);
    check(error.status === 401, `HTTP ${error.status}`);
    check(error.cause?.[0]?.scheme === 'basic', `challenge ${JSON.stringify(error.cause)}`);
    const body = JSON.parse(last.text);
    check(body.error === 'invalid_client', `error ${body.error}`);
    return `401, challenge ${error.cause[0].scheme} realm=${error.cause[0].parameters.realm}, error ${body.error}`;
  }
  throw new StepFailed('a token with a wrong secret');
});

step('genericGrantRequest password with a wrong password → ResponseBodyError invalid_grant', async () => {
  const error = await expectBodyError(
    () => client.genericGrantRequest(state.public, 'password', { username: USERNAME, password: `${PASSWORD}x` }),
    'invalid_grant',
    400,
  );
  return `ResponseBodyError ${error.error}`;
});

step('tokenIntrospection: a user access token (ClientSecretBasic)', async () => {
  const answer = await client.tokenIntrospection(state.basic, state.user.access_token, { token_type_hint: 'access_token' });
  check(answer.active === true, `not active: ${JSON.stringify(answer)}`);
  const expected = { client_id: PUBLIC_CLIENT_ID, token_type: 'Bearer', username: USERNAME, iss: ISSUER, scope: '' };
  for (const [key, value] of Object.entries(expected)) {
    check(answer[key] === value, `${key} ${JSON.stringify(answer[key])}, expected ${JSON.stringify(value)}`);
  }
  for (const key of ['sub', 'exp', 'iat', 'aud', 'sid', 'jti']) check(key in answer, `no ${key}`);
  return `active, client_id ${answer.client_id}, username ${answer.username}`;
});

step('tokenIntrospection: a user refresh token (ClientSecretPost)', async () => {
  const answer = await client.tokenIntrospection(state.post, state.user.refresh_token, { token_type_hint: 'refresh_token' });
  check(answer.active === true, `not active: ${JSON.stringify(answer)}`);
  check(answer.token_type === 'refresh_token', `token_type ${answer.token_type}`);
  check(answer.client_id === PUBLIC_CLIENT_ID, `client_id ${answer.client_id}`);
  return `active, token_type ${answer.token_type}`;
});

step('tokenIntrospection: a client_credentials token', async () => {
  const answer = await client.tokenIntrospection(state.basic, state.servicePost.access_token);
  check(answer.active === true, `not active: ${JSON.stringify(answer)}`);
  check(answer.client_id === CLIENT_ID && answer.sub === CLIENT_ID, `client_id/sub ${JSON.stringify(answer)}`);
  check(answer.scope === 'introspect', `scope ${answer.scope}`);
  return `active, sub ${answer.sub}, scope ${JSON.stringify(answer.scope)}`;
});

step('tokenIntrospection by a client without scope introspect → ResponseBodyError 403 insufficient_scope', async () => {
  const error = await expectBodyError(
    () => client.tokenIntrospection(state.other, state.user.access_token),
    'insufficient_scope',
    403,
  );
  return `ResponseBodyError ${error.error}`;
});

step('tokenRevocation: the user access token (public client) → introspection active: false', async () => {
  const result = await client.tokenRevocation(state.public, state.user.access_token, { token_type_hint: 'access_token' });
  check(result === undefined, `revocation answered ${JSON.stringify(result)}`);
  check(last.status === 200, `revocation HTTP ${last.status}`);
  const answer = await client.tokenIntrospection(state.basic, state.user.access_token);
  check(JSON.stringify(answer) === '{"active":false}', `after revocation: ${JSON.stringify(answer)}`);
  return 'revoked; introspection {"active":false}';
});

step('tokenRevocation: the user refresh token → inactive, refreshTokenGrant → invalid_grant', async () => {
  await client.tokenRevocation(state.public, state.user.refresh_token, { token_type_hint: 'refresh_token' });
  const answer = await client.tokenIntrospection(state.post, state.user.refresh_token, { token_type_hint: 'refresh_token' });
  check(JSON.stringify(answer) === '{"active":false}', `after revocation: ${JSON.stringify(answer)}`);
  const error = await expectBodyError(() => client.refreshTokenGrant(state.public, state.user.refresh_token), 'invalid_grant', 400);
  return `revoked; introspection inactive; refresh ResponseBodyError ${error.error}`;
});

step('tokenRevocation: a client_credentials token (ClientSecretBasic) → active: false', async () => {
  await client.tokenRevocation(state.basic, state.serviceBasic.access_token);
  check(/^Basic /.test(last.headers.get('authorization') ?? ''), 'no HTTP Basic header on /revoke');
  const answer = await client.tokenIntrospection(state.basic, state.serviceBasic.access_token);
  check(JSON.stringify(answer) === '{"active":false}', `after revocation: ${JSON.stringify(answer)}`);
  return 'revoked; introspection {"active":false}';
});

step('refreshTokenGrant with an invalid refresh token → ResponseBodyError invalid_grant', async () => {
  const error = await expectBodyError(() => client.refreshTokenGrant(state.public, 'not-a-refresh-token'), 'invalid_grant', 400);
  return `ResponseBodyError ${error.error}: ${error.error_description}`;
});

console.log(`openid-client ${version} (node ${process.version}) against ${ISSUER}`);
let passed = 0;
let failed = 0;
for (const [name, fn] of steps) {
  last = null;
  try {
    const detail = await fn();
    passed += 1;
    console.log(`ok   ${name}: ${detail}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}: ${error?.name ?? 'Error'}: ${error?.message}${error?.code ? ` (${error.code})` : ''}`);
    if (!(error instanceof StepFailed) && error?.cause !== undefined && !(error.cause instanceof Response)) {
      console.log(`  cause: ${JSON.stringify(error.cause)?.slice(0, 2000)}`);
    }
    if (!(error instanceof StepFailed) && !(error instanceof client.ResponseBodyError)) {
      console.log(`  ${String(error?.stack).split('\n').slice(1, 4).join('\n  ')}`);
    }
    console.log(`  ${describe().replaceAll('\n', '\n  ')}`);
    if (name.startsWith('discovery')) break; // nothing else can run without the metadata
  }
}
console.log(`openid-client: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
