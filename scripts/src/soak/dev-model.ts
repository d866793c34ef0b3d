/**
 * The dev model as its own process (the LLM upstream both API replicas share, as LiteLLM is in
 * docker-compose.yml): `node dev-model.ts <port>`. Prints `{"url": ...}` once it listens.
 */
import { startDevModelServer } from '@chainmeter/api/dev-model/dev-model.server';

const dev = await startDevModelServer({ port: Number(process.argv[2] ?? 0) });
console.log(JSON.stringify({ url: dev.baseUrl }));
process.on('SIGTERM', () => void dev.stop().then(() => process.exit(0)));
