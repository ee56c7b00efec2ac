/** Checks of what every cluster engine is given, so that they refuse the same things with the same words. */

export function requireNodeId(nodeId: string): void {
  if (nodeId.length === 0) throw new RangeError('nodeId must not be empty');
}

export function requirePositiveMs(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
}

export function requireSocketCount(sockets: number): void {
  if (!Number.isSafeInteger(sockets) || sockets < 0) {
    throw new RangeError(`socket count must be a whole number >= 0, got ${sockets}`);
  }
}

/** Why a node may not start under an id a running node uses; `where` says how that node was found. */
export function nodeIdInUse(nodeId: string, where = ''): Error {
  return new Error(`node id "${nodeId}" is already used by a running node${where}; give every node its own NODE_ID`);
}
