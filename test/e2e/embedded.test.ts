import { describeNode } from './node.behaviour.js';

describeNode('embedded node (memory engines)', async () => ({ env: {}, cleanup: async () => {} }));
