/**
 * deploy/k8s: every manifest (and the Secret make-tls-secret.ts writes) is a
 * valid Kubernetes object of its apiVersion and kind — checked offline
 * against the Kubernetes OpenAPI schemas compiled into kubernetes-models,
 * with unknown fields refused as `kubectl --validate=strict` would — and the
 * pieces fit together: probes on /livez and /readyz on the client port, a
 * preStop inside the grace period, a PDB that selects the pods, discovery
 * naming the headless Service, every RAFTKV_* variable a raftkv flag, the
 * Secret's keys the files the flags name. compose.yaml is checked the same way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import {
  podHosts,
  podNames,
  type SecretPlan,
  secretKeys,
  secretManifest,
} from '../../deploy/k8s/make-tls-secret.js';
import { discoverFounders, type SrvRecord } from '../../src/server/discovery.js';

const root = join(import.meta.dirname, '..', '..');
const k8sDir = join(root, 'deploy', 'k8s');

// biome-ignore lint/suspicious/noExplicitAny: manifests are plain YAML data, checked field by field below
type Manifest = Record<string, any>;

/** The kinds deploy/k8s may hold, with the schema of each. */
const models: Record<string, { prototype: { validate(): void } }> = {
  'apps/v1 StatefulSet': StatefulSet,
  'v1 Service': Service,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'v1 Secret': Secret,
};

/**
 * Validates `doc` against its kind's schema, and returns the fields the
 * schema does not know. The compiled validators read every property their
 * schema declares (present or not), so a field the validator never read is
 * one the schema does not have: a typo Kubernetes would drop or refuse.
 */
function validate(doc: Manifest): { errors: string | undefined; unknownFields: string[] } {
  const model = models[`${doc.apiVersion} ${doc.kind}`];
  if (!model) return { errors: `no schema for ${doc.apiVersion} ${doc.kind}`, unknownFields: [] };
  const read = new Set<string>();
  const watch = (value: unknown, at: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    return new Proxy(value, {
      get(target, key, receiver) {
        const child = Reflect.get(target, key, receiver);
        if (typeof key !== 'string') return child;
        read.add(`${at}/${key}`);
        return watch(child, `${at}/${key}`);
      },
    });
  };
  let errors: string | undefined;
  try {
    model.prototype.validate.call(watch(doc, ''));
  } catch (err) {
    errors = (err as Error).message;
  }
  const unknownFields: string[] = [];
  const walk = (value: unknown, at: string) => {
    if (value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) {
      const path = `${at}/${key}`;
      if (!read.has(path) && path !== '/apiVersion' && path !== '/kind') unknownFields.push(path);
      else walk(child, path);
    }
  };
  walk(doc, '');
  return { errors, unknownFields };
}

const manifestFiles = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f));
const docs: { file: string; doc: Manifest }[] = manifestFiles.flatMap((file) =>
  // YAML 1.1, as kubectl reads it (0440 is an octal file mode there).
  parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8'), { version: '1.1' }).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { file, doc: d.toJS() as Manifest };
  }),
);
const ofKind = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);

const statefulSet = ofKind('StatefulSet')[0]!;
const services = ofKind('Service');
const podSpec = statefulSet?.spec.template.spec;
const container = podSpec?.containers[0];
const env = new Map<string, string>(
  (container?.env ?? []).map((e: Manifest) => [
    e.name,
    e.value ?? `<from ${e.valueFrom ? 'field' : '?'}>`,
  ]),
);
const plan: SecretPlan = {
  name: statefulSet?.metadata.name,
  namespace: 'default',
  replicas: statefulSet?.spec.replicas,
  clusterDomain: 'cluster.local',
};
/** The Secret make-tls-secret.ts writes, with stand-ins for the certificates. */
const secret = parseYaml(
  secretManifest(
    plan,
    new Map(secretKeys(plan).map((key) => [key, Buffer.from(`stand-in for ${key}`)])),
  ),
) as Manifest;

/** `$(VAR)` expanded as the kubelet does, for one pod. */
const expand = (value: string, pod: string) =>
  value.replaceAll('$(POD_NAME)', pod).replaceAll('$(POD_NAMESPACE)', plan.namespace);

/** The raftkv flags' environment variables, from cmd/raftkv.ts's flag table. */
const raftkvEnv = new Set(
  [...readFileSync(join(root, 'cmd', 'raftkv.ts'), 'utf8').matchAll(/'([A-Z][A-Z0-9_]*)'/g)].map(
    (m) => `RAFTKV_${m[1]}`,
  ),
);

t.test('every manifest in deploy/k8s, and the Secret, passes the Kubernetes schemas', (t) => {
  t.same(manifestFiles.sort(), [
    'client-service.yaml',
    'peer-service.yaml',
    'pod-disruption-budget.yaml',
    'statefulset.yaml',
  ]);
  t.equal(docs.length, 4);
  for (const { file, doc } of [...docs, { file: 'make-tls-secret.ts', doc: secret }]) {
    const { errors, unknownFields } = validate(doc);
    t.equal(errors, undefined, `${file}: ${doc.kind} ${doc.metadata?.name} is valid`);
    t.same(unknownFields, [], `${file}: ${doc.kind} has no field its schema does not know`);
  }
  t.end();
});

