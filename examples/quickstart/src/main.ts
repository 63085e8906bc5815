import { quickstart } from './quickstart.js';

await quickstart((line) => console.log(line));
