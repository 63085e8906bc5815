import { main } from '/work/wt/postgres/packages/cli/src/main.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
