#!/usr/bin/env node
// MQTT.js peer for scripts/interop.sh, over TCP (mqtt://) or WebSocket
// (ws://host:port/mqtt, subprotocol "mqtt").
//
//   node mqttjs_check.js check   --url URL --protocol 3.1.1|5 --name N
//                                --client-prefix C --prefix P [--run-id R]
//   node mqttjs_check.js publish --url URL --protocol 3.1.1|5 --name N
//                                --client-prefix C --topic T --payload X --qos Q
//
// check: connect, subscribe, publish at QoS 0, 1 and 2 and a retained message,
// verifying that each message arrives with the payload and QoS it was sent
// with; prints "PASS <name>/<check>" or "FAIL <name>/<check>: <why>" per check
// and exits 1 when any failed. publish: sends one message and waits for its
// acknowledgement (PUBACK / PUBCOMP); used by the cross-library checks.
// Every wait is bounded by --timeout seconds.
'use strict';

const mqtt = require('mqtt');

function parseArgs(argv) {
  const opts = { timeout: 5, runId: String(Date.now()), qos: 1 };
  const [mode, ...rest] = argv;
  if (mode !== 'check' && mode !== 'publish') {
    throw new Error(`mode must be check or publish, got ${JSON.stringify(mode)}`);
  }
  opts.mode = mode;
  const keys = {
    '--url': 'url', '--protocol': 'protocol', '--name': 'name',
    '--client-prefix': 'clientPrefix', '--prefix': 'prefix', '--run-id': 'runId',
    '--timeout': 'timeout', '--topic': 'topic', '--payload': 'payload', '--qos': 'qos',
  };
  for (let i = 0; i < rest.length; i += 2) {
    const key = keys[rest[i]];
    if (!key || i + 1 >= rest.length) throw new Error(`bad argument ${rest[i]}`);
    opts[key] = rest[i + 1];
  }
  opts.timeout = Number(opts.timeout);
  opts.qos = Number(opts.qos);
  for (const need of ['url', 'protocol', 'name', 'clientPrefix']) {
    if (!opts[need]) throw new Error(`missing --${need.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
  }
  if (opts.protocol !== '3.1.1' && opts.protocol !== '5') {
    throw new Error(`--protocol must be 3.1.1 or 5, got ${opts.protocol}`);
  }
  if (mode === 'check' && !opts.prefix) throw new Error('check needs --prefix');
  if (mode === 'publish' && (opts.topic === undefined || opts.payload === undefined)) {
    throw new Error('publish needs --topic and --payload');
  }
  if (![0, 1, 2].includes(opts.qos)) throw new Error(`--qos must be 0, 1 or 2, got ${opts.qos}`);
  return opts;
}

class Failed extends Error {}

// withTimeout rejects with Failed(what) when promise has not settled in time.
function withTimeout(promise, seconds, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failed(`${what} within ${seconds}s`)), seconds * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// Peer is one MQTT.js client plus a queue of the messages it received, so a
// check can wait for "the next message on topic T" without racing the event.
class Peer {
  constructor(opts, role) {
    this.opts = opts;
    this.clientId = `${opts.clientPrefix}-${role}`;
    this.inbox = [];
    this.waiters = [];
    this.client = null;
  }

  async connect() {
    const { opts } = this;
    const client = mqtt.connect(opts.url, {
      clientId: this.clientId,
      protocolVersion: opts.protocol === '5' ? 5 : 4,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0, // a refused or dropped connection is a result, not something to retry
      connectTimeout: opts.timeout * 1000,
    });
    this.client = client;
    client.on('message', (topic, payload, packet) => {
      this.inbox.push({ topic, payload: Buffer.from(payload), qos: packet.qos, retain: !!packet.retain });
      for (const wake of this.waiters.splice(0)) wake();
    });
    const connack = await withTimeout(new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.once('close', () => reject(new Failed('connection closed before CONNACK')));
    }), opts.timeout, `client ${this.clientId}: no CONNACK`);
    client.removeAllListeners('error');
    client.removeAllListeners('close');
    client.on('error', () => {}); // later errors surface as failed waits
    if (connack.sessionPresent) {
      throw new Failed(`client ${this.clientId}: CONNACK session present=1 for a clean session`);
    }
  }

  async subscribe(filter, qos) {
    const granted = await withTimeout(new Promise((resolve, reject) => {
      this.client.subscribe(filter, { qos }, (err, g) => (err ? reject(err) : resolve(g)));
    }), this.opts.timeout, `no SUBACK for ${filter}`);
    const codes = granted.map((g) => g.qos);
    if (codes.length !== 1 || codes[0] !== qos) {
      throw new Failed(`SUBACK for ${filter} granted ${JSON.stringify(codes)}, want [${qos}]`);
    }
  }

  // publish resolves once QoS 0 is written, QoS 1 has its PUBACK and QoS 2
  // its PUBCOMP (MQTT.js calls back then).
  async publish(topic, payload, qos, retain = false) {
    const what = { 0: 'was not sent', 1: 'got no PUBACK', 2: 'got no PUBCOMP' }[qos];
    await withTimeout(new Promise((resolve, reject) => {
      this.client.publish(topic, payload, { qos, retain }, (err) => (err ? reject(err) : resolve()));
    }), this.opts.timeout, `publish(${topic}, qos ${qos}) ${what}`);
  }

  async next(topic, seconds) {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.topic === topic);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async expect(topic, payload, qos, retain) {
    const m = await this.next(topic, this.opts.timeout);
    if (!m) {
      const others = this.inbox.map((x) => x.topic);
      const extra = others.length ? ` (other messages: ${others.join(', ')})` : '';
      throw new Failed(`no message on ${topic} within ${this.opts.timeout}s${extra}`);
    }
    const problems = [];
    if (!m.payload.equals(Buffer.from(payload))) {
      problems.push(`payload ${JSON.stringify(m.payload.toString())}, want ${JSON.stringify(payload)}`);
    }
    if (m.qos !== qos) problems.push(`qos ${m.qos}, want ${qos}`);
    if (m.retain !== retain) problems.push(`retain ${Number(m.retain)}, want ${Number(retain)}`);
    if (problems.length) throw new Failed(`message on ${topic}: ${problems.join('; ')}`);
  }

  async expectNone(topic, seconds) {
    const m = await this.next(topic, seconds);
    if (m) {
      throw new Failed(`unexpected message on ${topic}: payload ${JSON.stringify(m.payload.toString())} retain ${Number(m.retain)}`);
    }
  }

  async close() {
    if (!this.client) return;
    await withTimeout(new Promise((resolve) => this.client.end(false, {}, resolve)), 2, 'close')
      .catch(() => this.client.end(true));
  }
}

async function runChecks(opts) {
  const { name, prefix, runId } = opts;
  const results = [];
  const peers = [];
  const newPeer = (role) => {
    const p = new Peer(opts, role);
    peers.push(p);
    return p;
  };
  const check = async (label, fn) => {
    try {
      await fn();
    } catch (err) {
      results.push(false);
      const why = err instanceof Failed ? err.message : `${err.name || 'Error'}: ${err.message}`;
      console.log(`FAIL ${name}/${label}: ${why}`);
      return false;
    }
    results.push(true);
    console.log(`PASS ${name}/${label}`);
    return true;
  };

  try {
    const sub = newPeer('sub');
    const pub = newPeer('pub');
    if (!(await check('connect', async () => { await sub.connect(); await pub.connect(); }))) return results;
    if (!(await check('subscribe', () => sub.subscribe(`${prefix}/+`, 2)))) return results;

    for (const qos of [0, 1, 2]) {
      const topic = `${prefix}/qos${qos}`;
      const payload = `${name} ${runId} qos ${qos}`;
      await check(`qos${qos}`, async () => {
        await pub.publish(topic, payload, qos);
        // The subscription is QoS 2, so the message keeps its QoS.
        await sub.expect(topic, payload, qos, false);
      });
    }

    const retainedTopic = `${prefix}/retained`;
    const retainedPayload = `${name} ${runId} retained`;
    const ok = await check('retained', async () => {
      await pub.publish(retainedTopic, retainedPayload, 1, true);
      // Live subscribers get it with retain=0 [MQTT-3.3.1-9] ...
      await sub.expect(retainedTopic, retainedPayload, 1, false);
      const late = newPeer('late');
      await late.connect();
      await late.subscribe(retainedTopic, 2);
      // ... a new subscriber gets the stored copy with retain=1 [MQTT-3.3.1-8].
      await late.expect(retainedTopic, retainedPayload, 1, true);
    });
    if (ok) {
      await check('retained-clear', async () => {
        // An empty retained payload deletes the stored message [MQTT-3.3.1-10].
        await pub.publish(retainedTopic, '', 1, true);
        await sub.expect(retainedTopic, '', 1, false);
        const later = newPeer('later');
        await later.connect();
        await later.subscribe(retainedTopic, 2);
        await later.expectNone(retainedTopic, 0.5);
      });
    }
  } finally {
    await Promise.all(peers.map((p) => p.close().catch(() => {})));
  }
  return results;
}

async function runPublish(opts) {
  const peer = new Peer(opts, 'pub');
  try {
    await peer.connect();
    await peer.publish(opts.topic, opts.payload, opts.qos);
  } finally {
    await peer.close().catch(() => {});
  }
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`mqttjs_check: ${err.message}`);
    return 2;
  }
  if (opts.mode === 'publish') {
    try {
      await runPublish(opts);
      return 0;
    } catch (err) {
      console.error(`${opts.name}: publish failed: ${err.message}`);
      return 1;
    }
  }
  const results = await runChecks(opts);
  return results.length > 0 && results.every(Boolean) ? 0 : 1;
}

main().then((code) => process.exit(code));
