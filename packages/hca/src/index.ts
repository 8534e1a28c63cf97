export * from './enums.js';
export * from './errors.js';
export type * from './provider.js';
export { newWorkCompletion } from './provider.js';
