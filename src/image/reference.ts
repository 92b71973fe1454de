// Image references as kubelet and users write them, normalized the way Docker
// and containerd do: "busybox" is docker.io/library/busybox:latest; a name
// may carry a tag, a digest, or both.
import { InvalidArgument } from '../errors';

export const DEFAULT_REGISTRY = 'docker.io';
const DEFAULT_TAG = 'latest';

// From the distribution spec's grammar: path components are lowercase
// alphanumerics joined by '.', '_', '__' or runs of '-'.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

export interface ImageReference {
  /** Registry host as written, with port: "docker.io", "127.0.0.1:5000". */
  registry: string;
  /** Repository path: "library/busybox". */
  repository: string;
  tag?: string;
  digest?: string;
}

/** "docker.io/library/busybox" */
export function repoName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The full normalized form: name[:tag][@digest]. */
export function formatReference(ref: ImageReference): string {
  return `${repoName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

export function isSha256Digest(s: string): boolean {
  return SHA256.test(s);
}

/**
 * Parse and normalize a reference. A name without tag or digest gets
 * ":latest". Throws InvalidArgument naming what is wrong.
 */
export function parseReference(input: string): ImageReference {
  if (typeof input !== 'string' || input.length === 0) throw new InvalidArgument('image reference is empty');
  if (input.length > 4096) throw new InvalidArgument('image reference is longer than 4096 characters');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new InvalidArgument(`image reference "${input}": bad digest "${digest}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidArgument(`image reference "${input}": bad tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry = DEFAULT_REGISTRY;
  // The first part is a registry host when it looks like one: it has a dot
  // or a port, or is "localhost" (Docker's rule).
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift() as string;
    if (!HOST.test(registry)) throw new InvalidArgument(`image reference "${input}": bad registry host "${registry}"`);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!COMPONENT.test(p)) throw new InvalidArgument(`image reference "${input}": bad repository component "${p}"`);
  }
  const repository = parts.join('/');
  if (repository.length > 255) throw new InvalidArgument(`image reference "${input}": repository name longer than 255 characters`);
  if (!tag && !digest) tag = DEFAULT_TAG;
  return { registry, repository, tag, digest };
}
