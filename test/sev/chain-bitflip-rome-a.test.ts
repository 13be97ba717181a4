import { describeEveryBitFails } from './chain-bitflip-helper';

// See chain-bitflip-helper.ts for what is covered.
describeEveryBitFails('rome', ['pdh', 'oca']);
