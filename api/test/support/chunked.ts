/** `text` as a request body of unknown length (sent chunked, without content-length), 256 KiB a chunk. */
export function chunkedBody(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      for (let offset = 0; offset < bytes.length; offset += 256 * 1024) {
        controller.enqueue(bytes.subarray(offset, offset + 256 * 1024));
      }
      controller.close();
    },
  });
}
