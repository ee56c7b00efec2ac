/**
 * The text wire format of socket.io 4 (socket.io protocol 5 over engine.io protocol 4), the parts
 * push-center writes and reads itself: the server's fast path (fast-path/) and the benchmark's lean
 * client speak it through these functions, so it is written down once.
 *
 * An engine.io packet is one character of type followed by its data; a socket.io packet travels as the
 * data of an engine.io `message`: its type, an optional ack id (decimal digits), then a JSON array
 * (`["event", payload]` for an event, the answer's arguments for an ack). The main namespace `/`, the
 * only one push-center uses, is written as nothing.
 */

/** engine.io packet types, as their character codes. */
export const ENGINE = {
  open: 0x30, // '0'
  close: 0x31, // '1'
  ping: 0x32, // '2'
  pong: 0x33, // '3'
  message: 0x34, // '4'
} as const;

/** socket.io packet types, as their character codes. */
export const SOCKET_IO = {
  connect: 0x30, // '0'
  disconnect: 0x31, // '1'
  event: 0x32, // '2'
  ack: 0x33, // '3'
  connectError: 0x34, // '4'
  binaryEvent: 0x35, // '5'
  binaryAck: 0x36, // '6'
} as const;

/** Event names JSON writes as they are between quotes (the notification schema allows only these). */
const PLAIN_EVENT = /^[A-Za-z0-9_.:-]+$/;
/** Ack ids are a counter; more digits than a safe integer holds is not one of ours. */
const MAX_ID_DIGITS = 15;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * The socket.io event packet `2<ackId>["event",payload]` (no engine.io type), as socket.io-parser
 * encodes it; `payloadJson` is the payload already written as JSON. Without `ackId` no ack is asked for.
 */
export function eventPacket(event: string, payloadJson: string, ackId?: number): string {
  return `${eventHead(event, ackId)}${payloadJson}]`;
}

/** An event packet up to its payload: `2<ackId>["event",`. */
export function eventHead(event: string, ackId?: number): string {
  const id = ackId === undefined ? '' : String(ackId);
  return PLAIN_EVENT.test(event) ? `2${id}["${event}",` : `2${id}[${JSON.stringify(event)},`;
}

/**
 * An engine.io message carrying the event packet `head` + `payloadJson` + `]` as one WebSocket text
 * frame, written into the frame's buffer part by part rather than joined into a string first.
 */
export function eventFrame(head: string, payloadJson: string): Buffer {
  const [frame, start] = textFrame(1 + Buffer.byteLength(head) + Buffer.byteLength(payloadJson) + 1);
  let at = start;
  frame[at++] = ENGINE.message;
  at += frame.write(head, at, 'utf8');
  at += frame.write(payloadJson, at, 'utf8');
  frame[at] = CLOSE_BRACKET;
  return frame;
}

/** The socket.io ack packet `3<ackId>[args…]` (no engine.io type). */
export function ackPacket(ackId: number, args: unknown[] = []): string {
  return args.length === 0 ? `3${ackId}[]` : `3${ackId}${JSON.stringify(args)}`;
}

/**
 * Where an engine.io message holding a socket.io ack for the main namespace, `43<id>[…]`, keeps its id
 * and arguments; undefined when the bytes are anything else. `argsAt` is the index of the `[`.
 */
export function readAck(data: Uint8Array): { id: number; argsAt: number } | undefined {
  const n = data.length;
  if (n < 5 || data[0] !== ENGINE.message || data[1] !== SOCKET_IO.ack) return undefined;
  let id = 0;
  let i = 2;
  for (; i < n && i < 2 + MAX_ID_DIGITS; i++) {
    const c = data[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) break;
    id = id * 10 + (c - DIGIT_0);
  }
  if (i === 2 || i >= n || data[i] !== OPEN_BRACKET || data[n - 1] !== CLOSE_BRACKET) return undefined;
  return { id, argsAt: i };
}

/** A socket.io packet of the main namespace read from the text of an engine.io message (no binary). */
export interface SocketIoPacket {
  type: number;
  ackId: number | undefined;
  /** The JSON after the id: the event's `[name, payload]`, an ack's arguments, a CONNECT's data. */
  json: string;
}

/** Reads the socket.io packet in an engine.io message's data (`data` without the leading `4`). */
export function readPacket(data: string): SocketIoPacket {
  const type = data.charCodeAt(0);
  let i = 1;
  while (i < data.length && data.charCodeAt(i) >= DIGIT_0 && data.charCodeAt(i) <= DIGIT_9) i++;
  return { type, ackId: i > 1 ? Number(data.slice(1, i)) : undefined, json: data.slice(i) };
}

/**
 * A WebSocket text frame from the server (FIN, unmasked, no compression) with room for `length` bytes
 * of payload, and the index where the payload starts: the bytes ws itself would send.
 */
export function textFrame(length: number): [frame: Buffer, payloadAt: number] {
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81; // FIN, text frame
  if (headerBytes === 2) {
    frame[1] = length;
  } else if (headerBytes === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  return [frame, headerBytes];
}

/** An engine.io message carrying `packet` as one WebSocket text frame. */
export function messageFrame(packet: string): Buffer {
  const [frame, at] = textFrame(1 + Buffer.byteLength(packet));
  frame[at] = ENGINE.message;
  frame.write(packet, at + 1, 'utf8');
  return frame;
}
