/**
 * The queue behind group commit (`HoldBatcher`, `SettlementBatcher`): items wait here and are written
 * together. When idle an item leaves at once, alone (no added delay); under load, those that arrive while a
 * batch is being written form the next one, up to `maxBatch`. What a batch is, and how a member's promise
 * settles, is the writer's: it resolves or rejects every entry it is given.
 */
export interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export class GroupCommitQueue<Item, Result> {
  readonly #maxBatch: number;
  readonly #write: (batch: Waiting<Item, Result>[]) => Promise<void>;
  readonly #waiting: Waiting<Item, Result>[] = [];
  #writing = false;

  constructor(maxBatch: number, write: (batch: Waiting<Item, Result>[]) => Promise<void>) {
    this.#maxBatch = maxBatch;
    this.#write = write;
  }

  /** Queues `item` for the next batch; settles as the writer settles its entry. */
  submit(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#writing) void this.#writeBatches();
    });
  }

  async #writeBatches(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#waiting.length > 0) await this.#write(this.#waiting.splice(0, this.#maxBatch));
    } finally {
      this.#writing = false;
    }
  }
}
