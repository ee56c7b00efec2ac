import type { NodeBus } from './bus.js';
import type { SessionDirectory } from './directory.js';

// Temporary bridge: the dispatcher and gateway take one `Cluster` until their rewrite takes the two ports.

export type { ForwardHandler, ForwardOutcome, ReplayHandler } from './bus.js';
export type { SessionPresence } from './directory.js';

/** A node's session directory and node bus as one object. */
export type Cluster = SessionDirectory & NodeBus;

/** Joins the node's two parts; `close()` closes the directory first, then the bus (see `SessionDirectory.close`). */
export function joinCluster(directory: SessionDirectory, bus: NodeBus): Cluster {
  if (directory.nodeId !== bus.nodeId) {
    throw new Error(`the directory (node ${directory.nodeId}) and the bus (node ${bus.nodeId}) belong to different nodes`);
  }
  return {
    nodeId: directory.nodeId,
    get connected() {
      return directory.connected && bus.connected;
    },
    setLocalSockets: (sessionId, sockets) => directory.setLocalSockets(sessionId, sockets),
    remoteNodes: (sessionId, options) => directory.remoteNodes(sessionId, options),
    knownRemoteNodes: (sessionId) => directory.knownRemoteNodes(sessionId),
    presence: (sessionId) => directory.presence(sessionId),
    forward: (nodeId, sessionId, notification) => bus.forward(nodeId, sessionId, notification),
    onForward: (handler) => bus.onForward(handler),
    requestReplay: (nodeId, sessionId) => bus.requestReplay(nodeId, sessionId),
    onReplay: (handler) => bus.onReplay(handler),
    close: async () => {
      await directory.close();
      await bus.close();
    },
  };
}