t.test('the schema check refuses what Kubernetes would', (t) => {
  const copy = (): Manifest => structuredClone(statefulSet);
  const typo = copy();
  typo.spec.template.spec.containers[0].readinesProbe =
    typo.spec.template.spec.containers[0].readinessProbe;
  t.same(validate(typo).unknownFields, ['/spec/template/spec/containers/0/readinesProbe']);
  const wrongType = copy();
  wrongType.spec.replicas = 'three';
  t.match(validate(wrongType).errors, /replicas/);
  const wrongPolicy = copy();
  wrongPolicy.spec.podManagementPolicy = 'Together';
  t.match(validate(wrongPolicy).errors, /podManagementPolicy/);
  t.match(validate({ apiVersion: 'v1', kind: 'Pod' }).errors, /no schema for v1 Pod/);
  t.end();
});

t.test('founders start together and find each other through the headless Service', async (t) => {
  t.equal(statefulSet.spec.replicas, 3);
  t.equal(statefulSet.spec.podManagementPolicy, 'Parallel');
  const headless = services.find((s) => s.metadata.name === statefulSet.spec.serviceName)!;
  t.ok(headless, 'serviceName names a Service in deploy/k8s');
  t.equal(headless.spec.clusterIP, 'None', 'headless');
  t.equal(headless.spec.publishNotReadyAddresses, true, 'lists founders before they are ready');
  const peerPort = headless.spec.ports.find((p: Manifest) => p.name === 'peer');
  t.equal(peerPort.protocol, 'TCP');
  const peerContainerPort = container.ports.find((p: Manifest) => p.name === peerPort.targetPort);
  t.equal(peerContainerPort.containerPort, Number(env.get('RAFTKV_LISTEN_PEER')!.split(':')[1]));
  t.equal(
    env.get('RAFTKV_DISCOVERY_SRV'),
    `_peer._tcp.${headless.metadata.name}.$(POD_NAMESPACE).svc.cluster.local`,
  );
  t.equal(env.get('RAFTKV_DISCOVERY_EXPECT'), String(statefulSet.spec.replicas));
  t.equal(env.get('RAFTKV_NAME'), '$(POD_NAME)');
  // Each pod's discovery, given the SRV answer the cluster DNS gives for this
  // Service (a StatefulSet pod's target is <pod>.<service>.<namespace>.svc.<domain>),
  // completes with the same founders, and its own URL is its advertised one.
  const srvRecords: SrvRecord[] = podNames(plan).map((pod) => ({
    name: `${pod}.${headless.metadata.name}.${plan.namespace}.svc.cluster.local`,
    port: peerContainerPort.containerPort,
    priority: 0,
    weight: 100,
  }));
  const answers: string[] = [];
  for (const pod of podNames(plan)) {
    const founders = await discoverFounders({
      srvName: expand(env.get('RAFTKV_DISCOVERY_SRV')!, pod),
      expectMembers: Number(env.get('RAFTKV_DISCOVERY_EXPECT')),
      selfName: expand(env.get('RAFTKV_NAME')!, pod),
      selfPeerUrl: expand(env.get('RAFTKV_ADVERTISE_PEER_URL')!, pod),
      peerScheme: env.has('RAFTKV_PEER_CERT_FILE') ? 'https' : 'http',
      timeoutMs: 1000,
      retryIntervalMs: 1000,
      resolver: {
        resolveSrv: async (name) => {
          t.equal(name, `_peer._tcp.raftkv-peer.${plan.namespace}.svc.cluster.local`);
          return srvRecords;
        },
      },
    });
    answers.push(JSON.stringify([...founders]));
  }
  t.equal(new Set(answers).size, 1, 'every founder derives the same --initial-cluster');
});

t.test(
  'probes: /livez and /readyz on the client port, a startup probe that outlasts discovery',
  (t) => {
    const clientPort = Number(env.get('RAFTKV_LISTEN_CLIENT')!.split(':')[1]);
    const port = (name: string) => container.ports.find((p: Manifest) => p.name === name);
    const tls = env.has('RAFTKV_CLIENT_CERT_FILE');
    for (const [probe, path] of [
      ['livenessProbe', '/livez'],
      ['readinessProbe', '/readyz'],
      ['startupProbe', '/livez'],
    ] as const) {
      const get = container[probe]?.httpGet;
      t.equal(get?.path, path, `${probe} asks ${path}`);
      t.equal(port(get?.port)?.containerPort, clientPort, `${probe} on the client port`);
      t.equal(get?.scheme, tls ? 'HTTPS' : 'HTTP', `${probe} speaks the client port's scheme`);
    }
    const startup = container.startupProbe;
    t.ok(
      startup.periodSeconds * startup.failureThreshold >
        Number(env.get('RAFTKV_DISCOVERY_TIMEOUT')),
      'the startup probe waits longer than discovery may',
    );
    const clientService = services.find((s) => s.metadata.name !== statefulSet.spec.serviceName)!;
    t.equal(port(clientService.spec.ports[0].targetPort)?.containerPort, clientPort);
    t.end();
  },
);

