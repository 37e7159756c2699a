/** Types of failover.js (the browser module), for its Node tests. */
export interface EndpointState {
  url: string;
  name?: string;
  reachable: boolean;
  hasLeader: boolean;
}
export function chooseEndpoint(current: string, members: EndpointState[]): string;
export function connectionProblem(
  member: (EndpointState & { name: string }) | undefined,
): string | undefined;
