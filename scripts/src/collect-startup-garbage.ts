/**
 * Preloaded by `npm start` into its long-running Node children (`node --expose-gc --import <this file>`):
 * a few full garbage collections in the first minutes, then one every five minutes.
 *
 * Why: a start leaves big garbage that V8 has no reason to collect soon, because its JavaScript heap barely
 * grows afterwards. Ponder opens a PGlite database once to check it and closes it (a 250 MB WebAssembly
 * memory, ~145 MB of it resident), and the API's PGlite runs initdb on a first start; both stay resident
 * until a major GC. A full GC of these heaps costs tens of milliseconds: cheap for a development stack.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (gc) {
  const collect = () => gc();
  for (const seconds of [10, 20, 40, 80, 160]) setTimeout(collect, seconds * 1000).unref();
  setInterval(collect, 300_000).unref();
}
