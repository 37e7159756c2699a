/**
 * Makes the TLS material of the StatefulSet in this directory with
 * `raftkv certs`, and writes it as the Secret manifest its pods mount at
 * /certs (no kubectl needed here; apply the file where you apply the rest):
 *
 *   npx tsx deploy/k8s/make-tls-secret.ts --dir raftkv-certs --out raftkv-tls.yaml
 *   kubectl apply -f raftkv-tls.yaml -f deploy/k8s/
 *
 * 1. `raftkv certs create-ca` in --dir, unless ca.crt is already there.
 * 2. One node certificate per pod, <name>-0 .. <name>-(replicas-1), unless
 *    already there, with every name a client or a peer may use for it: its
 *    own name under the headless Service (short and fully qualified), the
 *    client Service's names, localhost and 127.0.0.1 (a pod's own checks).
 * 3. The Secret `<name>-tls` with ca.crt and each pod's .crt and .key: the
 *    files the StatefulSet's RAFTKV_*_FILE variables name. ca.key stays in
 *    --dir, out of the cluster: keep it offline (it signs new certificates).
 *
 * Run again with more --replicas to add certificates; existing ones are kept.
 * It runs this checkout's cmd/raftkv.ts; --raftkv "raftkv" uses an installed one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

export interface SecretPlan {
  /** The StatefulSet's name: pods are <name>-N, the Services <name> and <name>-peer. */
  name: string;
  namespace: string;
  replicas: number;
  clusterDomain: string;
}

/** The pods' names, in order. */
export const podNames = (plan: SecretPlan): string[] =>
  Array.from({ length: plan.replicas }, (_, i) => `${plan.name}-${i}`);

/** Every name a client or a peer may reach this pod at, for its certificate's SANs. */
export function podHosts(plan: SecretPlan, pod: string): string[] {
  const peer = `${pod}.${plan.name}-peer.${plan.namespace}.svc`;
  const client = `${plan.name}.${plan.namespace}.svc`;
  return [
    `${peer}.${plan.clusterDomain}`,
    peer,
    `${client}.${plan.clusterDomain}`,
    client,
    `${plan.name}.${plan.namespace}`,
    plan.name,
    'localhost',
    '127.0.0.1',
  ];
}

/** The Secret's keys: the file names the StatefulSet mounts at /certs. */
export const secretKeys = (plan: SecretPlan): string[] => [
  'ca.crt',
  ...podNames(plan).flatMap((pod) => [`${pod}.crt`, `${pod}.key`]),
];

/** The Secret manifest holding `files` (key → contents), base64 as Kubernetes wants. */
export function secretManifest(plan: SecretPlan, files: Map<string, Buffer>): string {
  const lines = [
    '# Made by deploy/k8s/make-tls-secret.ts: the TLS material the raftkv pods mount',
    '# at /certs. It holds private keys: keep it out of version control.',
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    `  name: ${plan.name}-tls`,
    `  namespace: ${plan.namespace}`,
    '  labels:',
    `    app.kubernetes.io/name: ${plan.name}`,
    'type: Opaque',
    'data:',
    ...[...files].map(([key, bytes]) => `  ${key}: ${bytes.toString('base64')}`),
  ];
  return `${lines.join('\n')}\n`;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      out: { type: 'string' },
      name: { type: 'string', default: 'raftkv' },
      namespace: { type: 'string', default: 'default' },
      replicas: { type: 'string', default: '3' },
      'cluster-domain': { type: 'string', default: 'cluster.local' },
      raftkv: { type: 'string' },
    },
    strict: true,
  });
  const replicas = Number(values.replicas);
  if (!values.dir || !values.out || !Number.isSafeInteger(replicas) || replicas < 1) {
    console.error(
      'usage: make-tls-secret.ts --dir <certificates dir> --out <secret.yaml> ' +
        '[--name raftkv] [--namespace default] [--replicas 3] [--cluster-domain cluster.local] ' +
        '[--raftkv "<command>"]',
    );
    process.exit(2);
  }
  const plan: SecretPlan = {
    name: values.name,
    namespace: values.namespace,
    replicas,
    clusterDomain: values['cluster-domain'],
  };
  const repo = path.resolve(import.meta.dirname, '..', '..');
  // The command that runs raftkv: this checkout's, through tsx, unless told otherwise.
  const [command, ...prefix] = values.raftkv
    ? values.raftkv.split(' ').filter(Boolean)
    : [process.execPath, '--import', 'tsx', path.join(repo, 'cmd', 'raftkv.ts')];
  const certs = (...args: string[]) =>
    execFileSync(command!, [...prefix, 'certs', ...args], { stdio: 'inherit', cwd: repo });

  const dir = path.resolve(values.dir);
  if (!existsSync(path.join(dir, 'ca.crt'))) certs('create-ca', '--dir', dir);
  for (const pod of podNames(plan)) {
    if (existsSync(path.join(dir, `${pod}.crt`))) continue;
    const hosts = podHosts(plan, pod).flatMap((host) => ['--host', host]);
    certs('create-node', '--dir', dir, '--name', pod, ...hosts);
  }
  const files = new Map(
    secretKeys(plan).map((key): [string, Buffer] => [key, readFileSync(path.join(dir, key))]),
  );
  // 0600: the file holds every pod's private key.
  writeFileSync(values.out, secretManifest(plan, files), { mode: 0o600 });
  console.log(
    `wrote ${values.out}: Secret ${plan.name}-tls in namespace ${plan.namespace} with ${[...files.keys()].join(', ')}` +
      `\nkeep ${path.join(dir, 'ca.key')} offline; apply the Secret with the manifests in deploy/k8s`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main();
}
