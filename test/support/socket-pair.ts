import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type ServerOptions, type Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';

/** A socket.io server on a free port and one socket.io-client connected to it: both ends of one socket. */
export interface SocketPair {
  http: HttpServer;
  server: Server;
  /** The server's side. */
  socket: Socket;
  client: ClientSocket;
  close(): Promise<void>;
}

export async function startSocketPair(
  transports: Array<'polling' | 'websocket'> = ['websocket'],
  options: Partial<ServerOptions> = {},
): Promise<SocketPair> {
  const http = createServer();
  const server = new Server(http, options);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const connected = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { transports, reconnection: false });
  const socket = await connected;
  await new Promise<void>((resolve) => (client.connected ? resolve() : client.once('connect', () => resolve())));
  return {
    http,
    server,
    socket,
    client,
    close: async () => {
      client.close();
      await server.close();
    },
  };
}

/** The socket's map of ack callbacks (socket.io internals): what socket.io itself waits for. */
export function acksOf(socket: Socket): Map<number, unknown> {
  return (socket as unknown as { acks: Map<number, unknown> }).acks;
}

/** The engine.io connection of a client, to put raw packets on the wire. */
export function rawEngine(client: ClientSocket): { write(data: string): void } {
  return (client as unknown as { io: { engine: { write(data: string): void } } }).io.engine;
}
