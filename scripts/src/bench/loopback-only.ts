/**
 * Preloaded (`node --import`) into a peer server the gateway benchmark runs but does not own (Portkey's
 * gateway listens on every interface and has no flag to say otherwise): every TCP server of that process
 * listens on 127.0.0.1 only, as everything this project starts does.
 */
import net from 'node:net';

const LOOPBACK = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function listenOnLoopback(this: net.Server, ...args: unknown[]) {
  const [first, second] = args;
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port, [host], [backlog], [callback]): a missing or other host becomes loopback.
    if (typeof second === 'string' || second === undefined || second === null) args[1] = LOOPBACK;
    else args.splice(1, 0, LOOPBACK);
  } else if (typeof first === 'object' && first !== null && 'port' in first) {
    args[0] = { ...first, host: LOOPBACK };
  }
  return listen.apply(this, args as Parameters<typeof listen>);
} as typeof listen;