t.test('stopping: a preStop inside the grace period, and a PDB over the pods', (t) => {
  const preStop = container.lifecycle?.preStop;
  t.ok(preStop, 'a preStop hook');
  t.same(preStop.exec.command.slice(0, 1), ['sleep']);
  const pauseSeconds = Number(preStop.exec.command[1]);
  // cmd/raftkv.ts forces an exit 10 s after SIGTERM at the latest.
  t.ok(podSpec.terminationGracePeriodSeconds >= pauseSeconds + 10 + 5, 'room for the shutdown');
  const [pdb] = ofKind('PodDisruptionBudget');
  const podLabels = statefulSet.spec.template.metadata.labels;
  for (const [key, value] of Object.entries(pdb!.spec.selector.matchLabels))
    t.equal(podLabels[key], value, `the PDB selects the pods (${key})`);
  t.same(pdb!.spec.selector, statefulSet.spec.selector, 'the same pods as the StatefulSet');
  t.ok(pdb!.spec.maxUnavailable < statefulSet.spec.replicas / 2, 'never the quorum');
  for (const service of services)
    for (const [key, value] of Object.entries(service.spec.selector))
      t.equal(podLabels[key], value, `Service ${service.metadata.name} selects the pods`);
  t.end();
});

t.test(
  'every RAFTKV_* variable is a raftkv flag, and the Secret holds the files they name',
  (t) => {
    t.ok(raftkvEnv.has('RAFTKV_DISCOVERY_SRV') && raftkvEnv.has('RAFTKV_INITIAL_CLUSTER'));
    for (const name of env.keys())
      if (name.startsWith('RAFTKV_')) t.ok(raftkvEnv.has(name), `${name} is a raftkv flag`);
    const certsMount = container.volumeMounts.find((m: Manifest) => m.mountPath === '/certs');
    const certsVolume = podSpec.volumes.find((v: Manifest) => v.name === certsMount.name);
    t.equal(certsVolume.secret.secretName, secret.metadata.name, 'the pods mount the Secret');
    t.equal(certsVolume.secret.defaultMode, 0o440, "keys readable by raftkv's group only");
    t.equal(podSpec.securityContext.fsGroup, podSpec.securityContext.runAsGroup);
    const fileFlags = [...env].filter(([name]) => /^RAFTKV_.*_FILE$/.test(name));
    t.same(fileFlags.map(([name]) => name).sort(), [
      'RAFTKV_CLIENT_CERT_FILE',
      'RAFTKV_CLIENT_KEY_FILE',
      'RAFTKV_PEER_CA_FILE',
      'RAFTKV_PEER_CERT_FILE',
      'RAFTKV_PEER_KEY_FILE',
    ]);
    const keys = Object.keys(secret.data).sort();
    const named = new Set<string>();
    for (const pod of podNames(plan)) {
      for (const [name, value] of fileFlags) {
        const file = expand(value, pod);
        t.ok(file.startsWith(`${certsMount.mountPath}/`), `${name} is in the Secret's mount`);
        named.add(file.slice(certsMount.mountPath.length + 1));
      }
    }
    t.same(keys, [...named].sort(), 'the Secret holds exactly the files the flags name');
    t.notOk(keys.includes('ca.key'), 'the CA key stays out of the cluster');
    // The pods' certificates cover the names peers and clients use for them.
    for (const pod of podNames(plan)) {
      const peerHost = new URL(expand(env.get('RAFTKV_ADVERTISE_PEER_URL')!, pod)).hostname;
      const clientHost = new URL(expand(env.get('RAFTKV_ADVERTISE_CLIENT_URL')!, pod)).hostname;
      t.ok(podHosts(plan, pod).includes(peerHost) && podHosts(plan, pod).includes(clientHost));
    }
    t.end();
  },
);

t.test('the pods run as a non-root user and keep their data on their own volume', (t) => {
  t.equal(podSpec.securityContext.runAsNonRoot, true);
  t.not(podSpec.securityContext.runAsUser, 0);
  t.equal(container.securityContext.allowPrivilegeEscalation, false);
  t.ok(container.resources.requests.cpu && container.resources.limits.memory);
  const [claim] = statefulSet.spec.volumeClaimTemplates;
  const dataMount = container.volumeMounts.find((m: Manifest) => m.name === claim.metadata.name);
  t.ok(env.get('RAFTKV_DATA_DIR')!.startsWith(`${dataMount.mountPath}/`));
  t.end();
});

t.test('compose.yaml still names only raftkv flags', (t) => {
  const compose = parseYaml(readFileSync(join(root, 'compose.yaml'), 'utf8'), {
    merge: true,
  }) as Manifest;
  const names = new Set<string>();
  for (const service of Object.values(compose.services) as Manifest[])
    for (const name of Object.keys(service.environment ?? {})) names.add(name);
  t.ok(names.size > 5);
  for (const name of names) t.ok(raftkvEnv.has(name), `${name} is a raftkv flag`);
  t.end();
});
