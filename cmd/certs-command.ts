/**
 * `raftkv certs …`: flags for src/tls/certs.ts, and what to do with the files.
 * Loaded only for this subcommand (the X.509 library is not part of a running server).
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import {
  CA_CERT_FILE,
  type CertsResult,
  createCa,
  createClient,
  createNode,
} from '../src/tls/certs.js';

const daysArg = (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--days must be a positive whole number, got "${value}"`);
  return n;
};

function printWritten(result: CertsResult): void {
  for (const file of result.written) {
    console.log(`wrote ${file.path} (mode ${file.mode.toString(8).padStart(4, '0')})`);
  }
}

const dirOption = () =>
  new Option(
    '--dir <dir>',
    'the certificates directory (holds ca.crt and ca.key)',
  ).makeOptionMandatory();
const overwriteOption = () => new Option('--overwrite', 'replace files that already exist');
const daysOption = (fallback: number) =>
  new Option('--days <n>', 'validity in days').argParser(daysArg).default(fallback);

export function certsProgram(): Command {
  const program = new Command('raftkv certs')
    .description(
      'Make the certificates a TLS cluster needs: a CA, one certificate per node (client and peer ports), client certificates for users.',
    )
    .showHelpAfterError();

  program
    .command('create-ca')
    .description('a CA (ca.crt, ca.key) that signs node and client certificates; keep ca.key safe')
    .addOption(dirOption())
    .addOption(daysOption(3650))
    .addOption(overwriteOption())
    .action(async (o: { dir: string; days: number; overwrite?: boolean }) => {
      const result = await createCa({ dir: o.dir, days: o.days, overwrite: Boolean(o.overwrite) });
      printWritten(result);
      console.log(
        `\nnext: raftkv certs create-node --dir ${o.dir} --name n1 --host <n1's names and addresses>`,
      );
    });

  program
    .command('create-node')
    .description(
      'a node certificate for server and client use, with SANs from --host (signed by the CA in --dir)',
    )
    .addOption(dirOption())
    .addOption(
      new Option('--host <host>', 'a name or IP address this node is reached at (repeat it)')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
        .makeOptionMandatory(),
    )
    .addOption(new Option('--name <name>', 'file name and Common Name').default('node'))
    .addOption(daysOption(365))
    .addOption(overwriteOption())
    .action(
      async (o: {
        dir: string;
        host: string[];
        name: string;
        days: number;
        overwrite?: boolean;
      }) => {
        const result = await createNode({
          dir: o.dir,
          hosts: o.host,
          name: o.name,
          days: o.days,
          overwrite: Boolean(o.overwrite),
        });
        printWritten(result);
        const file = (ext: string) => path.join(o.dir, `${o.name}.${ext}`);
        const ca = path.join(o.dir, CA_CERT_FILE);
        console.log(
          '\nstart the node with:\n' +
            `  --peer-cert-file ${file('crt')} --peer-key-file ${file('key')} --peer-ca-file ${ca}\n` +
            `  --client-cert-file ${file('crt')} --client-key-file ${file('key')}` +
            ` [--client-ca-file ${ca} to require client certificates]\n` +
            'and https:// peer URLs in --initial-cluster. To rotate: run this again with --overwrite, ' +
            'then SIGHUP the node (it also notices the files change).',
        );
      },
    );

  program
    .command('create-client')
    .description(
      'a client certificate whose Common Name is the user name (signed by the CA in --dir)',
    )
    .addOption(dirOption())
    .addOption(new Option('--user <name>', 'the user name').makeOptionMandatory())
    .addOption(daysOption(365))
    .addOption(overwriteOption())
    .action(async (o: { dir: string; user: string; days: number; overwrite?: boolean }) => {
      const result = await createClient({
        dir: o.dir,
        user: o.user,
        days: o.days,
        overwrite: Boolean(o.overwrite),
      });
      printWritten(result);
      const base = path.join(o.dir, `client.${o.user}`);
      console.log(
        `\nclients present it with: --cert ${base}.crt --key ${base}.key --cacert ${path.join(o.dir, CA_CERT_FILE)}`,
      );
    });

  return program;
}
