#!/usr/bin/env node
import { main } from './main.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exitCode = 1;
  },
);
