import WebSocket from 'ws';
import { ENGINE, SOCKET_IO, ackPacket, eventPacket, readPacket } from '../../src/gateway/wire.js';

/**
 * A socket.io v4 client for the benchmark, reduced to what a simulated browser needs: the websocket
 * transport only (engine.io protocol 4, socket.io protocol 5), the main namespace, text packets, events
 * with and without acks, acks the server asks for, and the engine.io ping. It puts on the wire the same
 * frames socket.io-client sends (`40`, `42<id>[…]`, `43<id>[…]`, `3`; encoded by src/gateway/wire.ts, as the
 * server's fast path), so the server does exactly the
 * work it does for a browser; what it leaves out is socket.io-client's own cost per message (its emitter
 * layers, packet objects, buffering and reconnection manager), which on a shared two-core machine would
 * otherwise be taken from the servers being measured.
 *
 * No reconnection, no long-polling, no binary packets (a binary packet closes the socket with an error).
 */

type EventHandler = (payload: unknown, ack?: (answer?: unknown) => void) => void;

export interface LeanSocketOptions {
  /** Gives up the handshake (websocket open + socket.io CONNECT) after this long. */
  timeoutMs: number;
  /** Sent in the CONNECT packet, as socket.io-client's `auth` option. */
  auth?: Record<string, unknown>;
}

export class LeanSocket {
  private ws: WebSocket | undefined;
  private nextAckId = 0;
  private readonly waiting = new Map<number, (args: unknown[]) => void>();
  private readonly handlers = new Map<string, EventHandler>();
  private onClose: ((reason: string) => void) | undefined;
  private closed = false;

  private constructor() {}

  /** Opens the websocket and joins the main namespace; rejects with the server's reason when refused. */
  static connect(url: string, options: LeanSocketOptions): Promise<LeanSocket> {
    const socket = new LeanSocket();
    return socket.open(url, options).then(() => socket);
  }

  /** One handler per event name (the benchmark needs no more). */
  on(event: string, handler: EventHandler): void {
    this.handlers.set(event, handler);
  }

  /** Called once when the connection ends, except after `close()`. */
  onDisconnect(handler: (reason: string) => void): void {
    this.onClose = handler;
  }

  /** `socket.timeout(ms).emitWithAck(event, payload)` of socket.io-client. */
  emitWithAck(event: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    const id = this.nextAckId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer to ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (args) => {
        clearTimeout(timer);
        resolve(args[0]);
      });
      this.send(`4${eventPacket(event, JSON.stringify(payload), id)}`);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws?.close();
  }

  private send(frame: string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(frame);
  }

  private open(url: string, options: LeanSocketOptions): Promise<void> {
    const endpoint = new URL(url);
    endpoint.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';
    endpoint.pathname = '/socket.io/';
    endpoint.search = '?EIO=4&transport=websocket';
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    this.ws = ws;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.closed = true;
        ws.terminate();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`handshake timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
      ws.on('error', (err) => fail(err));
      ws.on('close', (code) => {
        if (!settled) fail(new Error(`websocket closed during the handshake (code ${code})`));
        else if (!this.closed) {
          this.closed = true;
          this.onClose?.('transport close');
        }
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) {
          this.close();
          return;
        }
        const text = data.toString();
        if (!settled) {
          if (text.startsWith('0')) this.send(options.auth ? `40${JSON.stringify(options.auth)}` : '40');
          else if (text.startsWith('40')) {
            settled = true;
            clearTimeout(timer);
            resolve();
          } else if (text.startsWith('44')) fail(new Error(connectErrorMessage(text.slice(2))));
          return;
        }
        this.onFrame(text);
      });
    });
  }

  private onFrame(text: string): void {
    const engineType = text.charCodeAt(0);
    if (engineType === ENGINE.ping) {
      this.send('3');
      return;
    }
    if (engineType !== ENGINE.message) return;
    const packet = readPacket(text.slice(1));
    if (packet.type === SOCKET_IO.event || packet.type === SOCKET_IO.ack) {
      const args = JSON.parse(packet.json) as unknown[];
      const id = packet.ackId;
      if (packet.type === SOCKET_IO.ack) {
        if (id === undefined) return;
        this.waiting.get(id)?.(args);
        this.waiting.delete(id);
        return;
      }
      const handler = this.handlers.get(args[0] as string);
      if (!handler) return;
      const ack = id === undefined
        ? undefined
        : (answer?: unknown) => this.send(`4${ackPacket(id, answer === undefined ? [] : [answer])}`);
      handler(args[1], ack);
    } else if (packet.type === SOCKET_IO.disconnect) {
      this.close();
      if (this.onClose) this.onClose('io server disconnect');
    } else if (packet.type === SOCKET_IO.binaryEvent || packet.type === SOCKET_IO.binaryAck) {
      this.close(); // binary packets are not used by the servers measured
    }
  }
}

function connectErrorMessage(json: string): string {
  try {
    const parsed = JSON.parse(json) as { message?: string };
    return parsed.message ?? json;
  } catch {
    return json;
  }
}
