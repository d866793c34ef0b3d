/**
 * A TCP relay between the platform (API replicas, Ponder) and the machine's PostgreSQL, run as its own
 * process: `node pg-relay.ts <listen port> <target host> <target port>`.
 *
 * The soak's "PostgreSQL paused 5 s" is SIGSTOP of this relay, then SIGCONT: every query of the platform
 * stops mid-flight, connections being opened wait, and nothing is refused, as when the database server
 * stalls (docker pause, a VM freeze, a storage hiccup). PostgreSQL itself is never signalled: stopping the
 * postmaster or its backends on a shared server could leave it needing a restart, and would stall every
 * other user of the machine's server. The soak's own reads go to PostgreSQL directly.
 */
import net from 'node:net';

const [listenPort, targetHost, targetPort] = process.argv.slice(2);
if (!listenPort || !targetHost || !targetPort) {
  console.error('usage: node pg-relay.ts <listen port> <target host> <target port>');
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect(Number(targetPort), targetHost);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(JSON.stringify({ relay: `127.0.0.1:${listenPort}`, to: `${targetHost}:${targetPort}` }));
});
process.on('SIGTERM', () => process.exit(0));
