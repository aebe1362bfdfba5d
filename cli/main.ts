// The `mailcensus` command. Every file in cli/commands/ exports `register(program)` and adds its commands;
// those files keep their top-level imports light and load heavy modules inside their actions.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { Command, CommanderError } from 'commander';

const program = new Command('mailcensus')
  .description('Survey the mail-server security of many domains (MSchecker\'s criteria) and publish the statistics.')
  .version('0.1.0')
  .showHelpAfterError()
  // A command's own options come before its subcommand (`schedule --survey X --cron C` vs `schedule remove --survey X`).
  .enablePositionalOptions()
  .exitOverride();

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');
for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
  const mod = await import(pathToFileURL(path.join(dir, file)).href);
  mod.register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; usage errors exit 2, as POSIX tools do.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    throw err;
  }
}
