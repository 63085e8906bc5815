export { quickstart } from './quickstart.js';
