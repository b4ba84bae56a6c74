// A minimal WebSocket relay with npm `ws`: the baseline for KREKI's hub (realtime/BENCHMARKS.md).
// It holds connections and relays every text message a client sends to every other client, with
// ws's defaults except compression off (KREKI does not compress either). Listens on 127.0.0.1 on
// the port given (0: any free one) and prints `listening <port>` once ready. Stops when stdin closes.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client !== socket && client.readyState === 1) client.send(data, { binary: isBinary });
    }
  });
  socket.on('error', () => {});
});
wss.on('listening', () => {
  process.stdout.write(`listening ${wss.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
