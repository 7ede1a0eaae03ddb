// End-to-end encryption between real matrix-js-sdk clients (Rust crypto)
// through a Chronicle server: node e2ee.mjs BASE_URL
//
// alice and bob register, alice creates an encrypted room and invites bob,
// both exchange megolm-encrypted messages (room keys travel as olm-
// encrypted to-device messages after a /keys/claim), a second device of
// bob's logs in later, decrypts what is sent after it appeared and
// restores the earlier messages' keys from bob's server-side key backup,
// and alice bootstraps cross-signing. Exits non-zero with the reason and
// the server's error responses on any failure, including any error
// response a conforming server would not have given.

import {
    decryptedBody,
    describeFailure,
    failedRequests,
    login,
    password,
    poll,
    register,
    sendText,
    startCryptoClient,
    step,
    unexpectedFailures,
} from "./lib.mjs";

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node e2ee.mjs BASE_URL");
    process.exit(2);
}

// Every wait below has its own timeout; this one catches a hang anywhere
// else (the Go test kills the process too, later).
const overall = setTimeout(() => fail(new Error("scenario did not finish in 90s")), 90_000);
const clients = [];

function fail(err) {
    console.error(`FAIL: ${err?.stack ?? err}`);
    if (failedRequests.length > 0) {
        console.error("error responses from the server:\n  " + failedRequests.map(describeFailure).join("\n  "));
    }
    process.exit(1);
}

async function main() {
    const run = Date.now().toString(36);
    const aliceCreds = await register(baseUrl, `alice${run}`);
    const bobCreds = await register(baseUrl, `bob${run}`);
    step(`registered ${aliceCreds.user_id} and ${bobCreds.user_id}`);

    const alice = await startCryptoClient(baseUrl, aliceCreds, "alice");
    const bob = await startCryptoClient(baseUrl, bobCreds, "bob");
    clients.push(alice, bob);
    step("both clients synced with crypto initialised");

    // bob backs his room keys up on the server from the start, as Element
    // offers to; the client uploads new keys in the background.
    await bob.getCrypto().resetKeyBackup();
    const backupVersion = await poll(() => bob.getCrypto().getActiveSessionBackupVersion(), "bob's key backup to be enabled");
    step(`bob's key backup version ${backupVersion} is active`);

    const { room_id: roomId } = await alice.createRoom({
        name: "secret plans",
        invite: [bob.getUserId()],
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    await poll(() => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob to see the invite");
    await bob.joinRoom(roomId);
    // alice encrypts for the members she knows of: wait until her sync has
    // bob's join, as a user would see it before typing.
    await poll(() => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join", "alice to see bob join");
    for (const c of [alice, bob]) {
        await poll(() => c.getCrypto().isEncryptionEnabledInRoom(roomId), `${c.label} to see ${roomId} as encrypted`);
    }
    step(`room ${roomId} is encrypted and bob has joined`);

    const hello = "the eagle lands at midnight";
    const helloId = await sendText(alice, roomId, hello);
    expectEqual(await decryptedBody(bob, roomId, helloId), hello, "bob decrypts alice's message");
    step("bob decrypted alice's message");

    const reply = "copy that, bringing snacks";
    const replyId = await sendText(bob, roomId, reply);
    expectEqual(await decryptedBody(alice, roomId, replyId), reply, "alice decrypts bob's reply");
    step("alice decrypted bob's reply");

    // A second device of bob's: alice learns of it through /sync
    // device_lists.changed and shares the next room key with it too.
    const bob2 = await startCryptoClient(baseUrl, await login(baseUrl, `bob${run}`, bobCreds.user_id), "bob2");
    clients.push(bob2);
    await poll(async () => {
        const devices = await alice.getCrypto().getUserDeviceInfo([bob.getUserId()]);
        return devices.get(bob.getUserId())?.has(bob2.getDeviceId());
    }, "alice to learn of bob's new device");
    step(`alice sees bob's new device ${bob2.getDeviceId()}`);
    const later = "new phone, who dis";
    const laterId = await sendText(alice, roomId, later);
    expectEqual(await decryptedBody(bob2, roomId, laterId), later, "bob's new device decrypts");
    expectEqual(await decryptedBody(bob, roomId, laterId), later, "bob's first device still decrypts");
    step("bob's second device decrypted a message sent after it logged in");

    await restoreHistory(bob, bob2, roomId, backupVersion, [
        [helloId, hello],
        [replyId, reply],
    ]);
    step("bob's second device restored the earlier messages' keys from the backup");

    await bootstrapCrossSigning(alice, `alice${run}`, bob);
    step("alice bootstrapped cross-signing; bob sees her identity");

    const unexpected = unexpectedFailures();
    if (unexpected.length > 0) throw new Error(`the server answered ${unexpected.length} request(s) with an unexpected error`);
}

// restoreHistory has newDevice read messages sent before it existed: it
// gets the backup decryption key (a user would type the recovery key) and
// restores the keys oldDevice backed up. messages are [eventId, body].
async function restoreHistory(oldDevice, newDevice, roomId, version, messages) {
    // The backup loop starts after a random delay of up to 10s; wait until
    // the server holds the sessions of both messages (alice's and bob's).
    await poll(async () => {
        const info = await oldDevice.http.authedRequest("GET", "/room_keys/version");
        if (info.version !== version) throw new Error(`current backup version is ${info.version}, want ${version}`);
        return info.count >= 2;
    }, `${oldDevice.label}'s keys to reach the backup`, { interval: 250 });
    const key = await oldDevice.getCrypto().getSessionBackupPrivateKey();
    await newDevice.getCrypto().storeSessionBackupPrivateKey(key, version);
    const restored = await newDevice.getCrypto().restoreKeyBackup();
    if (restored.total < 2 || restored.imported < 1) throw new Error(`restore found ${restored.total} keys, imported ${restored.imported}`);
    for (const [eventId, body] of messages) {
        expectEqual(await decryptedBody(newDevice, roomId, eventId), body, `${newDevice.label} decrypts ${eventId} from the backup`);
    }
}

// bootstrapCrossSigning creates a user's cross-signing keys, uploads them
// and has the device signed by its self-signing key; observer's client
// must then see the same identity.
async function bootstrapCrossSigning(client, localpart, observer) {
    const crypto = client.getCrypto();
    const userId = client.getUserId();
    await crypto.bootstrapCrossSigning({
        // As Element does: try without auth (a first upload needs none),
        // and answer a user-interactive auth challenge with the password.
        authUploadDeviceSigningKeys: async (makeRequest) => {
            try {
                await makeRequest(null);
            } catch (err) {
                if (err.httpStatus !== 401 || !err.data?.flows) throw err;
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: localpart },
                    password: password(localpart),
                    session: err.data.session,
                });
            }
        },
    });
    if (!(await crypto.isCrossSigningReady())) throw new Error("cross-signing not ready after bootstrap");
    // The client learns that its device now carries a self-signing
    // signature by querying its own keys again, which /sync device_lists
    // tells it to after the signature upload.
    await poll(
        async () => (await crypto.getDeviceVerificationStatus(userId, client.getDeviceId()))?.signedByOwner,
        `${client.label}'s device to show her self-signing key's signature`,
    );
    await poll(() => observer.getCrypto().userHasCrossSigningKeys(userId, true), `${observer.label} to see ${userId}'s cross-signing keys`);
}

function expectEqual(got, want, what) {
    if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

main()
    .then(() => {
        step("PASS");
        for (const c of clients) c.stopClient();
        clearTimeout(overall);
        // The SDK keeps timers (key backups, retries) alive after stopClient.
        process.exit(0);
    })
    .catch(fail);
