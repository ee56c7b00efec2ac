import type { Notification } from '../notification/schema.js';
import type { ForwardOutcome } from './bus.js';

/*
 * Frames (JSON) on a node's bus channel (`RedisBus`):
 *   { type: 'deliver', from, corr, session, notification }   sender -> owning node
 *   { type: 'outcome', corr, outcome }                      owning node -> sender, reliable messages only
 *   { type: 'replay', corr, session }                       any node -> a node holding the session
 */

export interface DeliverFrame {
  type: 'deliver';
  from: string;
  corr: string;
  session: string;
  notification: Notification;
}

export interface OutcomeFrame {
  type: 'outcome';
  corr: string;
  outcome: ForwardOutcome;
}

export interface ReplayFrame {
  type: 'replay';
  corr: string;
  session: string;
}

export type Frame = DeliverFrame | OutcomeFrame | ReplayFrame;

/** A frame from the bus, or undefined when it is not one this node understands. */
export function parseFrame(message: string): Frame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || typeof value.corr !== 'string' || value.corr.length === 0) return undefined;
  if (value.type === 'outcome') {
    if (value.outcome !== 'delivered' && value.outcome !== 'not_delivered') return undefined;
    return { type: 'outcome', corr: value.corr, outcome: value.outcome };
  }
  if (value.type === 'replay') {
    if (typeof value.session !== 'string') return undefined;
    return { type: 'replay', corr: value.corr, session: value.session };
  }
  if (value.type === 'deliver') {
    if (typeof value.from !== 'string' || value.from.length === 0 || typeof value.session !== 'string') return undefined;
    const notification = parseNotification(value.notification);
    if (!notification) return undefined;
    return { type: 'deliver', from: value.from, corr: value.corr, session: value.session, notification };
  }
  return undefined;
}

/** Rebuilds the notification field by field, so a frame can hand the gateway nothing it does not expect. */
function parseNotification(value: unknown): Notification | undefined {
  if (!isRecord(value)) return undefined;
  const { id, sessions, groups, broadcast, event, data, reliable, enqueuedAt, expiresAt } = value;
  if (typeof id !== 'string' || typeof event !== 'string') return undefined;
  if (!isStringArray(sessions) || !isStringArray(groups)) return undefined;
  if (typeof broadcast !== 'boolean' || typeof reliable !== 'boolean') return undefined;
  if (!Number.isFinite(enqueuedAt) || !Number.isFinite(expiresAt)) return undefined;
  return {
    id,
    sessions,
    groups,
    broadcast,
    event,
    data,
    reliable,
    enqueuedAt: enqueuedAt as number,
    expiresAt: expiresAt as number,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
