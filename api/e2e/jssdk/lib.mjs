// Helpers for e2ee.mjs: accounts, crypto-enabled clients, and waiting for
// what a client sees through /sync. Everything goes over plain HTTP to the
// server under test; nothing is mocked.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

// The SDK logs every request at debug level, and its Rust crypto turns
// its own tracing on at debug level straight to the console: keep warnings
// and errors (they name what the client disliked) unless JSSDK_DEBUG is
// set. The scenario's own progress lines go to stdout directly.
if (!process.env.JSSDK_DEBUG) {
    logger.setLevel("warn");
    console.log = console.info = console.debug = console.trace = () => {};
}

// step prints one progress line with the time since start.
const t0 = performance.now();
export function step(msg) {
    process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
}

export const password = (user) => `correct horse battery ${user}`;

// failedRequests records every response the server answered with an error
// status, so a failing run shows which endpoint the client tripped on.
export const failedRequests = [];

async function recordingFetch(input, init) {
    const res = await fetch(input, init);
    if (!res.ok) {
        const url = new URL(input instanceof Request ? input.url : String(input));
        let body = {};
        try {
            body = await res.clone().json();
        } catch {
            // not JSON: the status says enough
        }
        failedRequests.push({ method: init?.method ?? "GET", path: url.pathname, status: res.status, body });
    }
    return res;
}

// The error responses a conforming server gives this scenario: the first
// step of user-interactive auth, and "no backup" before one exists.
const expectedFailures = [
    (f) => f.status === 401 && f.body.flows !== undefined,
    (f) => f.status === 404 && f.body.errcode === "M_NOT_FOUND" && f.path.endsWith("/room_keys/version"),
];

// unexpectedFailures are the error responses a conforming server would not
// have given: a missing endpoint, a rejected request, a server error.
export function unexpectedFailures() {
    return failedRequests.filter((f) => !expectedFailures.some((ok) => ok(f)));
}

export function describeFailure(f) {
    return `${f.method} ${f.path} -> ${f.status} ${JSON.stringify(f.body)}`;
}

// register creates an account through user-interactive auth: the first
// request returns the flows and a session, the second completes the
// m.login.dummy stage, as a client that knows nothing of the server would.
export async function register(baseUrl, user) {
    const anon = sdk.createClient({ baseUrl, fetchFn: recordingFetch });
    const req = { username: user, password: password(user), initial_device_display_name: `${user}'s first device` };
    let session;
    try {
        await anon.registerRequest(req);
        throw new Error("register without auth succeeded; expected a 401 with flows");
    } catch (err) {
        if (err.httpStatus !== 401 || !err.data?.session) throw err;
        const flows = err.data.flows ?? [];
        if (!flows.some((f) => f.stages?.length === 1 && f.stages[0] === "m.login.dummy")) {
            throw new Error(`no m.login.dummy flow in ${JSON.stringify(flows)}`);
        }
        session = err.data.session;
    }
    return anon.registerRequest({ ...req, auth: { type: "m.login.dummy", session } });
}

// login opens another session (a new device) for an existing account,
// naming the user by full user ID as clients that remember it do.
export async function login(baseUrl, localpart, userId) {
    const anon = sdk.createClient({ baseUrl, fetchFn: recordingFetch });
    return anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password: password(localpart),
        initial_device_display_name: `${localpart}'s later device`,
    });
}

// startCryptoClient builds a client for a session, initialises Rust crypto
// with in-memory stores (Node has no IndexedDB) and syncs until PREPARED.
export async function startCryptoClient(baseUrl, creds, name) {
    const client = sdk.createClient({
        baseUrl,
        userId: creds.user_id,
        accessToken: creds.access_token,
        deviceId: creds.device_id,
        fetchFn: recordingFetch,
    });
    client.label = name;
    await client.initRustCrypto({ useIndexedDB: false });
    const prepared = waitFor(client, sdk.ClientEvent.Sync, (state) => state === "PREPARED", `${name} first sync`);
    // A short long-poll keeps the test quick when the client stops.
    await client.startClient({ initialSyncLimit: 20, pollTimeout: 5000 });
    await prepared;
    return client;
}

// waitFor resolves with the arguments of the first event emitter fires
// for which pred holds, and rejects after ms.
function waitFor(emitter, event, pred, what, ms = 20000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            emitter.off(event, listener);
            reject(new Error(`timed out waiting for ${what}`));
        }, ms);
        function listener(...args) {
            let ok;
            try {
                ok = pred(...args);
            } catch (err) {
                ok = false;
                clearTimeout(timer);
                emitter.off(event, listener);
                reject(err);
                return;
            }
            if (ok) {
                clearTimeout(timer);
                emitter.off(event, listener);
                resolve(args);
            }
        }
        emitter.on(event, listener);
    });
}

// poll resolves once check() returns a truthy value, re-checking every
// interval ms, for states that have no single event to wait on.
export async function poll(check, what, { ms = 20000, interval = 50 } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = await check();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, interval));
    }
}

// decryptedBody waits until client has event eventId of roomId in its
// timeline and decrypted, and returns the plaintext body. A decryption
// failure is an error that says why.
export async function decryptedBody(client, roomId, eventId) {
    const ev = await poll(() => client.getRoom(roomId)?.findEventById(eventId), `${client.label} to receive ${eventId}`);
    if (!ev.isEncrypted()) throw new Error(`${client.label}: ${eventId} arrived unencrypted`);
    await poll(() => !ev.isBeingDecrypted() && !ev.shouldAttemptDecryption(), `${client.label} to decrypt ${eventId}`);
    // A megolm key that arrives after the event triggers a retry; give it
    // the chance before declaring failure.
    await poll(() => !ev.isDecryptionFailure() || null, `${client.label} to get the room key for ${eventId}`).catch(
        () => {
            throw new Error(`${client.label} cannot decrypt ${eventId}: ${ev.decryptionFailureReason} ${ev.getContent().body}`);
        },
    );
    return ev.getContent().body;
}

// sendText sends an m.text message and returns its event ID.
export async function sendText(client, roomId, body) {
    const { event_id: eventId } = await client.sendMessage(roomId, { msgtype: "m.text", body });
    return eventId;
}

