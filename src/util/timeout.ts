/**
 * Waiting with a limit. Both clear their timer as soon as the promise settles, so nothing waits on in
 * the background.
 */

/** Settles like `promise`, or rejects with `onTimeout()` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return settleWithin<T, never>(promise, ms, (_resolve, reject) => reject(onTimeout()));
}

/** Resolves like `promise`, or with `fallback` after `ms`; a rejection after that is ignored. */
export function orAfter<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return settleWithin<T, F>(promise, ms, (resolve) => resolve(fallback));
}

function settleWithin<T, F>(
  promise: Promise<T>,
  ms: number,
  atTimeout: (resolve: (value: F) => void, reject: (err: unknown) => void) => void,
): Promise<T | F> {
  return new Promise<T | F>((resolve, reject) => {
    const timer = setTimeout(() => atTimeout(resolve, reject), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
