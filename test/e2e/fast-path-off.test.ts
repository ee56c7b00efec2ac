import { describeNode } from './node.behaviour.js';

describeNode('embedded node, SOCKET_FAST_PATH=off', async () => ({ env: { SOCKET_FAST_PATH: 'off' }, cleanup: async () => {} }));
