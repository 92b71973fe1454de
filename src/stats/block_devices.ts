// Block device names for cAdvisor's `device` label on IO series: major:minor to
// /dev/<name> through sysfs (/sys/dev/block/M:m links to the device's directory), as
// cAdvisor names them; "" for a device sysfs does not know, as cAdvisor does.
import { promises as fsp } from 'fs';
import * as path from 'path';

/** Dynamic device numbers (nvme partitions, loop devices re-created) may be reused by
 * another device later: names are kept this long only. */
const NAME_TTL_MS = 60_000;

export class BlockDeviceNames {
  private readonly known = new Map<string, { at: number; name: Promise<string> }>();

  constructor(private readonly sysDevBlock = '/sys/dev/block') {}

  name(major: number, minor: number): Promise<string> {
    const key = `${major}:${minor}`;
    const now = Date.now();
    const hit = this.known.get(key);
    if (hit && now - hit.at < NAME_TTL_MS) return hit.name;
    const name = fsp.readlink(path.join(this.sysDevBlock, key)).then(
      (target) => `/dev/${path.basename(target)}`,
      () => {
        this.known.delete(key); // not kept: the device may appear later
        return '';
      },
    );
    this.known.set(key, { at: now, name });
    return name;
  }
}
