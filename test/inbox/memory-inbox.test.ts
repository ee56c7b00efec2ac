import { MemoryInbox } from '../../src/inbox/memory-inbox.js';
import { describeInbox } from './inbox.behaviour.js';

describeInbox('MemoryInbox', (settings, events) => new MemoryInbox(settings, events));
