/** Anything a `Listenable` can emit: event name → listener signature. */
export type EventMap<E> = { [K in keyof E]: (...args: any[]) => void };

/** The listening half of an emitter: what the SDK hands its users. */
export interface Listenable<E extends EventMap<E>> {
  on<K extends keyof E>(event: K, listener: E[K]): this;
  once<K extends keyof E>(event: K, listener: E[K]): this;
  off<K extends keyof E>(event: K, listener: E[K]): this;
}

/**
 * A small typed emitter that runs in Node and the browser alike (no `node:events`).
 *
 * Like the DOM's `EventTarget`: a listener that throws does not stop the others nor the SDK's own
 * work; its exception is rethrown on a fresh task, where the runtime reports it as uncaught.
 */
export class TypedEmitter<E extends EventMap<E>> implements Listenable<E> {
  private readonly listeners = new Map<keyof E, Set<E[keyof E]>>();

  on<K extends keyof E>(event: K, listener: E[K]): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  once<K extends keyof E>(event: K, listener: E[K]): this {
    const wrapper = ((...args: Parameters<E[K]>) => {
      this.off(event, wrapper);
      listener(...args);
    }) as E[K];
    return this.on(event, wrapper);
  }

  off<K extends keyof E>(event: K, listener: E[K]): this {
    this.listeners.get(event)?.delete(listener);
    return this;
  }

  listenerCount(event: keyof E): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Calls the listeners of `event` in the order they were added; false when there were none. */
  emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): boolean {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return false;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
    return true;
  }
}
