#!/usr/bin/env node
// ws_tcp_proxy.js serves MQTT over WebSocket on 127.0.0.1:<ws-port> at path
// /mqtt (subprotocol "mqtt") and relays every binary frame to a plain MQTT
// TCP listener on 127.0.0.1:<tcp-port>.
//
// Only for scripts/interop.sh's self-check against a reference broker whose
// own WebSocket listener is not usable here (Debian's mosquitto fails to open
// one on this machine), so that the MQTT.js-over-WebSocket client path is
// still exercised. mqttd serves WebSocket itself and needs no proxy.
//
//   node ws_tcp_proxy.js <ws-port> <tcp-port>
//
// Prints "listening" once the WebSocket port accepts connections; exits on
// SIGTERM/SIGINT.
'use strict';

const net = require('net');
const { WebSocketServer } = require('ws');

const [wsPort, tcpPort] = process.argv.slice(2).map(Number);
if (!wsPort || !tcpPort) {
  console.error('usage: ws_tcp_proxy.js <ws-port> <tcp-port>');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: wsPort,
  path: '/mqtt',
  handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
});

wss.on('connection', (ws) => {
  const tcp = net.connect(tcpPort, '127.0.0.1');
  const pending = [];
  let open = false;
  tcp.on('connect', () => {
    open = true;
    for (const chunk of pending.splice(0)) tcp.write(chunk);
  });
  ws.on('message', (data) => (open ? tcp.write(data) : pending.push(data)));
  tcp.on('data', (chunk) => ws.send(chunk, { binary: true }));
  const closeBoth = () => {
    tcp.destroy();
    ws.terminate();
  };
  ws.on('close', closeBoth);
  ws.on('error', closeBoth);
  tcp.on('close', closeBoth);
  tcp.on('error', closeBoth);
});

wss.on('listening', () => console.log('listening'));
wss.on('error', (err) => {
  console.error(`ws_tcp_proxy: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
