/** Waits until every promise has settled, then rejects with the first rejection, if there was one. */
export async function allSettledOrFirstError(promises: Iterable<Promise<unknown>>): Promise<void> {
  for (const outcome of await Promise.allSettled(promises)) if (outcome.status === 'rejected') throw outcome.reason;
}
